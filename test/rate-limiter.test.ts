/** The per-key token bucket on a hand-driven clock: burst plus rate, refill, Retry-After, the memory bound. */
import { describe, expect, it } from 'vitest';
import { DEFAULT_MAX_KEYS, RateLimiter, type RateLimit } from '../src/proxy/http/rate-limiter.js';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

/** A limiter on a clock the test moves by hand. */
function limiter(limit: RateLimit, maxKeys?: number) {
  const clock = { now: 0 };
  const rl = new RateLimiter(limit, maxKeys === undefined ? { clock: () => clock.now } : { clock: () => clock.now, maxKeys });
  return { rl, clock };
}

/** One request every `stepMs` from the clock's current time for `durationMs`; returns the times admitted. */
function flood(l: ReturnType<typeof limiter>, key: string, durationMs: number, stepMs = 1): number[] {
  const admitted: number[] = [];
  const end = l.clock.now + durationMs;
  for (; l.clock.now < end; l.clock.now += stepMs) if (l.rl.take(key) === 0) admitted.push(l.clock.now);
  return admitted;
}

/** Requests at one instant until one is refused; returns how many were admitted. */
function drain(rl: RateLimiter, key: string): number {
  let n = 0;
  while (rl.take(key) === 0) n++;
  return n;
}

/**
 * An independent model to compare against: the textbook bucket, counted in milliseconds of credit (tokens × interval)
 * so that integer rates and times stay exact. It never forgets a key.
 */
function referenceBucket(limit: RateLimit) {
  const interval = limit.perMs / limit.rate;
  const capacity = limit.burst * interval;
  const state = new Map<string, { credit: number; last: number }>();
  return (key: string, now: number): number => {
    const s = state.get(key) ?? { credit: capacity, last: now };
    s.credit = Math.min(capacity, s.credit + (now - s.last));
    s.last = now;
    state.set(key, s);
    if (s.credit >= interval) {
      s.credit -= interval;
      return 0;
    }
    return Math.ceil(interval - s.credit);
  };
}

const TWENTY_PER_SECOND_BURST_10: RateLimit = { rate: 20, perMs: SECOND, burst: 10 };

describe('rate limiter: burst + rate · t', () => {
  it('admits exactly the burst at one instant, then refuses', () => {
    const { rl } = limiter(TWENTY_PER_SECOND_BURST_10);
    expect(drain(rl, 'a')).toBe(10);
  });

  it('admits 10 + 20·t of a flood at 1 ms spacing over 5 s: the burst, then one every 50 ms', () => {
    const l = limiter(TWENTY_PER_SECOND_BURST_10);
    const admitted = flood(l, 'a', 5 * SECOND);
    const expected = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ...Array.from({ length: 99 }, (_, i) => 50 * (i + 1))];
    expect(admitted).toEqual(expected);
    // 109 in [0, 5000): the 110th would be at t = 5000.
    expect(Math.abs(admitted.length - (10 + 20 * 5))).toBeLessThanOrEqual(0.15 * (10 + 20 * 5));
  });

  it.each([1, 2, 10, 60])('%d s of flooding: within one request of 10 + 20·t, well inside ±15 percent', (seconds) => {
    const l = limiter(TWENTY_PER_SECOND_BURST_10);
    const n = flood(l, 'a', seconds * SECOND).length;
    const ideal = 10 + 20 * seconds;
    expect(n).toBeGreaterThanOrEqual(ideal - 1);
    expect(n).toBeLessThanOrEqual(ideal);
  });

  it('admits the same whether the flood is every 1 ms or every 7 ms: refused requests take nothing', () => {
    const fast = flood(limiter(TWENTY_PER_SECOND_BURST_10), 'a', 5 * SECOND, 1).length;
    const slow = flood(limiter(TWENTY_PER_SECOND_BURST_10), 'a', 5 * SECOND, 7).length;
    expect(Math.abs(fast - slow)).toBeLessThanOrEqual(1);
  });

  it('per of a minute: 100/min with burst 100 admits 100 at once, then one every 600 ms', () => {
    const l = limiter({ rate: 100, perMs: MINUTE, burst: 100 });
    expect(drain(l.rl, 'a')).toBe(100);
    expect(l.rl.take('a')).toBe(600);
    l.clock.now = 599;
    expect(l.rl.take('a')).toBe(1);
    l.clock.now = 600;
    expect(l.rl.take('a')).toBe(0);
    l.clock.now = 601;
    expect(flood(l, 'a', MINUTE, 10).length).toBe(99); // at 1.2 s, 1.8 s, … 60 s; the 100th is due at 60.6 s
  });

  it('a non-integer rate: 2.5/s with burst 5 gives 5 + 2.5·t', () => {
    const l = limiter({ rate: 2.5, perMs: SECOND, burst: 5 });
    const admitted = flood(l, 'a', 10 * SECOND);
    expect(admitted.slice(0, 5)).toEqual([0, 1, 2, 3, 4]);
    expect(admitted.slice(5, 8)).toEqual([400, 800, 1200]);
    expect(admitted.length).toBe(5 + 25 - 1); // the 30th is due at t = 10 s
  });

  it('a rate that does not divide the period: 3/s, one every 333⅓ ms, no drift over an hour', () => {
    const l = limiter({ rate: 3, perMs: SECOND, burst: 3 });
    const n = flood(l, 'a', HOUR, 10).length;
    expect(n).toBe(3 + 3 * 3600 - 1);
  });

  it('a rate below one per period: 0.5/s admits one request every 2 s', () => {
    const l = limiter({ rate: 0.5, perMs: SECOND, burst: 1 });
    expect(flood(l, 'a', 10 * SECOND, 100)).toEqual([0, 2000, 4000, 6000, 8000]);
  });
});

describe('rate limiter: refill and Retry-After', () => {
  it('refills at the rate while idle, up to the burst and no further', () => {
    const l = limiter(TWENTY_PER_SECOND_BURST_10);
    expect(drain(l.rl, 'a')).toBe(10);
    l.clock.now += 250; // 5 tokens
    expect(drain(l.rl, 'a')).toBe(5);
    l.clock.now += 10 * SECOND; // far more than the burst's worth
    expect(drain(l.rl, 'a')).toBe(10);
  });

  it('returns the milliseconds until the next token, and a retry after exactly that long is admitted', () => {
    const l = limiter(TWENTY_PER_SECOND_BURST_10);
    drain(l.rl, 'a');
    expect(l.rl.take('a')).toBe(50);
    l.clock.now = 30;
    expect(l.rl.take('a')).toBe(20);
    l.clock.now = 49.5;
    expect(l.rl.take('a')).toBe(1); // whole milliseconds, never 0 when refused
    l.clock.now = 50;
    expect(l.rl.take('a')).toBe(0);
    expect(l.rl.take('a')).toBe(50);
  });

  it('rounds up for a rate that does not divide the period, and the retry is admitted', () => {
    const l = limiter({ rate: 3, perMs: SECOND, burst: 1 });
    expect(l.rl.take('a')).toBe(0);
    const wait = l.rl.take('a');
    expect(wait).toBe(334);
    l.clock.now = wait;
    expect(l.rl.take('a')).toBe(0);
  });

  it('gives a Retry-After of the whole period for 1 per hour (3600 s once the caller rounds up to seconds)', () => {
    const l = limiter({ rate: 1, perMs: HOUR, burst: 1 });
    expect(l.rl.take('a')).toBe(0);
    const wait = l.rl.take('a');
    expect(wait).toBe(HOUR);
    expect(Math.ceil(wait / SECOND)).toBe(3600);
    l.clock.now = HOUR - 1;
    expect(Math.ceil(l.rl.take('a') / SECOND)).toBe(1);
  });

  it('keeps keys independent', () => {
    const l = limiter(TWENTY_PER_SECOND_BURST_10);
    expect(drain(l.rl, 'a')).toBe(10);
    expect(l.rl.take('a')).toBeGreaterThan(0);
    expect(drain(l.rl, 'b')).toBe(10);
    l.clock.now = 50;
    expect(drain(l.rl, 'a')).toBe(1);
    expect(drain(l.rl, 'b')).toBe(1);
    expect(drain(l.rl, 'c')).toBe(10);
    expect(l.rl.size).toBe(3);
  });

  it('agrees with a textbook token bucket on every answer over 200,000 requests from 5,000 keys', () => {
    const limit: RateLimit = { rate: 20, perMs: SECOND, burst: 4 };
    const l = limiter(limit);
    const reference = referenceBucket(limit);
    let seed = 12345;
    const random = () => (seed = (seed * 48271) % 2147483647) / 2147483647; // Park–Miller, exact in doubles
    let mismatches = 0;
    let largest = 0;
    for (let i = 0; i < 200_000; i++) {
      l.clock.now += Math.floor(random() * 3); // ~200 s in all, some requests at the same instant
      // A few busy keys that get limited, and a long tail of occasional ones whose buckets are full again.
      const key = random() < 0.3 ? `busy${Math.floor(random() * 5)}` : `k${Math.floor(random() * 5000)}`;
      if (l.rl.take(key) !== reference(key, l.clock.now)) mismatches++;
      largest = Math.max(largest, l.rl.size);
    }
    expect(mismatches).toBe(0);
    // Full buckets were forgotten along the way (exactly, as the agreement shows), so the table never held every key.
    expect(largest).toBeLessThan(5000);
  });
});

describe('rate limiter: memory', () => {
  it('forgets every full bucket once the table is swept', () => {
    const l = limiter(TWENTY_PER_SECOND_BURST_10);
    for (let i = 0; i < 1024; i++) l.rl.take(`k${i}`);
    expect(l.rl.size).toBe(1024);
    l.clock.now = 50; // each of them took one token, back after 50 ms
    l.rl.take('new');
    expect(l.rl.size).toBe(1);
  });

  it('keeps the buckets not yet full', () => {
    const l = limiter(TWENTY_PER_SECOND_BURST_10);
    for (let i = 0; i < 1024; i++) l.rl.take(`k${i}`);
    l.clock.now = 49;
    l.rl.take('new');
    expect(l.rl.size).toBe(1025);
    expect(drain(l.rl, 'k0')).toBe(9);
  });

  it('at the cap, forgets buckets not yet full nearest to full first, and that errs on admitting', () => {
    // One token per ms, burst 16: key i takes 8 - i tokens, so the deficits fall in distinct classes and the bucket
    // nearest to full is the one added last.
    const l = limiter({ rate: 1, perMs: 1, burst: 16 }, 8);
    for (let i = 0; i < 8; i++) for (let t = 0; t < 8 - i; t++) l.rl.take(`k${i}`);
    expect(l.rl.size).toBe(8);
    l.rl.take('new'); // the cap: forget down to 7 (k7, one token short), then add
    expect(l.rl.size).toBe(8);
    expect(drain(l.rl, 'k0')).toBe(8); // kept: still 8 short
    expect(drain(l.rl, 'k7')).toBe(16); // a full bucket again: one request more than it was owed
  });

  it.each([1000, DEFAULT_MAX_KEYS])('never holds more than maxKeys = %d buckets under 1,000,000 distinct keys', (maxKeys) => {
    const l = limiter(TWENTY_PER_SECOND_BURST_10, maxKeys === DEFAULT_MAX_KEYS ? undefined : maxKeys);
    let largest = 0;
    let refused = 0;
    for (let i = 0; i < 1_000_000; i++) {
      if (l.rl.take(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`) !== 0) refused++;
      if (l.rl.size > largest) largest = l.rl.size;
    }
    expect(largest).toBe(maxKeys);
    expect(refused).toBe(0); // a key never seen, or forgotten, is admitted
  });

  it('keeps a throttled client throttled while a flood of distinct keys passes the cap', () => {
    const l = limiter(TWENTY_PER_SECOND_BURST_10, 1000);
    let admitted = 0;
    let largest = 0;
    for (let i = 0; i < 1_000_000; i++) {
      l.clock.now = i / 100; // 1,000,000 distinct keys in 10 s, with the client trying every 0.01 ms
      if (l.rl.take('client') === 0) admitted++;
      l.rl.take(`flood${i}`);
      if (l.rl.size > largest) largest = l.rl.size;
    }
    expect(largest).toBe(1000);
    // The client's bucket is the furthest from full, so it is never forgotten: it gets 10 + 20·t, not a burst per sweep.
    expect(admitted).toBe(10 + 20 * 10 - 1);
  });
});

describe('rate limiter: configuration', () => {
  it.each([
    [{ rate: 0, perMs: SECOND, burst: 1 }, /rate/],
    [{ rate: Number.NaN, perMs: SECOND, burst: 1 }, /rate/],
    [{ rate: 1, perMs: 0, burst: 1 }, /per/],
    [{ rate: 1, perMs: Number.POSITIVE_INFINITY, burst: 1 }, /per/],
    [{ rate: 1, perMs: SECOND, burst: 0 }, /burst/],
    [{ rate: 1, perMs: SECOND, burst: 1.5 }, /burst/],
  ])('refuses %o', (limit, message) => {
    expect(() => new RateLimiter(limit, { clock: () => 0 })).toThrow(message);
  });

  it('refuses a cap below one key', () => {
    expect(() => new RateLimiter({ rate: 1, perMs: SECOND, burst: 1 }, { clock: () => 0, maxKeys: 0 })).toThrow(/maxKeys/);
  });
});
