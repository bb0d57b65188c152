/**
 * The two statistical ejection rules of Envoy's outlier detection, evaluated once per `interval` over the attempts
 * each server saw in that interval. Only servers with at least `success_rate_request_volume` attempts count, and
 * only when at least `success_rate_minimum_hosts` of them do: with fewer, a mean says nothing.
 *
 * - Success rate: a server whose success rate is below mean − `success_rate_stdev_factor` × stdev is an outlier
 *   (Envoy `success_rate_stdev_factor`, there in thousandths: 1900 is our 1.9). The population stdev, as Envoy.
 * - Failure percentage: a server whose failure share is at least `failure_percentage_threshold` is an outlier,
 *   whatever the others do (Envoy `failure_percentage_threshold`), so a pool where every server fails is caught too.
 *
 * Pure: counts in, outliers out, worst first (so a max_ejection_percent cap keeps the worst ones out).
 */

export interface IntervalCounts<K> {
  readonly key: K;
  readonly successes: number;
  readonly failures: number;
}

export interface VolumeRule {
  readonly minimumHosts: number;
  readonly requestVolume: number;
}

function withVolume<K>(counts: readonly IntervalCounts<K>[], rule: VolumeRule): IntervalCounts<K>[] | undefined {
  const eligible = counts.filter((c) => c.successes + c.failures >= rule.requestVolume);
  return eligible.length >= rule.minimumHosts && eligible.length > 0 ? eligible : undefined;
}

function rate(c: IntervalCounts<unknown>): number {
  return c.successes / (c.successes + c.failures);
}

export interface SuccessRateVerdict<K> {
  readonly key: K;
  readonly successRate: number;
  /** The rate below which a server was an outlier this interval. */
  readonly threshold: number;
}

export function successRateOutliers<K>(counts: readonly IntervalCounts<K>[], rule: VolumeRule & { readonly stdevFactor: number }): SuccessRateVerdict<K>[] {
  const eligible = withVolume(counts, rule);
  if (eligible === undefined) return [];
  const rates = eligible.map(rate);
  const mean = rates.reduce((a, b) => a + b, 0) / rates.length;
  const variance = rates.reduce((a, r) => a + (r - mean) ** 2, 0) / rates.length;
  const threshold = mean - rule.stdevFactor * Math.sqrt(variance);
  const out: SuccessRateVerdict<K>[] = [];
  eligible.forEach((c, i) => {
    if (rates[i]! < threshold) out.push({ key: c.key, successRate: rates[i]!, threshold });
  });
  return out.sort((a, b) => a.successRate - b.successRate);
}

export interface FailurePercentageVerdict<K> {
  readonly key: K;
  readonly failureShare: number;
}

export function failurePercentageOutliers<K>(counts: readonly IntervalCounts<K>[], rule: VolumeRule & { readonly threshold: number }): FailurePercentageVerdict<K>[] {
  const eligible = withVolume(counts, rule);
  if (eligible === undefined) return [];
  const out: FailurePercentageVerdict<K>[] = [];
  for (const c of eligible) {
    const share = 1 - rate(c);
    if (share >= rule.threshold - 1e-9) out.push({ key: c.key, failureShare: share });
  }
  return out.sort((a, b) => b.failureShare - a.failureShare);
}
