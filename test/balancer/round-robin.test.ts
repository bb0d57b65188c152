import { describe, expect, it } from 'vitest';

import { roundRobin } from '../../src/balancer/round-robin.js';
import { first, makeHosts, ManualClock, mulberry32, take } from './helpers.js';

describe('round robin', () => {
  const deps = { random: mulberry32(1), clock: new ManualClock().now };

  it('rotates through the hosts in configuration order, ignoring weights', () => {
    const hosts = makeHosts([5, 1, 1]);
    const picker = roundRobin.build(hosts, deps);
    expect(Array.from({ length: 7 }, () => first(picker))).toEqual([...hosts, ...hosts, hosts[0]]);
  });

  it('starts each walk one host further on and wraps around', () => {
    const [a, b, c] = makeHosts([1, 1, 1]);
    const picker = roundRobin.build([a!, b!, c!], deps);
    expect(take(picker.candidates(undefined))).toEqual([a, b, c]);
    expect(take(picker.candidates(undefined))).toEqual([b, c, a]);
    expect(take(picker.candidates('a key is ignored'))).toEqual([c, a, b]);
    expect(take(picker.candidates(undefined))).toEqual([a, b, c]);
  });
});
