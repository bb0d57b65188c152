/**
 * The per-server last-minute windows behind /status and the dashboard, on an injected clock.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { latencyBucket, Tally, TrafficWindows, LATENCY_BUCKETS } from '../src/admin/traffic-window.js';
import { formatConfigErrors, parseConfig } from '../src/config/load.js';
import { Upstream } from '../src/upstream/upstream.js';
import { Fixture } from './health/config.js';
import { manualClock } from './health/units.js';

const fx = new Fixture();
afterEach(() => fx.close());

// ---------------------------------------------------------------------------------------------------------------
// The last-minute windows, on a manual clock.

function upstreamOf(yaml: string, clock: () => number, index = 0): Upstream {
  const r = parseConfig(`listeners: [{ name: web, listen: 127.0.0.1:0, routes: [{ upstream: a }] }]\n${yaml}`, {});
  if (!r.ok) throw new Error(formatConfigErrors('test', r.errors));
  return new Upstream(r.config.upstreams[index]!, { clock, random: () => 0.5 });
}

const TWO = `upstreams: [{ name: a, servers: [{ address: 127.0.0.1:1 }, { address: 127.0.0.1:2 }] }]`;

function lastMinute(windows: TrafficWindows, u: Upstream, i: number) {
  const t = new Tally();
  windows.addTo(t, u.hosts[i]!, u.now());
  return t.summary();
}

describe('last-minute traffic windows', () => {
  it('count requests, errors and latency per server, over the time the window has existed', () => {
    const clock = manualClock(0);
    const u = upstreamOf(TWO, clock);
    fx.defer(() => u.destroy());
    const windows = new TrafficWindows();
    windows.track([u]);
    const h1 = u.hosts[0];
    clock.now = 5_000;
    for (let ms = 1; ms <= 100; ms++) u.observe(h1!, { kind: 'response', status: 200, latencyMs: ms });
    u.observe(h1!, { kind: 'response', status: 503, latencyMs: 1 });
    u.observe(h1!, { kind: 'response', status: 404, latencyMs: 1 });
    u.observe(h1!, { kind: 'connect-failure' });
    u.observe(h1!, { kind: 'timeout' });
    clock.now = 10_000;
    const m = lastMinute(windows, u, 0);
    expect(m).toMatchObject({ requests: 104, errors: 3, requests_per_second: 10.4, error_rate: 0.0288 });
    // Within one bucket (×1.5) of the exact quantiles of 1..100 ms plus two 1 ms answers.
    expect(m.p50_ms).toBeGreaterThan(49 / 1.5);
    expect(m.p50_ms).toBeLessThan(49 * 1.5);
    expect(m.p99_ms).toBeGreaterThan(99 / 1.5);
    expect(m.p99_ms).toBeLessThan(99 * 1.5);
    expect(lastMinute(windows, u, 1)).toEqual({ requests: 0, errors: 0, requests_per_second: 0, error_rate: 0, p50_ms: null, p99_ms: null });
  });

  it('forget seconds older than a minute, second by second', () => {
    const clock = manualClock(0);
    const u = upstreamOf(TWO, clock);
    fx.defer(() => u.destroy());
    const windows = new TrafficWindows();
    windows.track([u]);
    const h = u.hosts[0]!;
    for (let s = 0; s < 120; s++) {
      clock.now = s * 1000 + 500;
      u.observe(h, { kind: 'response', status: 200, latencyMs: 2 });
    }
    clock.now = 119_900;
    expect(lastMinute(windows, u, 0)).toMatchObject({ requests: 60, requests_per_second: 1 });
    clock.now = 150_000;
    expect(lastMinute(windows, u, 0).requests).toBe(29);
    clock.now = 179_000;
    expect(lastMinute(windows, u, 0).requests).toBe(0);
    // A long silence, then one request: only that one is in the window.
    clock.now = 1_000_000;
    u.observe(h, { kind: 'connected', latencyMs: 3 });
    const m = lastMinute(windows, u, 0);
    expect(m).toMatchObject({ requests: 1, errors: 0 });
    // 3 ms falls in the bucket (2.85, 4.27]: the quantile is read inside it.
    expect(m.p50_ms).toBeGreaterThan(2.8);
    expect(m.p50_ms).toBeLessThan(4.3);
  });

  it('keep a server\'s numbers across a reload that keeps it, and forget a server that left', () => {
    const clock = manualClock(0);
    const before = upstreamOf(TWO, clock);
    const windows = new TrafficWindows();
    windows.track([before]);
    clock.now = 1000;
    for (const h of before.hosts) u(before, h);
    const after = upstreamOf(`upstreams: [{ name: a, servers: [{ address: 127.0.0.1:2 }, { address: 127.0.0.1:3 }] }]`, clock);
    fx.defer(async () => {
      await before.destroy();
      await after.destroy();
    });
    windows.track([after]);
    // The old upstream finishes a request on the server that stayed: it counts for the new one too.
    u(before, before.hosts[1]!);
    u(after, after.hosts[0]!);
    clock.now = 2000;
    expect(lastMinute(windows, after, 0).requests).toBe(3);
    expect(lastMinute(windows, after, 1).requests).toBe(0);
    // 127.0.0.1:1 left the config: a later config listing it again starts from zero.
    const again = upstreamOf(TWO, clock);
    fx.defer(() => again.destroy());
    windows.track([again]);
    expect(lastMinute(windows, again, 0).requests).toBe(0);
    expect(lastMinute(windows, again, 1).requests).toBe(3);

    function u(up: Upstream, h: Upstream['hosts'][number]): void {
      up.observe(h, { kind: 'response', status: 200, latencyMs: 1 });
    }
  });

  it('put each latency in the bucket whose bounds hold it', () => {
    expect(latencyBucket(0)).toBe(0);
    expect(latencyBucket(0.25)).toBe(0);
    expect(latencyBucket(0.26)).toBe(1);
    expect(latencyBucket(0.375)).toBe(1);
    expect(latencyBucket(0.38)).toBe(2);
    expect(latencyBucket(Number.NaN)).toBe(0);
    expect(latencyBucket(1e9)).toBe(LATENCY_BUCKETS - 1);
  });
});
