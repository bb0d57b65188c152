/**
 * Weighted random sampling by effective weight, one draw at a time or as a whole order without replacement.
 *
 * Cost: a draw is O(log n) expected. A binary search over prefix sums of the configured weights (built once) proposes
 * a host, which is accepted with probability effectiveWeight / weight: rejection sampling, exact because the
 * effective weight never exceeds the configured one (weights.ts), and it needs no O(n) re-summing while slow start
 * moves effective weights between rebuilds. After MAX_TRIES rejections (most of the weight is slow-starting or
 * excluded) a draw falls back to an exact O(n) scan, so it always terminates; mixing the two keeps the draw exact.
 * Ordering the rest of the hosts without replacement is O(n log n), with exponential keys Exp(1) / weight sorted
 * ascending (Efraimidis & Spirakis, "Weighted random sampling with a reservoir", IPL 2006).
 */

import type { BalancedHost } from './types.js';
import type { Random } from '../util/clock.js';
import { configuredWeightOf, effectiveWeightOf } from './weights.js';

/** Rejections before a draw switches to the exact scan; at 8 a pool with half its weight usable falls back 1 in 256. */
const MAX_TRIES = 8;

/** An empty exclusion list, shared so that the common draw allocates nothing. */
export const NONE: readonly number[] = Object.freeze([]);

export class WeightedSampler<H extends BalancedHost> {
  readonly #hosts: readonly H[];
  readonly #random: Random;
  /** cumulative[i] = configured weight of hosts[0..i]: the proposal distribution. */
  readonly #cumulative: Float64Array;
  readonly #total: number;

  constructor(hosts: readonly H[], random: Random) {
    this.#hosts = hosts;
    this.#random = random;
    this.#cumulative = new Float64Array(hosts.length);
    let total = 0;
    for (let i = 0; i < hosts.length; i++) {
      total += configuredWeightOf(hosts[i]!);
      this.#cumulative[i] = total;
    }
    this.#total = total;
  }

  /** An index drawn with probability proportional to effective weight; uniform if every weight is 0; -1 if n = 0. */
  draw(): number {
    return this.#draw(-1, NONE);
  }

  /** As draw(), among the hosts other than `index`; -1 if there are none. */
  drawExcept(index: number): number {
    return this.#draw(index, NONE);
  }

  /** As draw(), among the hosts not in `taken` (a short list of distinct indices); -1 if there are none. */
  drawExceptAll(taken: readonly number[]): number {
    return this.#draw(-1, taken);
  }

  /**
   * Every index not in `taken`, in weighted random order without replacement: each position is drawn from the rest
   * in proportion to effective weight. Hosts at effective weight 0 come last, in uniform random order.
   */
  order(taken: readonly number[]): number[] {
    const n = this.#hosts.length;
    const keys = new Float64Array(n);
    const weighted: number[] = [];
    const idle: number[] = [];
    for (let i = 0; i < n; i++) {
      if (taken.includes(i)) continue;
      const w = effectiveWeightOf(this.#hosts[i]!);
      if (w > 0) {
        // 1 - random() is in (0, 1], so the log is finite.
        keys[i] = -Math.log(1 - this.#random()) / w;
        weighted.push(i);
      } else {
        idle.push(i);
      }
    }
    weighted.sort((a, b) => keys[a]! - keys[b]! || a - b);
    for (let i = idle.length - 1; i > 0; i--) {
      const j = Math.floor(this.#random() * (i + 1));
      const t = idle[i]!;
      idle[i] = idle[j]!;
      idle[j] = t;
    }
    for (const i of idle) weighted.push(i);
    return weighted;
  }

  #draw(excluded: number, taken: readonly number[]): number {
    const n = this.#hosts.length;
    if (this.#total > 0) {
      for (let t = 0; t < MAX_TRIES; t++) {
        const i = this.#propose(this.#random() * this.#total);
        if (i === excluded || taken.includes(i)) continue;
        const cap = configuredWeightOf(this.#hosts[i]!);
        const w = effectiveWeightOf(this.#hosts[i]!);
        if (w >= cap || this.#random() * cap < w) return i;
      }
    }
    // Exact fallback: sum the effective weights of the hosts still allowed.
    let sum = 0;
    let allowed = 0;
    for (let i = 0; i < n; i++) {
      if (i === excluded || taken.includes(i)) continue;
      allowed++;
      sum += effectiveWeightOf(this.#hosts[i]!);
    }
    if (allowed === 0) return -1;
    if (sum > 0) {
      let x = this.#random() * sum;
      let last = -1;
      for (let i = 0; i < n; i++) {
        if (i === excluded || taken.includes(i)) continue;
        const w = effectiveWeightOf(this.#hosts[i]!);
        if (w <= 0) continue;
        last = i;
        x -= w;
        if (x < 0) return i;
      }
      return last; // floating-point rounding left x at ~0: the last weighted host
    }
    // Every allowed host is at effective weight 0 (a whole pool in early slow start): share evenly.
    let k = Math.floor(this.#random() * allowed);
    for (let i = 0; i < n; i++) {
      if (i === excluded || taken.includes(i)) continue;
      if (k-- === 0) return i;
    }
    return -1;
  }

  /** The first index whose cumulative weight exceeds x (binary search). */
  #propose(x: number): number {
    const c = this.#cumulative;
    let lo = 0;
    let hi = c.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (c[mid]! > x) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}
