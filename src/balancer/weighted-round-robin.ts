/**
 * Smooth weighted round robin, NGINX's algorithm (`ngx_http_upstream_get_peer` in ngx_http_upstream_round_robin.c):
 * every pick adds each host's weight to its current weight, chooses the host with the highest current weight (the
 * first on a tie) and subtracts the total weight from it. A 5:1:1 pool gives a a b a c a a, then repeats.
 *
 * Cost per pick: O(n), one read of each host's effective weight, no allocation beyond the generator. Each of the
 * next few candidates of a retry walk is another O(n) scan; a walk that goes further sorts the rest once,
 * O(n log n). NGINX pays the same O(n); an EDF heap (Envoy, Traefik) is O(log n) but not smooth in this sense.
 *
 * Why smooth: each host is never more than 1 pick ahead of its share, nor more than n - 1 behind: its current
 * weight is exactly weight × picks so far - total × times chosen, and (weights fixed) stays within
 * (-total, (n - 1) × total). So a heavy host's picks are interleaved with the others rather than sent in a burst.
 *
 * The weights are `effectiveWeight`, read at every pick: slow start changes them and the rotation follows without a
 * rebuild. If every host is at weight 0 (a whole pool in early slow start), the pick treats them as equal.
 */

import { NOTHING } from './rotation.js';
import type { BalancedHost, Picker, Strategy } from './types.js';
import { configuredWeightOf } from './weights.js';

/** Retry candidates found by a scan each, before the rest is sorted once. */
const SCANNED_RETRIES = 4;

export const weightedRoundRobin: Strategy = {
  name: 'weighted-round-robin',
  build<H extends BalancedHost>(hosts: readonly H[]): Picker<H> {
    return new SmoothWeightedPicker([...hosts]);
  },
};

class SmoothWeightedPicker<H extends BalancedHost> implements Picker<H> {
  readonly #hosts: readonly H[];
  /** Configured weights: the ceiling on effective weights (weights.ts), fixed for the life of the picker. */
  readonly #caps: Float64Array;
  /** NGINX's `current_weight`, one per host; the state that makes the rotation smooth. */
  readonly #current: Float64Array;

  constructor(hosts: readonly H[]) {
    this.#hosts = hosts;
    this.#caps = Float64Array.from(hosts, configuredWeightOf);
    this.#current = new Float64Array(hosts.length);
  }

  candidates(): Iterable<H> {
    return this.#hosts.length === 0 ? NOTHING : this.#walk();
  }

  *#walk(): Generator<H, void, undefined> {
    const hosts = this.#hosts;
    const caps = this.#caps;
    const current = this.#current;
    const n = hosts.length;
    let total = 0;
    let best = 0;
    for (let i = 0; i < n; i++) {
      // effectiveWeightOf, inlined with the configured weights read once at build: this loop is the whole cost.
      let w = hosts[i]!.effectiveWeight;
      if (!(w > 0)) w = 0;
      else if (w > caps[i]!) w = caps[i]!;
      current[i]! += w;
      total += w;
      if (current[i]! > current[best]!) best = i;
    }
    if (total === 0) {
      for (let i = 0; i < n; i++) {
        current[i]! += 1;
        if (current[i]! > current[best]!) best = i;
      }
      total = n;
    }
    current[best]! -= total;
    yield hosts[best]!;
    if (n === 1) return;
    // A retry: the rest, most-owed first (the host this rotation would choose next), as the current weights stand
    // when the caller asks. Retries do not move the rotation: only the first choice is a pick. The next few are
    // found by an O(n) scan each; a walk that goes further sorts what is left once.
    const taken = [best];
    while (taken.length < n && taken.length < SCANNED_RETRIES) {
      let next = -1;
      for (let i = 0; i < n; i++) {
        if (taken.includes(i)) continue;
        if (next < 0 || current[i]! > current[next]!) next = i;
      }
      taken.push(next);
      yield hosts[next]!;
    }
    if (taken.length === n) return;
    const rest: number[] = [];
    for (let i = 0; i < n; i++) if (!taken.includes(i)) rest.push(i);
    rest.sort((a, b) => current[b]! - current[a]! || a - b);
    for (const i of rest) yield hosts[i]!;
  }
}
