import { describe, expect, it } from 'vitest';

import { byAddress } from '../../src/balancer/address-order.js';
import { murmur3 } from '../../src/balancer/hash.js';
import { buildMaglevTable, DEFAULT_TABLE_SIZE, maglev } from '../../src/balancer/maglev.js';
import { first, makeHost, makeHosts, ManualClock, mulberry32, take, uniformHosts } from './helpers.js';

const deps = { random: mulberry32(1), clock: new ManualClock().now };

function slotCounts(table: Uint32Array, n: number): number[] {
  const counts = new Array<number>(n).fill(0);
  for (const owner of table) counts[owner]!++;
  return counts;
}

describe('maglev', () => {
  it('uses a prime table of 65,537 slots by default', () => {
    expect(DEFAULT_TABLE_SIZE).toBe(65_537);
  });

  it.each([3, 7, 10, 100, 1000])('gives each of %i equal hosts floor or ceil of M / n slots', (n) => {
    const counts = slotCounts(buildMaglevTable(byAddress(uniformHosts(n)), DEFAULT_TABLE_SIZE), n);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(DEFAULT_TABLE_SIZE);
    for (const c of counts) {
      expect(c).toBeGreaterThanOrEqual(Math.floor(DEFAULT_TABLE_SIZE / n));
      expect(c).toBeLessThanOrEqual(Math.ceil(DEFAULT_TABLE_SIZE / n));
    }
  });

  it('gives weighted hosts slots in proportion to weight', () => {
    const weights = [1, 2, 3, 10];
    const counts = slotCounts(buildMaglevTable(byAddress(makeHosts(weights)), DEFAULT_TABLE_SIZE), 4);
    weights.forEach((w, i) => expect(Math.abs(counts[i]! / DEFAULT_TABLE_SIZE - w / 16)).toBeLessThan(0.001));
  });

  it('maps a key to table[murmur3(key) % M]', () => {
    const hosts = uniformHosts(5);
    const ranked = byAddress(hosts);
    const table = buildMaglevTable(ranked, 251);
    const picker = maglev.build(hosts, deps, { tableSize: 251 });
    for (const key of ['a', 'user-7', 'x'.repeat(100)]) {
      expect(first(picker, key)).toBe(ranked[table[murmur3(key) % 251]!]);
    }
  });

  it('works with a small custom prime table', () => {
    const picker = maglev.build(uniformHosts(3), deps, { tableSize: 7 });
    for (let i = 0; i < 50; i++) expect(new Set(take(picker.candidates(`k${i}`))).size).toBe(3);
  });

  it('refuses a table size that is not prime, or smaller than the pool', () => {
    expect(() => maglev.build(uniformHosts(3), deps, { tableSize: 65_536 })).toThrow(/prime/);
    expect(() => maglev.build(uniformHosts(3), deps, { tableSize: 1 })).toThrow(/prime/);
    expect(() => maglev.build(uniformHosts(3), deps, { tableSize: 2.5 })).toThrow(/prime/);
    expect(() => maglev.build(uniformHosts(12), deps, { tableSize: 11 })).toThrow(/smaller than the 12 hosts/);
  });

  it('ignores effectiveWeight, so slow start does not move keys', () => {
    const hosts = uniformHosts(4);
    const a = maglev.build(hosts, deps);
    hosts[1]!.effectiveWeight = 0.1;
    const b = maglev.build(hosts, deps);
    for (let i = 0; i < 500; i++) expect(first(b, `k${i}`)).toBe(first(a, `k${i}`));
  });

  it('gives every host at least one slot, even at a tiny weight beside a huge one', () => {
    const hosts = [makeHost('a:1', 1_000_000), makeHost('b:1', 1)];
    const counts = slotCounts(buildMaglevTable(byAddress(hosts), 101), 2);
    expect(counts[1]).toBeGreaterThanOrEqual(1);
    expect(take(maglev.build(hosts, deps, { tableSize: 101 }).candidates('k'))).toHaveLength(2);
  });
});
