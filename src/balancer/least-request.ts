/**
 * Least request by power of two choices: of two distinct hosts drawn at random (in proportion to effective weight),
 * prefer the one with fewer requests in flight per unit of weight (inflight / effectiveWeight).
 *
 * Cost per pick: O(log n) expected, no allocation beyond the generator (p2c.ts). Source: Envoy `LEAST_REQUEST`
 * (choice_count 2; with unequal weights Envoy too scales each host's weight down by its active requests), Finagle
 * `P2CLeastLoaded`.
 *
 * Two random choices instead of a global minimum: every replica and listener picking the single least-loaded host
 * would herd onto it between load updates, while two choices already keep the busiest host within O(log log n) of
 * the average, against O(log n / log log n) for one random choice (Mitzenmacher 2001).
 */

import { powerOfTwoChoices } from './p2c.js';
import { NOTHING } from './rotation.js';
import type { BalancedHost, Picker, Strategy, StrategyDeps } from './types.js';
import type { Random } from '../util/clock.js';
import { WeightedSampler } from './weighted-sample.js';
import { effectiveWeightOf } from './weights.js';

export const leastRequest: Strategy = {
  name: 'least-request',
  build<H extends BalancedHost>(hosts: readonly H[], deps: StrategyDeps): Picker<H> {
    return new LeastRequestPicker([...hosts], deps.random);
  },
};

/** Requests in flight per unit of effective weight; a host at weight 0 (slow start not begun) loses to any other. */
export function loadOf(host: BalancedHost): number {
  const w = effectiveWeightOf(host);
  return w > 0 ? host.inflight / w : Infinity;
}

function fewerPerWeight(a: BalancedHost, b: BalancedHost): boolean {
  return loadOf(b) < loadOf(a);
}

class LeastRequestPicker<H extends BalancedHost> implements Picker<H> {
  readonly #hosts: readonly H[];
  readonly #random: Random;
  readonly #sampler: WeightedSampler<H>;

  constructor(hosts: readonly H[], rnd: Random) {
    this.#hosts = hosts;
    this.#random = rnd;
    this.#sampler = new WeightedSampler(hosts, rnd);
  }

  candidates(): Iterable<H> {
    if (this.#hosts.length === 0) return NOTHING;
    return powerOfTwoChoices(this.#hosts, this.#sampler, this.#random, fewerPerWeight, 0);
  }
}
