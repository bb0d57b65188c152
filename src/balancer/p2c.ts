/**
 * The power-of-two-choices walk shared by least-request.ts and peak-ewma.ts: draw two distinct hosts, yield the
 * cheaper first and the other second, then every remaining host once, in rotation from a random start.
 *
 * Cost per pick: two weighted draws, O(log n) expected (weighted-sample.ts), and one comparison; the tail of the walk
 * is O(1) per candidate. Source: Mitzenmacher, "The Power of Two Choices in Randomized Load Balancing" (2001);
 * Finagle `P2C`, Envoy `LEAST_REQUEST` (choice_count 2), Traefik `p2c.go`.
 *
 * The two hosts are drawn in proportion to effective weight, and a tie keeps the first drawn. So an idle or evenly
 * loaded pool is spread exactly by weight (the first draw decides), and under load the cost comparison takes over.
 */

import type { BalancedHost } from './types.js';
import type { Random } from '../util/clock.js';
import type { WeightedSampler } from './weighted-sample.js';

/**
 * True when `b` is strictly cheaper than `a` at `now`; on a tie the first drawn host stays first. A plain function
 * with `now` passed in, rather than a closure over it, so that a pick allocates no closure.
 */
export type Cheaper<H> = (a: H, b: H, now: number) => boolean;

export function* powerOfTwoChoices<H extends BalancedHost>(
  hosts: readonly H[],
  sampler: WeightedSampler<H>,
  random: Random,
  cheaper: Cheaper<H>,
  now: number,
): Generator<H, void, undefined> {
  const n = hosts.length;
  if (n === 0) return;
  if (n === 1) {
    yield hosts[0]!;
    return;
  }
  let a = sampler.draw();
  let b = sampler.drawExcept(a);
  if (cheaper(hosts[a]!, hosts[b]!, now)) {
    const t = a;
    a = b;
    b = t;
  }
  yield hosts[a]!;
  yield hosts[b]!;
  if (n === 2) return;
  // The rest: each once, from a random start so that retries after two failures do not all pile onto hosts[0].
  let j = Math.floor(random() * n);
  if (j >= n) j = n - 1;
  for (let k = 0; k < n; k++) {
    if (j !== a && j !== b) yield hosts[j]!;
    j = j + 1 === n ? 0 : j + 1;
  }
}
