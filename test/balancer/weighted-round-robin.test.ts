import { describe, expect, it } from 'vitest';

import { weightedRoundRobin } from '../../src/balancer/weighted-round-robin.js';
import { first, makeHost, makeHosts, ManualClock, mulberry32, take, type TestHost } from './helpers.js';

const deps = { random: mulberry32(1), clock: new ManualClock().now };

function sequence(hosts: readonly TestHost[], picks: number): string[] {
  const picker = weightedRoundRobin.build(hosts, deps);
  return Array.from({ length: picks }, () => first(picker).address);
}

describe('smooth weighted round robin', () => {
  it('gives NGINX’s sequence for a 5:1:1 pool: a a b a c a a, then again', () => {
    const hosts = [makeHost('a', 5), makeHost('b', 1), makeHost('c', 1)];
    expect(sequence(hosts, 14).join(' ')).toBe('a a b a c a a a a b a c a a');
  });

  it('runs a 5:1:1 pool at most 4 picks in a row (the a a | a a across two periods), over 10,000 picks', () => {
    const picks = sequence([makeHost('a', 5), makeHost('b', 1), makeHost('c', 1)], 10_000);
    let longest = 0;
    let run = 0;
    for (let i = 0; i < picks.length; i++) {
      run = i > 0 && picks[i] === picks[i - 1] ? run + 1 : 1;
      longest = Math.max(longest, run);
    }
    expect(longest).toBe(4);
    // b and c are never picked twice in a row.
    expect(picks.join('')).not.toMatch(/bb|cc/);
  });

  // The current weight of host i after t picks is t × w_i - W × count_i(t), and stays in (-W, (n - 1) × W), so
  // count_i(t) - t × w_i / W lies in (-(n - 1), 1) at every t: never a full pick ahead of its share, never n - 1
  // behind. That bounds both the shares and how long any host can hog the rotation.
  const pools: number[][] = [
    [5, 1, 1],
    [1, 1],
    [3, 2],
    [10, 1],
    [1, 2, 3, 4, 5],
    [7, 7, 7, 1],
    [100, 1, 1, 1, 50],
  ];
  const rnd = mulberry32(99);
  for (let i = 0; i < 5; i++) {
    pools.push(Array.from({ length: 2 + Math.floor(rnd() * 12) }, () => 1 + Math.floor(rnd() * 20)));
  }

  it.each(pools)('keeps every host within (-(n-1), 1) picks of its share at every step: weights %j', (...weights) => {
    const hosts = makeHosts(weights);
    const picker = weightedRoundRobin.build(hosts, deps);
    const total = weights.reduce((a, b) => a + b, 0);
    const n = weights.length;
    const counts = new Map<TestHost, number>(hosts.map((h) => [h, 0]));
    let worstAhead = -Infinity;
    let worstBehind = Infinity;
    const picks = 10_000;
    for (let t = 1; t <= picks; t++) {
      const h = first(picker);
      counts.set(h, counts.get(h)! + 1);
      hosts.forEach((host, i) => {
        const lag = counts.get(host)! - (t * weights[i]!) / total;
        worstAhead = Math.max(worstAhead, lag);
        worstBehind = Math.min(worstBehind, lag);
      });
    }
    expect(worstAhead).toBeLessThan(1);
    expect(worstBehind).toBeGreaterThan(-(n - 1) - 1e-9);
    // Hence shares within 0.5 percentage points over 10,000 picks (in fact within (n - 1) / 10,000).
    hosts.forEach((h, i) => expect(Math.abs(counts.get(h)! / picks - weights[i]! / total)).toBeLessThan(0.005));
  });

  it('picks each host exactly `weight` times in every period of `total weight` picks', () => {
    const weights = [4, 3, 2, 1];
    const picks = sequence(makeHosts(weights), 100);
    for (let p = 0; p < 100; p += 10) {
      const period = picks.slice(p, p + 10);
      makeHosts(weights).forEach((h, i) => expect(period.filter((a) => a === h.address)).toHaveLength(weights[i]!));
    }
  });

  it('reads effectiveWeight at every pick, so slow start needs no rebuild', () => {
    const hosts = [makeHost('old', 1), makeHost('new', 1)];
    hosts[1]!.effectiveWeight = 0;
    const picker = weightedRoundRobin.build(hosts, deps);
    const count = (picks: number): number => {
      let n = 0;
      for (let i = 0; i < picks; i++) if (first(picker) === hosts[1]) n++;
      return n;
    };
    expect(count(100)).toBe(0);
    hosts[1]!.effectiveWeight = 0.25; // ramping: a fifth of the traffic
    expect(count(1000)).toBeGreaterThanOrEqual(199);
    expect(count(1000)).toBeLessThanOrEqual(201);
    hosts[1]!.effectiveWeight = 1; // ramped up: half
    expect(Math.abs(count(1000) - 500)).toBeLessThanOrEqual(1);
  });

  it('shares evenly when every host is at effective weight 0', () => {
    const hosts = makeHosts([3, 3, 3]);
    for (const h of hosts) h.effectiveWeight = 0;
    const [a, b, c] = hosts.map((h) => h.address);
    expect(sequence(hosts, 6)).toEqual([a, b, c, a, b, c]);
  });

  it('walks on to the other hosts most-owed first, without moving the rotation', () => {
    const hosts = [makeHost('a', 5), makeHost('b', 1), makeHost('c', 2)];
    const picker = weightedRoundRobin.build(hosts, deps);
    // Pick 1: currents (5, 1, 2) → a, then (-3, 1, 2): c is owed more than b.
    expect(take(picker.candidates(undefined)).map((h) => h.address)).toEqual(['a', 'c', 'b']);
    // The retry candidates were not picks: the rotation goes on as if only a had been chosen.
    const rest = Array.from({ length: 7 }, () => first(picker).address);
    const fresh = sequence([makeHost('a', 5), makeHost('b', 1), makeHost('c', 2)], 8).slice(1);
    expect(rest).toEqual(fresh);
  });
});
