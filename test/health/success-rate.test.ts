import { describe, expect, it } from 'vitest';
import { brokenRule, classifyOutcome, NO_FAILURES, nextRuns, type FailureRuns } from '../../src/health/consecutive-failures.js';
import { failurePercentageOutliers, successRateOutliers } from '../../src/health/success-rate.js';
import { CONNECT_FAILURE, RESET, TIMEOUT, type Outcome } from '../../src/upstream/outcome.js';

const c = (key: string, successes: number, failures: number) => ({ key, successes, failures });
const volume = { minimumHosts: 5, requestVolume: 100 };

describe('success-rate ejection', () => {
  it('ejects a server below mean − factor × stdev', () => {
    const counts = [c('a', 100, 0), c('b', 100, 0), c('c', 100, 0), c('d', 100, 0), c('e', 50, 50)];
    // rates 1,1,1,1,0.5: mean 0.9, population stdev 0.2, threshold 0.9 − 1.9 × 0.2 = 0.52.
    const out = successRateOutliers(counts, { ...volume, stdevFactor: 1.9 });
    expect(out).toHaveLength(1);
    expect(out[0]!.key).toBe('e');
    expect(out[0]!.threshold).toBeCloseTo(0.52, 10);
  });

  it('ejects nobody when all are equally bad (that is for failure percentage)', () => {
    const counts = ['a', 'b', 'c', 'd', 'e'].map((k) => c(k, 10, 90));
    expect(successRateOutliers(counts, { ...volume, stdevFactor: 1.9 })).toEqual([]);
  });

  it('needs success_rate_minimum_hosts servers with success_rate_request_volume each', () => {
    const counts = [c('a', 100, 0), c('b', 100, 0), c('c', 100, 0), c('d', 99, 0), c('e', 50, 50)];
    expect(successRateOutliers(counts, { ...volume, stdevFactor: 1.9 })).toEqual([]);
    expect(successRateOutliers(counts.slice(0, 4), { minimumHosts: 4, requestVolume: 100, stdevFactor: 0.5 })).toEqual([]);
  });

  it('orders outliers worst first', () => {
    const counts = [...['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'].map((k) => c(k, 100, 0)), c('x', 60, 40), c('y', 20, 80)];
    expect(successRateOutliers(counts, { ...volume, stdevFactor: 1 }).map((v) => v.key)).toEqual(['y', 'x']);
  });
});

describe('failure-percentage ejection', () => {
  it('ejects every server at or above the threshold, even when all fail', () => {
    const counts = [c('a', 50, 50), c('b', 49, 51), c('c', 51, 49), c('d', 0, 100), c('e', 100, 0)];
    expect(failurePercentageOutliers(counts, { ...volume, threshold: 0.5 }).map((v) => v.key)).toEqual(['d', 'b', 'a']);
  });

  it('has the same volume rules', () => {
    expect(failurePercentageOutliers([c('a', 0, 100)], { ...volume, threshold: 0.5 })).toEqual([]);
    expect(failurePercentageOutliers([c('a', 0, 100)], { minimumHosts: 1, requestVolume: 100, threshold: 0.5 })).toHaveLength(1);
  });
});

describe('consecutive failures', () => {
  const r = (status: number): Outcome => ({ kind: 'response', status, latencyMs: 1 });

  it('classifies outcomes, keeping local-origin failures apart from upstream 5xx', () => {
    expect([r(200), r(404), r(499), r(500), r(501), r(502), r(503), r(504), r(505)].map(classifyOutcome)).toEqual([
      'success', 'success', 'success', 'upstream-5xx', 'upstream-5xx', 'gateway', 'gateway', 'gateway', 'upstream-5xx',
    ]);
    expect([CONNECT_FAILURE, TIMEOUT, RESET].map(classifyOutcome)).toEqual(['local-origin', 'local-origin', 'local-origin']);
  });

  const runOf = (outcomes: Outcome[]): FailureRuns => outcomes.reduce((runs, o) => nextRuns(runs, classifyOutcome(o)), NO_FAILURES);
  const T = { failures: 5, gateway: 3 };

  it.each<[string, Outcome[], string | undefined]>([
    ['five 500s', [r(500), r(500), r(500), r(500), r(500)], 'consecutive_failures'],
    ['four 500s', [r(500), r(500), r(500), r(500)], undefined],
    ['a 200 resets', [r(500), r(500), r(500), r(500), r(200), r(500)], undefined],
    ['a 404 resets (the server works)', [r(500), r(500), r(500), r(500), r(404), r(500)], undefined],
    ['three 503s', [r(503), r(503), r(503)], 'consecutive_gateway_failures'],
    ['a 500 breaks a gateway run (Envoy)', [r(503), r(503), r(500), r(503)], undefined],
    ['three refused connects', [CONNECT_FAILURE, CONNECT_FAILURE, CONNECT_FAILURE], 'consecutive_local_origin_failures'],
    ['timeouts and resets are local too', [TIMEOUT, RESET, CONNECT_FAILURE], 'consecutive_local_origin_failures'],
    ['mixed local and 502 is a gateway run', [CONNECT_FAILURE, r(502), CONNECT_FAILURE], 'consecutive_gateway_failures'],
    ['local failures count as failures too', [r(500), r(500), CONNECT_FAILURE, r(500), r(500)], 'consecutive_failures'],
  ])('%s → %s', (_name, outcomes, reason) => {
    expect(brokenRule(runOf(outcomes), T)).toBe(reason);
  });

  it('a threshold of 0 turns its rule off', () => {
    const runs = runOf([r(503), r(503), r(503), r(503), r(503)]);
    expect(brokenRule(runs, { failures: 0, gateway: 0 })).toBeUndefined();
    expect(brokenRule(runs, { failures: 5, gateway: 0 })).toBe('consecutive_failures');
  });
});
