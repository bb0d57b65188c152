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

  it('starts each walk just after the host the previous walk was taken at, and wraps around', () => {
    const [a, b, c] = makeHosts([1, 1, 1]);
    const picker = roundRobin.build([a!, b!, c!], deps);
    expect(take(picker.candidates(undefined), 1)).toEqual([a]);
    // Taken at its second candidate (the first was skipped): the next walk starts after that one.
    expect(take(picker.candidates('a key is ignored'), 2)).toEqual([b, c]);
    expect(take(picker.candidates(undefined))).toEqual([a, b, c]);
  });

  it('gives the turns of a host that is skipped to no one: with one of three down, the other two alternate', () => {
    const [a, b, c] = makeHosts([1, 1, 1]);
    const picker = roundRobin.build([a!, b!, c!], deps);
    const pick = (): unknown => {
      for (const h of picker.candidates(undefined)) if (h !== b) return h;
      return undefined;
    };
    // Moving the cursor one host per walk gave b's turns to c: a, c, c, a, c, c, …
    expect(Array.from({ length: 6 }, pick)).toEqual([a, c, a, c, a, c]);
  });

  it('takes retries in turns of their own: first choices keep rotating, and what fails over is spread', () => {
    const [a, b, c] = makeHosts([1, 1, 1]);
    const picker = roundRobin.build([a!, b!, c!], deps);
    // b refuses every connection, unknown to health: each request tries its first choice, then retries once.
    const firsts: unknown[] = [];
    const served: unknown[] = [];
    for (let i = 0; i < 6; i++) {
      const first = take(picker.candidates(undefined), 1)[0];
      firsts.push(first);
      if (first !== b) {
        served.push(first);
        continue;
      }
      for (const h of picker.candidates(undefined, true)) {
        if (h === b) continue;
        served.push(h);
        break;
      }
    }
    expect(firsts).toEqual([a, b, c, a, b, c]);
    // a and c serve 3 each (one rotation gave c, after b, twice a's share).
    expect(served.filter((h) => h === a)).toHaveLength(3);
    expect(served.filter((h) => h === c)).toHaveLength(3);
  });
});
