import { describe, expect, it } from 'vitest';
import { EJECTION_JITTER, ejectionDuration, maxEjectable, maxEjectionCount, mayEject } from '../../src/health/ejection.js';
import { inPanic } from '../../src/upstream/panic.js';
import { jittered, probeInterval } from '../../src/health/schedule.js';

const times = { baseMs: 30_000, maxMs: 300_000 };

describe('ejection time', () => {
  it.each([
    [1, 30_000],
    [2, 60_000],
    [5, 150_000],
    [10, 300_000],
    [11, 300_000],
    [100, 300_000],
  ])('ejection #%i lasts base × count, capped: %i ms', (count, ms) => {
    expect(ejectionDuration(count, times, () => 0)).toBe(ms);
  });

  it('adds up to EJECTION_JITTER of jitter, from the injected random', () => {
    expect(ejectionDuration(2, times, () => 0.5)).toBe(60_000 * (1 + EJECTION_JITTER / 2));
    expect(ejectionDuration(2, times, () => 0.999_999)).toBeLessThan(60_000 * (1 + EJECTION_JITTER));
  });

  it('never ejects for less than the base, even with max below it (Envoy)', () => {
    expect(ejectionDuration(3, { baseMs: 1000, maxMs: 500 }, () => 0)).toBe(1000);
  });

  it('caps the count where the time is capped, so decay brings it back in as many intervals', () => {
    expect(maxEjectionCount(times)).toBe(10);
    expect(maxEjectionCount({ baseMs: 300, maxMs: 10_000 })).toBe(34);
    expect(maxEjectionCount({ baseMs: 1000, maxMs: 500 })).toBe(1);
    expect(maxEjectionCount({ baseMs: 0, maxMs: 500 })).toBe(1);
  });
});

describe('max_ejection_percent, counted after the ejection', () => {
  it.each([
    [4, 0.5, 2],
    [4, 0, 0],
    [4, 1, 4],
    [4, 0.1, 0],
    [10, 0.1, 1],
    [10, 0.3, 3],
    [100, 0.29, 29],
    [3, 0.5, 1],
    [1, 1, 1],
    [1, 0.99, 0],
  ])('%i servers at %f: at most %i ejected', (total, share, max) => {
    expect(maxEjectable(total, share)).toBe(max);
    for (let ejected = 0; ejected <= total; ejected++) expect(mayEject(ejected, total, share)).toBe(ejected + 1 <= max);
  });
});

describe('panic threshold', () => {
  it.each([
    [2, 4, 0.5, false], // 50% is not below 50%
    [1, 4, 0.5, true],
    [2, 4, 0.75, true],
    [3, 4, 0.75, false],
    [3, 10, 0.3, false],
    [2, 10, 0.3, true],
    [0, 4, 0.5, false], // nothing to spread over: 503, not panic
    [0, 0, 0.5, false],
    [1, 4, 0, false], // 0 turns panic off
    [4, 4, 1, false],
    [3, 4, 1, true],
  ])('%i of %i available at %f: panic %s', (available, eligible, threshold, panic) => {
    expect(inPanic(available, eligible, threshold)).toBe(panic);
  });
});

describe('probe schedule', () => {
  it('spreads the interval uniformly over ± jitter', () => {
    expect(jittered(1000, 0.1, () => 0)).toBe(900);
    expect(jittered(1000, 0.1, () => 0.5)).toBe(1000);
    expect(jittered(1000, 0.1, () => 0.999_999)).toBeCloseTo(1100, 2);
    expect(jittered(1000, 0, () => 0.9)).toBe(1000);
    expect(jittered(1000, 5, () => 0)).toBe(0); // clamped to 100%
  });

  it('probes faster while unhealthy: unhealthy_interval, or half the interval when unset', () => {
    expect(probeInterval({ interval: 2000, unhealthy_interval: 500 }, true)).toBe(2000);
    expect(probeInterval({ interval: 2000, unhealthy_interval: 500 }, false)).toBe(500);
    expect(probeInterval({ interval: 2000 }, true)).toBe(2000);
    expect(probeInterval({ interval: 2000 }, false)).toBe(1000);
  });
});
