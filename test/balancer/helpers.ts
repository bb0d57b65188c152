/**
 * Test doubles for the balancer: a seeded PRNG, a manual clock and mutable hosts.
 */

import type { BalancedHost, LatencyObserver, Picker } from '../../src/balancer/types.js';
import type { Clock } from '../../src/util/clock.js';

export { mulberry32 } from '../helpers/random.js';

/** A clock that moves only when told to. */
export class ManualClock {
  #now: number;

  constructor(start = 1_000) {
    this.#now = start;
  }

  readonly now: Clock = () => this.#now;

  advance(ms: number): void {
    this.#now += ms;
  }
}

/** A latency estimate fixed by the test. */
export class FixedLatency implements LatencyObserver {
  constructor(public value = 0) {}

  estimate(): number {
    return this.value;
  }
}

/** A host whose counters the test sets directly. */
export interface TestHost extends BalancedHost {
  address: string;
  weight: number;
  effectiveWeight: number;
  inflight: number;
  latency: LatencyObserver;
}

export function makeHost(address: string, weight = 1, latency: LatencyObserver = new FixedLatency()): TestHost {
  return { address, weight, effectiveWeight: weight, inflight: 0, latency };
}

/** Hosts 10.0.0.1:8080, 10.0.0.2:8080, … with the given weights. */
export function makeHosts(weights: readonly number[]): TestHost[] {
  return weights.map((w, i) => makeHost(`10.0.${i >> 8}.${(i & 255) + 1}:8080`, w));
}

/** `count` hosts of weight 1. */
export function uniformHosts(count: number): TestHost[] {
  return makeHosts(new Array<number>(count).fill(1));
}

/** The first `k` items of an iterable (all of them when k is omitted). */
export function take<T>(items: Iterable<T>, k = Infinity): T[] {
  const out: T[] = [];
  if (k <= 0) return out;
  for (const item of items) {
    out.push(item);
    if (out.length >= k) break;
  }
  return out;
}

/** The first candidate of a pick, failing the test if there is none. */
export function first<H extends BalancedHost>(picker: Picker<H>, key?: string): H {
  for (const host of picker.candidates(key)) return host;
  throw new Error('the picker yielded no candidate');
}

/** Stable keys: "user-0", "user-1", … */
export function userKeys(count: number, prefix = 'user-'): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}${i}`);
}

/** How many times each address occurs in `hosts`. */
export function countByAddress(hosts: Iterable<BalancedHost>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const h of hosts) counts.set(h.address, (counts.get(h.address) ?? 0) + 1);
  return counts;
}
