import { describe, expect, it } from 'vitest';

import { byAddress } from '../../src/balancer/address-order.js';
import {
  buildRing,
  consistentHash,
  DEFAULT_VIRTUAL_NODES,
  MAX_RING_POINTS,
  ringPosition,
} from '../../src/balancer/consistent-hash.js';
import { murmur3 } from '../../src/balancer/hash.js';
import { first, makeHost, makeHosts, ManualClock, mulberry32, take, uniformHosts, userKeys } from './helpers.js';

const deps = { random: mulberry32(1), clock: new ManualClock().now };

/** Each host's share of the 2^32 ring: what it would get of infinitely many keys. */
function arcShares(ring: { points: Uint32Array; owners: Uint32Array }, n: number): number[] {
  const shares = new Array<number>(n).fill(0);
  const { points, owners } = ring;
  for (let k = 0; k < points.length; k++) {
    // A point owns the arc from the previous point (exclusive) up to itself.
    const prev = k === 0 ? points[points.length - 1]! - 2 ** 32 : points[k - 1]!;
    shares[owners[k]!]! += (points[k]! - prev) / 2 ** 32;
  }
  return shares;
}

describe('consistent hash ring', () => {
  it('puts round(virtualNodes × weight) points per host, sorted', () => {
    const hosts = byAddress(makeHosts([1, 2, 3]));
    const ring = buildRing(hosts, 10);
    expect(ring.points).toHaveLength(60);
    const perOwner = [0, 0, 0];
    for (const o of ring.owners) perOwner[o]!++;
    expect(perOwner).toEqual([10, 20, 30]);
    for (let k = 1; k < ring.points.length; k++) expect(ring.points[k]!).toBeGreaterThanOrEqual(ring.points[k - 1]!);
  });

  it.each([3, 5, 10, 50])('gives each of %i hosts a ring share within ±10% of even, by default', (n) => {
    const shares = arcShares(buildRing(byAddress(uniformHosts(n)), DEFAULT_VIRTUAL_NODES), n);
    expect(shares.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9);
    for (const s of shares) expect(Math.abs(s * n - 1)).toBeLessThan(0.1);
  });

  it('maps a key to the owner of the first point at or after its hash, and walks clockwise', () => {
    const hosts = uniformHosts(4);
    const ranked = byAddress(hosts);
    const ring = buildRing(ranked, DEFAULT_VIRTUAL_NODES);
    const picker = consistentHash.build(hosts, deps);
    for (const key of ['a', 'user-1', 'session=abc', '']) {
      const h = murmur3(key);
      const k = ringPosition(ring.points, h);
      expect(ring.points[k]! >= h || k === 0).toBe(true);
      if (k > 0) expect(ring.points[k - 1]!).toBeLessThan(h);
      // The expected walk: owners clockwise from k, first occurrences only.
      const expected: string[] = [];
      for (let j = 0; expected.length < 4; j++) {
        const a = ranked[ring.owners[(k + j) % ring.points.length]!]!.address;
        if (!expected.includes(a)) expected.push(a);
      }
      expect(take(picker.candidates(key)).map((x) => x.address)).toEqual(expected);
    }
  });

  it('wraps past the last point to the first', () => {
    const points = Uint32Array.from([10, 20, 30]);
    expect(ringPosition(points, 0)).toBe(0);
    expect(ringPosition(points, 10)).toBe(0);
    expect(ringPosition(points, 11)).toBe(1);
    expect(ringPosition(points, 30)).toBe(2);
    expect(ringPosition(points, 31)).toBe(0);
    expect(ringPosition(points, 2 ** 32 - 1)).toBe(0);
  });

  it('gives a host weight-proportional points, so doubling its weight roughly doubles its keys', () => {
    const hosts = makeHosts([1, 1, 1]);
    const before = buildRing(byAddress(hosts), DEFAULT_VIRTUAL_NODES);
    hosts[0]!.weight = 2;
    const after = buildRing(byAddress(hosts), DEFAULT_VIRTUAL_NODES);
    expect(arcShares(after, 3)[0]! / arcShares(before, 3)[0]!).toBeCloseTo(1.5, 1); // 1/3 → 2/4
  });

  it('ignores effectiveWeight, so slow start does not move keys', () => {
    const hosts = uniformHosts(4);
    const a = consistentHash.build(hosts, deps);
    hosts[2]!.effectiveWeight = 0.1;
    const b = consistentHash.build(hosts, deps);
    for (let i = 0; i < 500; i++) expect(first(b, `k${i}`)).toBe(first(a, `k${i}`));
  });

  it('scales the ring down to MAX_RING_POINTS, keeping proportions and at least one point per host', () => {
    const hosts = byAddress([makeHost('a:1', 1_000), makeHost('b:1', 3_000), makeHost('c:1', 1)]);
    const ring = buildRing(hosts, 2_000); // 8 M points asked for
    expect(ring.points.length).toBeLessThanOrEqual(MAX_RING_POINTS);
    const perOwner = [0, 0, 0];
    for (const o of ring.owners) perOwner[o]!++;
    expect(perOwner[1]! / perOwner[0]!).toBeCloseTo(3, 3);
    expect(perOwner[2]).toBeGreaterThanOrEqual(1);
  });

  it('moves about twice a removed host’s share above the cap, not a reshuffle (points are nested prefixes)', () => {
    const hosts = uniformHosts(20);
    const opts = { virtualNodes: 200_000 }; // 4 M points asked for, scaled to 2 M; 3.8 M without one host
    const before = consistentHash.build(hosts, deps, opts);
    const after = consistentHash.build(hosts.slice(1), deps, opts);
    let moved = 0;
    let betweenSurvivors = 0;
    for (const key of userKeys(10_000)) {
      const a = first(before, key);
      if (first(after, key) === a) continue;
      moved++;
      if (a !== hosts[0]) betweenSurvivors++;
    }
    // The scale moves by 1/19, so each survivor gains about 5% more points, and takes about 5% of the keys.
    expect(moved / 10_000).toBeLessThanOrEqual(2 / 20 + 0.02);
    expect(betweenSurvivors / 10_000).toBeLessThanOrEqual(1 / 20 + 0.01);
  });

  it('breaks a tie between two addresses on one point by address, whatever the input order', () => {
    // 1,000 hosts × 2,000 points: about 465 pairs of points collide in 32 bits. Take the first.
    const many = byAddress(Array.from({ length: 1_000 }, (_, i) => makeHost(`10.1.${i >> 8}.${i & 255}:80`)));
    const big = buildRing(many, DEFAULT_VIRTUAL_NODES);
    let k = 0;
    while (big.points[k] !== big.points[k + 1] || big.owners[k] === big.owners[k + 1]) k++;
    const point = big.points[k]!;
    const [x, y] = [many[big.owners[k]!]!, many[big.owners[k + 1]!]!];
    expect(x.address < y.address).toBe(true);
    // A key that lands on the shared point, in a pool of just those two.
    const pair = buildRing([x, y], DEFAULT_VIRTUAL_NODES);
    let key = '';
    for (let i = 0; key === ''; i++) {
      if (pair.points[ringPosition(pair.points, murmur3(`probe-${i}`))] === point) key = `probe-${i}`;
    }
    expect(first(consistentHash.build([x, y], deps), key)).toBe(x);
    expect(first(consistentHash.build([y, x], deps), key)).toBe(x);
  });

  it('refuses a virtual node count that is not a positive integer', () => {
    expect(() => consistentHash.build(uniformHosts(2), deps, { virtualNodes: 0 })).toThrow(/virtualNodes/);
    expect(() => consistentHash.build(uniformHosts(2), deps, { virtualNodes: 1.5 })).toThrow(/virtualNodes/);
  });

  it('honours a custom virtual node count', () => {
    const picker = consistentHash.build(uniformHosts(3), deps, { virtualNodes: 1 });
    // With one point per host, three keys hashing anywhere still land on some host, and walks still cover all.
    for (let i = 0; i < 50; i++) expect(take(picker.candidates(`k${i}`))).toHaveLength(3);
  });
});
