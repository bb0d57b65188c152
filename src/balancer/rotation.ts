/**
 * Rotation: every host once, starting at a given index and wrapping around.
 *
 * Cost: O(1) per candidate, no allocation beyond the generator. This is the walk of round robin and the order the
 * hashing strategies fall back to when a request carries no key.
 */

/** The walk of an empty host set; shared so that picking from an empty pool allocates nothing. */
export const NOTHING: readonly never[] = Object.freeze([]);

/**
 * The walk of a rotating cursor: from where the cursor stands, every host once, wrapping around, the cursor moving
 * past each host as it is yielded. The next walk therefore starts just after the host this one was taken at, and a
 * host skipped as unavailable does not hand its turn to its neighbour: with one of three servers down the other two
 * alternate. (Moving the cursor one step per walk gave every turn of a down server to the next one, which then took
 * twice the traffic of the others.)
 */
export function* turns<H>(hosts: readonly H[], cursor: Cursor): Generator<H, void, undefined> {
  const n = hosts.length;
  let j = cursor.start(n);
  for (let i = 0; i < n; i++) {
    cursor.passed(j, n);
    yield hosts[j]!;
    j = j + 1 === n ? 0 : j + 1;
  }
}

/** Where the next walk over `n` hosts starts. Owned by one picker, never shared. */
export class Cursor {
  #next = 0;

  /** The index the next walk starts at, in [0, n). */
  start(n: number): number {
    return this.#next < n ? this.#next : 0;
  }

  /** The walk has reached `index`: the next one starts after it. */
  passed(index: number, n: number): void {
    this.#next = index + 1 === n ? 0 : index + 1;
  }
}
