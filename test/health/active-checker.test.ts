/** The active checker's loop with scripted probes and fake timers: scheduling, hysteresis, sharing, stopping. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ActiveChecker, type ActiveCheckEvents } from '../../src/health/active-checker.js';
import type { ProbeResult } from '../../src/health/probe.js';
import type { Upstream } from '../../src/upstream/upstream.js';
import { upstream } from './units.js';

const PASS: ProbeResult = { ok: true };
const FAIL: ProbeResult = { ok: false, reason: 'status', detail: 'status 503' };

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

function checker(upstreams: Upstream[], script: (address: string, n: number) => { result: ProbeResult; ms: number }) {
  const calls = new Map<string, number>();
  let open = 0;
  let maxOpen = 0;
  const aborted: string[] = [];
  const flips: [string, boolean, number][] = [];
  const probed: string[] = [];
  const events: ActiveCheckEvents = {
    probed: (m, r) => probed.push(`${m.upstream.name}/${m.host.address}:${r.ok ? '+' : '-'}`),
    flipped: (members, healthy, _r, probes) => {
      for (const m of members) flips.push([m.host.address, healthy, probes]);
    },
    error: (err) => {
      throw err;
    },
  };
  const c = new ActiveChecker(upstreams, {
    clock: () => Date.now(),
    random: () => 0.5, // no jitter
    events,
    probe: () => (target, signal) => {
      const n = (calls.get(target.address) ?? 0) + 1;
      calls.set(target.address, n);
      open++;
      maxOpen = Math.max(maxOpen, open);
      const { result, ms } = script(target.address, n);
      if (ms === 0) {
        open--;
        return Promise.resolve(result);
      }
      return new Promise((resolve) => {
        const t = setTimeout(() => {
          open--;
          resolve(result);
        }, ms);
        signal.addEventListener('abort', () => {
          clearTimeout(t);
          open--;
          aborted.push(target.address);
          resolve({ ok: false, reason: 'error', detail: 'aborted' });
        });
      });
    },
  });
  return { c, calls, flips, probed, aborted, maxOpen: () => maxOpen };
}

describe('active checker', () => {
  it('waits for a probe to end before scheduling the next, so a slow server is never probed twice at once', async () => {
    const u = upstream('    health_check: { interval: 100ms, timeout: 1s }', { n: 1 });
    const { c, calls, maxOpen } = checker([u], () => ({ result: PASS, ms: 250 }));
    const started = c.start();
    await vi.advanceTimersByTimeAsync(250);
    await started;
    await vi.advanceTimersByTimeAsync(1400); // cadence: 250 ms probe + 100 ms interval
    expect(calls.get('127.0.0.1:1')).toBe(5);
    expect(maxOpen()).toBe(1);
    c.stop();
  });

  it('flips hosts by rise/fall and reports only flips', async () => {
    const u = upstream('    health_check: { interval: 100ms, unhealthy_interval: 50ms, healthy_threshold: 2, unhealthy_threshold: 3 }', { n: 1 });
    const h = u.hosts[0]!;
    // pass, pass, then 4 failures, then passes.
    const results = [PASS, PASS, FAIL, FAIL, FAIL, FAIL, PASS, PASS, PASS];
    const { c, flips, probed } = checker([u], (_a, n) => ({ result: results[n - 1] ?? PASS, ms: 0 }));
    expect(h.activeCheckFailed).toBe(true); // initial_state unhealthy
    await c.start();
    expect(h.activeCheckFailed).toBe(false);
    await vi.advanceTimersByTimeAsync(100 * 4); // probes 2..5: the third failure is probe 5
    expect(h.activeCheckFailed).toBe(true);
    // Unhealthy: probed every 50 ms now. Probes 6 (fail), 7 and 8 (pass): healthy at probe 8.
    await vi.advanceTimersByTimeAsync(50 * 2);
    expect(h.activeCheckFailed).toBe(true);
    await vi.advanceTimersByTimeAsync(50);
    expect(h.activeCheckFailed).toBe(false);
    expect(flips).toEqual([
      ['127.0.0.1:1', true, 1],
      ['127.0.0.1:1', false, 3],
      ['127.0.0.1:1', true, 2],
    ]);
    expect(probed).toHaveLength(8);
    c.stop();
  });

  it('probes a server shared by two upstreams once, and applies the verdict to both', async () => {
    const a = upstream('    health_check: { interval: 100ms, unhealthy_threshold: 1 }', { n: 2 });
    const b = upstream('    health_check: { interval: 100ms, unhealthy_threshold: 1 }', { n: 2 });
    const { c, calls, probed } = checker([a, b], (address, n) => ({ result: address === '127.0.0.1:2' && n >= 2 ? FAIL : PASS, ms: 0 }));
    expect(c.targets).toBe(2);
    await c.start();
    await vi.advanceTimersByTimeAsync(100);
    expect([...calls.values()]).toEqual([2, 2]);
    expect(a.hosts[1]!.activeCheckFailed).toBe(true);
    expect(b.hosts[1]!.activeCheckFailed).toBe(true);
    expect(probed.filter((p) => p.endsWith(':2:-'))).toEqual(['pool/127.0.0.1:2:-', 'pool/127.0.0.1:2:-']);
    c.stop();
  });

  it('stop() aborts the probe in flight and schedules nothing more', async () => {
    const u = upstream('    health_check: { interval: 100ms }', { n: 1 });
    const { c, calls, aborted } = checker([u], () => ({ result: PASS, ms: 50 }));
    const started = c.start();
    await vi.advanceTimersByTimeAsync(50);
    await started;
    await vi.advanceTimersByTimeAsync(120); // the second probe is in flight
    expect(calls.get('127.0.0.1:1')).toBe(2);
    c.stop();
    expect(aborted).toEqual(['127.0.0.1:1']);
    await vi.advanceTimersByTimeAsync(1000);
    expect(calls.get('127.0.0.1:1')).toBe(2);
    expect(vi.getTimerCount()).toBe(0);
  });
});
