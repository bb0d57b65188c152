/**
 * Weighted random: the first candidate is drawn in proportion to effective weight; a walk goes on without
 * replacement, each further candidate drawn from the hosts not yet yielded, again in proportion to weight.
 *
 * Cost per pick: O(log n) expected for the first candidate and each of the next few (weighted-sample.ts); a walk
 * that goes further orders the rest once, O(n log n), which only long retry chains reach. Source: HAProxy `random`
 * with draws = 1, Envoy `RANDOM`; weighted sampling without replacement after Efraimidis & Spirakis (2006).
 */

import { NOTHING } from './rotation.js';
import type { BalancedHost, Picker, Strategy, StrategyDeps } from './types.js';
import type { Random } from '../util/clock.js';
import { WeightedSampler } from './weighted-sample.js';

/** Candidates drawn one by one (O(log n) each) before the rest is ordered in one O(n log n) pass. */
const SUCCESSIVE_DRAWS = 4;

export const random: Strategy = {
  name: 'random',
  build<H extends BalancedHost>(hosts: readonly H[], deps: StrategyDeps): Picker<H> {
    return new RandomPicker([...hosts], deps.random);
  },
};

class RandomPicker<H extends BalancedHost> implements Picker<H> {
  readonly #hosts: readonly H[];
  readonly #sampler: WeightedSampler<H>;

  constructor(hosts: readonly H[], rnd: Random) {
    this.#hosts = hosts;
    this.#sampler = new WeightedSampler(hosts, rnd);
  }

  candidates(): Iterable<H> {
    return this.#hosts.length === 0 ? NOTHING : this.#walk();
  }

  *#walk(): Generator<H, void, undefined> {
    const hosts = this.#hosts;
    const n = hosts.length;
    const first = this.#sampler.draw();
    yield hosts[first]!;
    if (n === 1) return;
    // Allocated only when the caller walks on past its first choice (a retry).
    const taken = [first];
    while (taken.length < n && taken.length < SUCCESSIVE_DRAWS) {
      const i = this.#sampler.drawExceptAll(taken);
      taken.push(i);
      yield hosts[i]!;
    }
    if (taken.length === n) return;
    for (const i of this.#sampler.order(taken)) yield hosts[i]!;
  }
}
