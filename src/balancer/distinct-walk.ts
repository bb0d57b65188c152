/**
 * The walk of the hashing strategies: from a start position in a sequence of owners (ring points in clockwise order,
 * or Maglev table entries), yield each owner the first time it appears, visiting every position once at most.
 *
 * Cost: the first candidate is O(1) and allocation-free; the next few are remembered in a short list, and a walk
 * that goes on past FEW hosts switches to one byte per host; a full walk reads up to the whole sequence. With
 * bounded loads, hosts over their bound are held back to the end of the walk (bounded-load.ts).
 *
 * The ring steps to the next position (the next point clockwise: a random host, as points are random). A Maglev
 * table must not: neighbouring slots are filled in a correlated order, and after one host's slots some host follows
 * 2.5 times as often as another, so the retries of a failed server would pile unevenly onto its peers. Given a
 * `strideKey`, the walk steps by a stride hashed from the key instead (double hashing), in [1, length - 1], which
 * visits every position of a prime-length table once; the stride is hashed only when the walk goes past its first
 * candidate.
 */

import { totalInflight, type LoadBound } from './bounded-load.js';
import { murmur3 } from './hash.js';
import type { BalancedHost } from './types.js';

const STRIDE_SEED = 0x2f0b3a49;

/** Hosts remembered in a list scanned linearly, before a walk allocates a byte per host: retries rarely go further. */
const FEW = 16;

/**
 * `owners[k]` is an index into `hosts`; every host must own at least one position (the ring and Maglev builders
 * guarantee it), so a walk that goes all the way round yields every host exactly once.
 */
export function* walkDistinct<H extends BalancedHost>(
  hosts: readonly H[],
  owners: Uint32Array,
  start: number,
  bound: LoadBound | undefined,
  strideKey?: string,
): Generator<H, void, undefined> {
  const n = hosts.length;
  const length = owners.length;
  // What the walk has met: the first owner alone, then a short list, then a byte per host.
  let first = -1;
  let few: number[] | undefined;
  let many: Uint8Array | undefined;
  let found = 0;
  let total = -1;
  let deferred: number[] | undefined;
  let pos = start;
  let stride = 0;
  for (let step = 0; step < length && found < n; step++) {
    if (step > 0) {
      if (stride === 0) stride = strideKey === undefined ? 1 : (murmur3(strideKey, STRIDE_SEED) % (length - 1)) + 1;
      pos += stride;
      if (pos >= length) pos -= length;
    }
    const owner = owners[pos]!;
    if (owner === first) continue;
    if (first < 0) {
      first = owner;
    } else if (many !== undefined) {
      if (many[owner] === 1) continue;
      many[owner] = 1;
    } else if (few === undefined) {
      few = [owner];
    } else {
      if (few.includes(owner)) continue;
      if (few.length < FEW) {
        few.push(owner);
      } else {
        many = new Uint8Array(n);
        many[first] = 1;
        for (const o of few) many[o] = 1;
        many[owner] = 1;
      }
    }
    found++;
    const host = hosts[owner]!;
    if (bound !== undefined && host.inflight > 0) {
      if (total < 0) total = totalInflight(hosts);
      if (bound.overloaded(owner, host.inflight, total)) {
        (deferred ??= []).push(owner);
        continue;
      }
    }
    yield host;
  }
  if (deferred !== undefined) for (const owner of deferred) yield hosts[owner]!;
}
