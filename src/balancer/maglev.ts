/**
 * Maglev hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load Balancer", NSDI 2016, §3.4),
 * weighted as in Envoy's `MaglevTable`: each host walks its own permutation of a lookup table of prime size M
 * (offset and skip from two hashes of its address) and claims the next free slot in turn; a host of weight w takes
 * a turn in w of every maxWeight rounds. A key maps to table[murmur3(key) % M]; the walk goes on through the table
 * by a stride hashed from the key (distinct-walk.ts), yielding each host the first time it is met.
 *
 * Cost per pick: one murmur3 of the key and one array read, O(1); no allocation for the first candidate.
 * Build: O(M log M) (the paper's bound), about a millisecond at the default M = 65,537. Spread: each host owns
 * within one slot of M × its share of the weight, so the balance is near perfect as long as M is at least ~100 × n.
 * Disruption: removing a host moves its keys and, unlike the ring, a few more (the paper measures ~1–2%).
 *
 * Weights are the configured `weight` (not `effectiveWeight`), for the same reason as consistent-hash.ts. Without a
 * key the pick falls back to round robin. With `balanceFactor`, loads are bounded as in bounded-load.ts.
 */

import { byAddress } from './address-order.js';
import { loadBoundFor, type LoadBound } from './bounded-load.js';
import { walkDistinct } from './distinct-walk.js';
import { murmur3 } from './hash.js';
import { Cursor, NOTHING, turns } from './rotation.js';
import type { BalancedHost, HashKey, Picker, Strategy, StrategyOptions } from './types.js';
import { configuredWeightOf } from './weights.js';

/** The paper's and Envoy's default: prime, and large enough for ~650 hosts at the recommended 100 slots each. */
export const DEFAULT_TABLE_SIZE = 65_537;

const OFFSET_SEED = 0xa5a5a5a5;
const SKIP_SEED = 0x5a5a5a5a;

export const maglev: Strategy = {
  name: 'maglev',
  build<H extends BalancedHost>(hosts: readonly H[], _deps: unknown, options?: StrategyOptions): Picker<H> {
    return new MaglevPicker(hosts, options ?? {});
  },
};

/**
 * Builds the lookup table of `hosts`, already in address order: `table[slot]` is an index into `hosts`.
 * Exported for the tests.
 */
export function buildMaglevTable(hosts: readonly BalancedHost[], tableSize: number): Uint32Array {
  const n = hosts.length;
  const m = tableSize;
  const position = new Float64Array(n);
  const skip = new Float64Array(n);
  const weight = new Float64Array(n);
  const target = new Float64Array(n);
  let maxWeight = 0;
  for (let i = 0; i < n; i++) {
    const host = hosts[i]!;
    position[i] = murmur3(host.address, OFFSET_SEED) % m;
    skip[i] = (murmur3(host.address, SKIP_SEED) % (m - 1)) + 1;
    // A host with no usable weight still gets its first-round slot, so every host is reachable by a walk.
    weight[i] = configuredWeightOf(host);
    if (weight[i]! > maxWeight) maxWeight = weight[i]!;
  }
  const table = new Uint32Array(m);
  const taken = new Uint8Array(m);
  let filled = 0;
  // Round r: host i takes a turn when r × weight ≥ its target, then its target grows by maxWeight, so the heaviest
  // host fills a slot every round and one of a third its weight every third round (Envoy `MaglevTable` build).
  for (let round = 1; filled < m; round++) {
    for (let i = 0; i < n && filled < m; i++) {
      if (round * weight[i]! < target[i]!) continue;
      target[i]! += maxWeight;
      // skip is in [1, M - 1] and M is prime, so the permutation visits every slot: this loop ends.
      let slot = position[i]!;
      while (taken[slot] === 1) {
        slot += skip[i]!;
        if (slot >= m) slot -= m;
      }
      taken[slot] = 1;
      table[slot] = i;
      slot += skip[i]!;
      position[i] = slot >= m ? slot - m : slot;
      filled++;
    }
  }
  return table;
}

function tableSizeOption(value: number | undefined, hosts: number): number {
  const size = value ?? DEFAULT_TABLE_SIZE;
  if (!Number.isInteger(size) || !isPrime(size)) {
    throw new RangeError(`maglev tableSize must be a prime number (e.g. 65537 or 655373), got ${size}`);
  }
  if (size < hosts) {
    throw new RangeError(
      `maglev tableSize ${size} is smaller than the ${hosts} hosts; use a prime of at least 100 × hosts`,
    );
  }
  return size;
}

export function isPrime(n: number): boolean {
  if (n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

class MaglevPicker<H extends BalancedHost> implements Picker<H> {
  /** Configuration order, for the round-robin fallback. */
  readonly #hosts: readonly H[];
  /** Address order: what table entries index. */
  readonly #ranked: readonly H[];
  readonly #table: Uint32Array;
  readonly #bound: LoadBound | undefined;
  readonly #cursor = new Cursor();
  /** Keyless retries take their turns here, apart from first choices (types.ts, Picker). */
  readonly #retryCursor = new Cursor();

  constructor(hosts: readonly H[], options: StrategyOptions) {
    const tableSize = tableSizeOption(options.tableSize, hosts.length);
    this.#hosts = [...hosts];
    this.#ranked = byAddress(hosts);
    this.#table = hosts.length === 0 ? new Uint32Array(0) : buildMaglevTable(this.#ranked, tableSize);
    this.#bound = loadBoundFor(this.#ranked, options.balanceFactor);
  }

  candidates(key: HashKey | undefined, retry = false): Iterable<H> {
    const n = this.#hosts.length;
    if (n === 0) return NOTHING;
    if (key === undefined) return turns(this.#hosts, retry ? this.#retryCursor : this.#cursor);
    const slot = murmur3(key) % this.#table.length;
    return walkDistinct(this.#ranked, this.#table, slot, this.#bound, key);
  }
}
