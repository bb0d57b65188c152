/**
 * The contract between the upstream pool and the balancing strategies.
 *
 * A strategy is built once per membership or weight change into an immutable Picker, which the request path reads
 * without locking or copying (Pingora `LoadBalancer::update`: rebuild, then swap in with one assignment).
 */

import type { Clock, Random } from '../util/clock.js';

export type BalanceName =
  | 'round-robin'
  | 'weighted-round-robin'
  | 'random'
  | 'least-request'
  | 'peak-ewma'
  | 'consistent-hash'
  | 'maglev';

export const BALANCE_NAMES: readonly BalanceName[] = [
  'round-robin',
  'weighted-round-robin',
  'random',
  'least-request',
  'peak-ewma',
  'consistent-hash',
  'maglev',
];

/** What a strategy may read of a server. The upstream's Host implements it; tests use plain objects. */
export interface BalancedHost {
  /** Stable identity ("10.0.0.1:8080"): the hash input, so every replica maps a key to the same server. */
  readonly address: string;
  /** Configured weight, >= 1. */
  readonly weight: number;
  /** The weight to balance with now: lower than `weight` while slow start ramps a server up. */
  readonly effectiveWeight: number;
  /** Requests in flight to this server, across all listeners. */
  readonly inflight: number;
  /** Peak-sensitive latency estimate and failure penalty, fed by the data path (see peak-ewma.ts). */
  readonly latency: LatencyObserver;
}

/** Latency statistics a host keeps for latency-aware strategies. */
export interface LatencyObserver {
  /** Current cost estimate in milliseconds (decayed to `now`). */
  estimate(now: number): number;
}

/** The key a hashing strategy maps to a server; undefined when the request carries none. */
export type HashKey = string;

/**
 * Candidates in preference order. The first host is the strategy's choice; the caller skips hosts it cannot use
 * (unhealthy, ejected, draining, over a limit, tried already) and keeps iterating (Pingora `BackendSelection::iter`).
 * Each host appears at most once per walk, so a retry walking on always reaches a different server.
 * An empty host set yields nothing.
 *
 * `retry`: this walk picks another server for a request whose first choice failed. A rotation takes it in a turn
 * of its own (a second cursor), so the next request's first choice is the one it would have been, and what fails
 * over is spread over the other servers in turn. (With one rotation, one of two servers refusing connections got
 * every request's first try; of three, the one after it got twice the other's share.)
 */
export interface Picker<H extends BalancedHost = BalancedHost> {
  candidates(key: HashKey | undefined, retry?: boolean): Iterable<H>;
}

export interface StrategyDeps {
  readonly random: Random;
  readonly clock: Clock;
}

export interface StrategyOptions {
  /** consistent-hash: virtual nodes per unit of weight. */
  readonly virtualNodes?: number;
  /** maglev: lookup table size, a prime. */
  readonly tableSize?: number;
  /** consistent-hash / maglev: bounded load factor (> 1), "consistent hashing with bounded loads". */
  readonly balanceFactor?: number;
  /** peak-ewma: decay window in ms. */
  readonly decayMs?: number;
}

export interface Strategy {
  readonly name: BalanceName;
  build<H extends BalancedHost>(hosts: readonly H[], deps: StrategyDeps, options?: StrategyOptions): Picker<H>;
}
