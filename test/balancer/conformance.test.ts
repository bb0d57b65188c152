/**
 * The contract every strategy keeps (types.ts, `Picker`), run over all of them, like Hono's common.case.test.ts:
 * an empty set yields nothing, a walk yields each host at most once and all of them when walked to the end,
 * weights are respected, and the same seed gives the same choices.
 */

import { describe, expect, it } from 'vitest';

import { BALANCE_NAMES, strategyFor } from '../../src/balancer/index.js';
import type { Picker, Strategy, StrategyDeps } from '../../src/balancer/types.js';
import {
  FixedLatency,
  ManualClock,
  first,
  makeHost,
  makeHosts,
  mulberry32,
  take,
  userKeys,
  type TestHost,
} from './helpers.js';

/** How a strategy honours weights: not at all, in the share of picks, or in the share of keys. */
type WeightMode = 'ignored' | 'picks' | 'keys';

const MODES: Record<string, WeightMode> = {
  'round-robin': 'ignored',
  'weighted-round-robin': 'picks',
  random: 'picks',
  'least-request': 'picks',
  'peak-ewma': 'picks',
  'consistent-hash': 'keys',
  maglev: 'keys',
};

function deps(seed = 42): StrategyDeps {
  return { random: mulberry32(seed), clock: new ManualClock().now };
}

/** Alternates requests with and without a key, so hashing strategies run both their walks. */
function keyFor(i: number): string | undefined {
  return i % 3 === 2 ? undefined : `key-${i}`;
}

const cases = BALANCE_NAMES.map((name) => ({ name, strategy: strategyFor(name), mode: MODES[name]! }));

describe.each(cases)('$name', ({ strategy, mode }: { strategy: Strategy; mode: WeightMode }) => {
  it('yields nothing for an empty host set, with or without a key', () => {
    const picker = strategy.build([], deps());
    expect(take(picker.candidates(undefined))).toEqual([]);
    expect(take(picker.candidates('k'))).toEqual([]);
  });

  it('yields the only host of a one-host set, once', () => {
    const only = makeHost('10.0.0.1:8080', 3);
    const picker = strategy.build([only], deps());
    expect(take(picker.candidates(undefined))).toEqual([only]);
    expect(take(picker.candidates('k'))).toEqual([only]);
  });

  it.each([2, 3, 7, 64])('yields each of %i hosts exactly once over a full walk', (n) => {
    const hosts = makeHosts(Array.from({ length: n }, (_, i) => 1 + (i % 4)));
    // Some load and latency, so the load-aware strategies' comparisons are exercised too.
    hosts.forEach((h, i) => {
      h.inflight = (i * 7) % 5;
      h.latency = new FixedLatency(5 + ((i * 3) % 11));
    });
    const picker = strategy.build(hosts, deps());
    for (let i = 0; i < 200; i++) {
      const walk = take(picker.candidates(keyFor(i)));
      expect(walk).toHaveLength(n);
      expect(new Set(walk)).toEqual(new Set(hosts));
    }
  });

  it('never repeats a host within a walk, while other walks interleave with it', () => {
    const hosts = makeHosts([1, 2, 3, 1, 2, 3, 1, 2]);
    const picker = strategy.build(hosts, deps());
    for (let i = 0; i < 50; i++) {
      // A request takes its first choice, many others are served, then it retries down its own walk.
      const a = picker.candidates(keyFor(i))[Symbol.iterator]();
      const yielded = [a.next().value];
      for (let j = 0; j < 5; j++) take(picker.candidates(keyFor(i + j + 1)), 2 + j);
      hosts[i % hosts.length]!.inflight += 1;
      for (let r = a.next(); r.done !== true; r = a.next()) yielded.push(r.value);
      expect(yielded).toHaveLength(hosts.length);
      expect(new Set(yielded).size).toBe(hosts.length);
    }
  });

  it('reaches every host even when some are at effective weight 0 (slow start not begun)', () => {
    const hosts = makeHosts([2, 2, 2, 2]);
    hosts[1]!.effectiveWeight = 0;
    hosts[3]!.effectiveWeight = 0;
    const picker = strategy.build(hosts, deps());
    for (let i = 0; i < 20; i++) expect(new Set(take(picker.candidates(keyFor(i))))).toEqual(new Set(hosts));
  });

  it('is not affected by later changes to the array it was built from', () => {
    const hosts = makeHosts([1, 1, 1]);
    const array = [...hosts];
    const picker = strategy.build(array, deps());
    array.length = 0;
    array.push(makeHost('10.9.9.9:1'));
    for (let i = 0; i < 10; i++) expect(new Set(take(picker.candidates(keyFor(i))))).toEqual(new Set(hosts));
  });

  it('makes the same choices when built twice with the same seed', () => {
    const walks = (seed: number): string[][] => {
      const hosts = makeHosts([3, 1, 2, 5, 1]);
      const picker = strategy.build(hosts, deps(seed));
      const out: string[][] = [];
      for (let i = 0; i < 300; i++) {
        const walk = take(picker.candidates(keyFor(i)), 1 + (i % 5));
        out.push(walk.map((h) => h.address));
        // Load moves with the choices, as it would in a proxy, so load-aware strategies see the same history.
        walk[0]!.inflight += 1;
        if (i % 4 === 3) for (const h of hosts) h.inflight = Math.max(0, h.inflight - 1);
      }
      return out;
    };
    const a = walks(7);
    expect(walks(7)).toEqual(a);
    // And the seed does matter where a strategy is random, so the test above is not vacuous for them.
    if (['random', 'least-request', 'peak-ewma'].includes(strategy.name)) expect(walks(8)).not.toEqual(a);
  });

  it('respects weights', () => {
    const weights = [1, 2, 3, 4];
    const total = 10;
    const hosts = makeHosts(weights);
    const picker = strategy.build(hosts, deps(1));
    const counts = new Map<TestHost, number>(hosts.map((h) => [h, 0]));
    if (mode === 'keys') {
      const keys = userKeys(10_000);
      for (const key of keys) {
        const h = first(picker, key);
        counts.set(h, counts.get(h)! + 1);
      }
      // Each host's share of keys within ±10% (relative) of its share of the weight.
      hosts.forEach((h, i) => {
        const expected = (keys.length * weights[i]!) / total;
        expect(Math.abs(counts.get(h)! - expected) / expected).toBeLessThan(0.1);
      });
      return;
    }
    // A closed loop: each pick starts a request, and the oldest completes once 100 are in flight, so least-request
    // and peak-ewma see realistic load. Every host answers in 10 ms.
    for (const h of hosts) h.latency = new FixedLatency(10);
    const picks = 20_000;
    const queue: TestHost[] = [];
    for (let i = 0; i < picks; i++) {
      const h = first(picker);
      counts.set(h, counts.get(h)! + 1);
      h.inflight++;
      queue.push(h);
      if (queue.length > 100) queue.shift()!.inflight--;
    }
    hosts.forEach((h, i) => {
      const share = counts.get(h)! / picks;
      const expected = mode === 'ignored' ? 1 / hosts.length : weights[i]! / total;
      // Round robin is exact; the others within 2 percentage points.
      expect(Math.abs(share - expected)).toBeLessThan(mode === 'ignored' ? 1e-9 : 0.02);
    });
  });
});

describe('the strategy table', () => {
  it('has one strategy per configured name, under that name', () => {
    for (const name of BALANCE_NAMES) expect(strategyFor(name).name).toBe(name);
  });

  it('refuses a name it does not know', () => {
    expect(() => strategyFor('fastest' as never)).toThrow(/unknown balance strategy "fastest"/);
  });

  it('builds pickers that satisfy the Picker type for a subtype of BalancedHost', () => {
    const hosts = makeHosts([1, 2]);
    const picker: Picker<TestHost> = strategyFor('maglev').build(hosts, deps());
    expect(hosts).toContain(first(picker, 'x'));
  });
});
