/**
 * Rotation: every host once, starting at a given index and wrapping around.
 *
 * Cost: O(1) per candidate, no allocation beyond the generator. This is the walk of round robin, the order the
 * hashing strategies fall back to when a request carries no key, and the tail of the power-of-two-choices walk.
 */

/** The walk of an empty host set; shared so that picking from an empty pool allocates nothing. */
export const NOTHING: readonly never[] = Object.freeze([]);

/** Yields `hosts[start]`, `hosts[start + 1]`, … wrapping around, each host once. `start` must be in [0, n). */
export function* rotation<H>(hosts: readonly H[], start: number): Generator<H, void, undefined> {
  const n = hosts.length;
  let j = start;
  for (let i = 0; i < n; i++) {
    yield hosts[j]!;
    j = j + 1 === n ? 0 : j + 1;
  }
}

/** A rotating cursor: each call returns the next start index in [0, n). Owned by one picker, never shared. */
export class Cursor {
  #next = 0;

  advance(n: number): number {
    const start = this.#next < n ? this.#next : 0;
    this.#next = start + 1 === n ? 0 : start + 1;
    return start;
  }
}
