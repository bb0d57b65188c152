import { describe, expect, it } from 'vitest';

import {
  DEFAULT_DECAY_MS,
  FAILURE_PENALTY_MS,
  MAX_ESTIMATE_MS,
  PeakEwma,
  peakEwma,
} from '../../src/balancer/peak-ewma.js';
import { first, makeHost, ManualClock, mulberry32, take, type TestHost } from './helpers.js';

function ewma(clock: ManualClock, initialMs?: number): PeakEwma {
  return new PeakEwma({ decayMs: 1_000, clock: clock.now, ...(initialMs !== undefined && { initialMs }) });
}

describe('PeakEwma (the per-host estimate)', () => {
  it('starts at initialMs, 0 (unknown) by default', () => {
    const clock = new ManualClock();
    expect(ewma(clock).estimate(clock.now())).toBe(0);
    expect(ewma(clock, 25).estimate(clock.now())).toBe(25);
  });

  it('jumps to a sample above the estimate at once (peak sensitivity)', () => {
    const clock = new ManualClock();
    const e = ewma(clock);
    e.observe(10);
    clock.advance(1);
    e.observe(300);
    expect(e.estimate(clock.now())).toBe(300);
  });

  it('moves toward a lower sample with weight exp(-elapsed / decayMs) on the old value', () => {
    const clock = new ManualClock();
    const e = ewma(clock);
    e.observe(100);
    clock.advance(1_000); // one decay window: the old value keeps e^-1 of its weight
    e.observe(20);
    const w = Math.exp(-1);
    expect(e.estimate(clock.now())).toBeCloseTo(100 * w + 20 * (1 - w), 10);
    // A burst of fast samples in no time barely moves it: the rate of change is set by time, not request rate.
    const before = e.estimate(clock.now());
    for (let i = 0; i < 1_000; i++) e.observe(1);
    expect(e.estimate(clock.now())).toBe(before);
  });

  it('converges to a steady latency', () => {
    const clock = new ManualClock();
    const e = ewma(clock);
    e.observe(500);
    for (let i = 0; i < 1_000; i++) {
      clock.advance(10);
      e.observe(40);
    }
    expect(e.estimate(clock.now())).toBeCloseTo(40, 3);
  });

  it('decays toward zero between samples, without reads changing it', () => {
    const clock = new ManualClock();
    const e = ewma(clock);
    e.observe(100);
    const t0 = clock.now();
    expect(e.estimate(t0 + 500)).toBeCloseTo(100 * Math.exp(-0.5), 10);
    expect(e.estimate(t0 + 2_000)).toBeCloseTo(100 * Math.exp(-2), 10);
    // Reads are pure: asking again, or about an earlier instant, gives the same answers.
    expect(e.estimate(t0 + 500)).toBeCloseTo(100 * Math.exp(-0.5), 10);
    expect(e.estimate(t0 - 50)).toBe(100);
  });

  it('counts a failure as at least FAILURE_PENALTY_MS, however fast it came back', () => {
    const clock = new ManualClock();
    const e = ewma(clock);
    e.observe(2);
    e.observeFailure();
    expect(e.estimate(clock.now())).toBe(FAILURE_PENALTY_MS);
  });

  it('doubles the estimate of a host already slower than the penalty, up to MAX_ESTIMATE_MS', () => {
    const clock = new ManualClock();
    const e = ewma(clock);
    e.observe(3_000);
    e.observeFailure();
    expect(e.estimate(clock.now())).toBe(6_000);
    for (let i = 0; i < 10; i++) e.observeFailure();
    expect(e.estimate(clock.now())).toBe(MAX_ESTIMATE_MS);
  });

  it('ignores NaN and treats a negative latency as 0', () => {
    const clock = new ManualClock();
    const e = ewma(clock);
    e.observe(50);
    e.observe(Number.NaN);
    expect(e.estimate(clock.now())).toBe(50);
    clock.advance(1_000);
    e.observe(-5);
    expect(e.estimate(clock.now())).toBeCloseTo(50 * Math.exp(-1), 10);
  });

  it('refuses a decay window or initial estimate that is not a usable number', () => {
    const clock = new ManualClock();
    expect(() => new PeakEwma({ decayMs: 0, clock: clock.now })).toThrow(/decayMs/);
    expect(() => new PeakEwma({ decayMs: Number.NaN, clock: clock.now })).toThrow(/decayMs/);
    expect(() => new PeakEwma({ decayMs: 10, clock: clock.now, initialMs: -1 })).toThrow(/initialMs/);
  });

  it('uses the Finagle/Linkerd decay window by default', () => {
    expect(DEFAULT_DECAY_MS).toBe(10_000);
  });
});

describe('peak-ewma (the strategy)', () => {
  function pool(latencies: number[], clock: ManualClock): TestHost[] {
    return latencies.map((ms, i) => {
      const h = makeHost(`10.0.0.${i + 1}:8080`, 1, new PeakEwma({ decayMs: DEFAULT_DECAY_MS, clock: clock.now }));
      if (ms > 0) (h.latency as PeakEwma).observe(ms);
      return h;
    });
  }

  function share(hosts: TestHost[], clock: ManualClock, picks: number, index: number): number {
    const picker = peakEwma.build(hosts, { random: mulberry32(11), clock: clock.now });
    let n = 0;
    for (let i = 0; i < picks; i++) if (first(picker) === hosts[index]) n++;
    return n / picks;
  }

  it('prefers the fast host', () => {
    const clock = new ManualClock();
    const hosts = pool([10, 100], clock);
    expect(share(hosts, clock, 1_000, 0)).toBe(1);
    // Among five, the fast one wins every pair it is drawn into: 2/5 of picks, against 1/5 at random.
    const five = pool([100, 10, 100, 100, 100], clock);
    expect(share(five, clock, 10_000, 1)).toBeCloseTo(0.4, 1);
  });

  it('weighs latency against load: a fast host with many requests in flight loses to an idle slower one', () => {
    const clock = new ManualClock();
    const [fast, slow] = pool([10, 30], clock);
    const picker = peakEwma.build([fast!, slow!], { random: mulberry32(1), clock: clock.now });
    fast!.inflight = 1; // 10 × 2 = 20 < 30 × 1
    expect(first(picker)).toBe(fast);
    fast!.inflight = 3; // 10 × 4 = 40 > 30
    expect(first(picker)).toBe(slow);
  });

  it('penalises a host that fails fast, so it does not win the traffic', () => {
    const clock = new ManualClock();
    const [failing, healthy] = pool([0, 50], clock);
    const picker = peakEwma.build([failing!, healthy!], { random: mulberry32(2), clock: clock.now });
    let toFailing = 0;
    for (let i = 0; i < 1_000; i++) {
      clock.advance(1);
      const h = first(picker);
      if (h === failing) {
        toFailing++;
        (h.latency as PeakEwma).observeFailure(); // refused in a millisecond
      } else {
        (h.latency as PeakEwma).observe(50);
      }
    }
    // Unknown at first, so it is tried; after its first failure it never wins again within the decay window.
    expect(toFailing).toBe(1);
  });

  it('tries a penalised host again once its penalty has decayed', () => {
    const clock = new ManualClock();
    const [penalised, healthy] = pool([0, 50], clock);
    (penalised!.latency as PeakEwma).observeFailure();
    const picker = peakEwma.build([penalised!, healthy!], { random: mulberry32(2), clock: clock.now });
    expect(first(picker)).toBe(healthy);
    // 1,000 ms decays below 50 ms after ln(20) ≈ 3 decay windows, while the healthy host keeps answering.
    for (let t = 0; t < 40; t++) {
      clock.advance(1_000);
      (healthy!.latency as PeakEwma).observe(50);
    }
    expect(first(picker)).toBe(penalised);
  });

  it('compares a host with no samples yet by load alone: tried when idle, not flooded', () => {
    const clock = new ManualClock();
    const [fresh, known] = pool([0, 80], clock);
    const picker = peakEwma.build([fresh!, known!], { random: mulberry32(4), clock: clock.now });
    known!.inflight = 2;
    expect(first(picker)).toBe(fresh);
    fresh!.inflight = 3; // a raw cost of 0 × 4 would still win; load alone says no
    expect(first(picker)).toBe(known);
  });

  it('prefers the host with more effective weight at equal latency and load', () => {
    const clock = new ManualClock();
    const [small, big] = pool([20, 20], clock);
    big!.weight = 4;
    big!.effectiveWeight = 4;
    const picker = peakEwma.build([small!, big!], { random: mulberry32(4), clock: clock.now });
    expect(take(picker.candidates(undefined))).toEqual([big, small]);
    small!.inflight = 0;
    big!.inflight = 4; // 20 × 5 / 4 = 25 > 20 × 1 / 1
    expect(first(picker)).toBe(small);
  });
});
