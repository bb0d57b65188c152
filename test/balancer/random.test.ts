import { describe, expect, it } from 'vitest';

import { random } from '../../src/balancer/random.js';
import { first, makeHosts, ManualClock, mulberry32, take } from './helpers.js';

function build(weights: number[], seed = 5) {
  const hosts = makeHosts(weights);
  return { hosts, picker: random.build(hosts, { random: mulberry32(seed), clock: new ManualClock().now }) };
}

describe('weighted random', () => {
  it('draws the first candidate in proportion to weight', () => {
    const { hosts, picker } = build([6, 3, 1]);
    const counts = [0, 0, 0];
    for (let i = 0; i < 20_000; i++) counts[hosts.indexOf(first(picker))]!++;
    expect(counts.map((c) => c / 20_000)).toEqual([
      expect.closeTo(0.6, 1.5),
      expect.closeTo(0.3, 1.5),
      expect.closeTo(0.1, 1.5),
    ]);
  });

  it('walks on without replacement, in proportion to the weight left', () => {
    const { hosts, picker } = build([6, 3, 1]);
    const [a, b, c] = hosts;
    let afterA = 0;
    let cAfterA = 0;
    let afterB = 0;
    let aAfterB = 0;
    for (let i = 0; i < 20_000; i++) {
      const [x, y] = take(picker.candidates(undefined), 2);
      if (x === a) {
        afterA++;
        if (y === c) cAfterA++;
      } else if (x === b) {
        afterB++;
        if (y === a) aAfterB++;
      }
    }
    // P(c second | a first) = 1 / (3 + 1); P(a second | b first) = 6 / (6 + 1).
    expect(cAfterA / afterA).toBeCloseTo(0.25, 1);
    expect(Math.abs(cAfterA / afterA - 0.25)).toBeLessThan(0.015);
    expect(Math.abs(aAfterB / afterB - 6 / 7)).toBeLessThan(0.015);
  });

  it('orders a long walk by weight too: the heaviest host is rarely last', () => {
    const { hosts, picker } = build([50, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    let heavyLast = 0;
    let heavyFirst = 0;
    for (let i = 0; i < 5_000; i++) {
      const walk = take(picker.candidates(undefined));
      if (walk[0] === hosts[0]) heavyFirst++;
      if (walk[walk.length - 1] === hosts[0]) heavyLast++;
    }
    expect(heavyFirst / 5_000).toBeCloseTo(50 / 59, 1);
    expect(heavyLast).toBe(0);
  });

  it('follows effectiveWeight at pick time, exactly even when most of the weight is slow-starting', () => {
    // Two hosts of weight 100 barely started (0.5 each) beside a host of weight 1: the proposal lands on the
    // slow-starting hosts 99.5% of the time and is mostly rejected, so draws fall back to the exact scan.
    const { hosts, picker } = build([100, 100, 1]);
    hosts[0]!.effectiveWeight = 0.5;
    hosts[1]!.effectiveWeight = 0.5;
    let small = 0;
    for (let i = 0; i < 20_000; i++) if (first(picker) === hosts[2]) small++;
    expect(Math.abs(small / 20_000 - 0.5)).toBeLessThan(0.015);
  });

  it('never picks a host at effective weight 0 first while another can take traffic, and offers it last', () => {
    const { hosts, picker } = build([1, 1, 1, 1]);
    hosts[2]!.effectiveWeight = 0;
    for (let i = 0; i < 2_000; i++) {
      const walk = take(picker.candidates(undefined));
      expect(walk[0]).not.toBe(hosts[2]);
      expect(walk[3]).toBe(hosts[2]);
    }
  });

  it('shares evenly when every host is at effective weight 0', () => {
    const { hosts, picker } = build([2, 2, 2, 2]);
    for (const h of hosts) h.effectiveWeight = 0;
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < 8_000; i++) counts[hosts.indexOf(first(picker))]!++;
    for (const c of counts) expect(Math.abs(c / 8_000 - 0.25)).toBeLessThan(0.02);
  });
});
