/**
 * The order the hashing strategies lay hosts out in: by address, never by position in the configuration.
 *
 * Cost: O(n log n) at build time only. Why: a ring or lookup table built from the same set of addresses must come
 * out the same in every replica and after any reordering of the server list, and ties (two ring points on the same
 * hash, two hosts claiming one Maglev slot) must be broken by something that survives a removal; array positions
 * shift when a server is removed, addresses do not.
 */

import type { BalancedHost } from './types.js';

/** A copy of `hosts` sorted by address (UTF-16 code-unit order: locale-independent); equal addresses keep order. */
export function byAddress<H extends BalancedHost>(hosts: readonly H[]): H[] {
  return [...hosts].sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
}
