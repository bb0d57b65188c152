/**
 * Consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam, SODA 2018; Envoy `hash_balance_factor`,
 * HAProxy `hash-balance-factor`): a host is over its bound when taking one more request would put it above
 * ceil(factor × (total in flight + 1) × its share of the weight). The hash walk skips such hosts on its first pass
 * and offers them after every other host, so they stay reachable when nothing else is available.
 *
 * Cost: O(1) per host checked, plus one O(n) sum of the in-flight counters per walk, taken only when a candidate is
 * busy at all (an idle host is never over its bound), so a lightly loaded pool never pays it.
 */

import type { BalancedHost } from './types.js';
import { configuredWeightOf } from './weights.js';

/** Shields the ceiling from rounding: (1.5 × 2 × 1) / 3 must be 1, not 1.0000000000000002 rounded up to 2. */
const EPSILON = 1e-9;

export class LoadBound {
  readonly #factor: number;
  readonly #weights: Float64Array;
  readonly #totalWeight: number;

  /** `weights[i]` is the weight of the host the walk calls `i`. */
  constructor(factor: number, weights: Float64Array) {
    this.#factor = factor;
    this.#weights = weights;
    let total = 0;
    for (const w of weights) total += w;
    this.#totalWeight = total;
  }

  /** Whether host `i`, with `inflight` requests, would exceed its bound by taking one more, given the pool total. */
  overloaded(i: number, inflight: number, totalInflight: number): boolean {
    const share = (this.#factor * (totalInflight + 1) * this.#weights[i]!) / this.#totalWeight;
    // Every host may hold at least one request, so an idle host is never over (bounded-load walks rely on it).
    const capacity = Math.max(1, Math.ceil(share - EPSILON));
    return inflight + 1 > capacity;
  }
}

/** The sum of the hosts' in-flight counters. */
export function totalInflight(hosts: readonly BalancedHost[]): number {
  let total = 0;
  for (const host of hosts) total += host.inflight;
  return total;
}

/**
 * The bound for a hashing walk over `ranked` (configured weights, so keys do not move during slow start), from
 * `options.balanceFactor`: undefined turns bounded loads off; otherwise a finite number >= 1.
 */
export function loadBoundFor(ranked: readonly BalancedHost[], factor: number | undefined): LoadBound | undefined {
  if (factor === undefined) return undefined;
  if (!Number.isFinite(factor) || factor < 1) {
    throw new RangeError(`balanceFactor must be a number >= 1 (1.25 allows 25% above the average), got ${factor}`);
  }
  return new LoadBound(factor, Float64Array.from(ranked, configuredWeightOf));
}
