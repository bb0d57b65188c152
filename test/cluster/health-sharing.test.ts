/**
 * The pieces cluster mode shares health with, in one process: HealthService's events, snapshot and apply (with
 * manual clocks whose origins differ, as two processes' clocks do), the IPC message guards and sends to a closed
 * channel, and a reload that keeps the active checker's verdict consistent with the servers' inherited flags.
 */
import { afterEach, describe, expect, it } from 'vitest';
import pino from 'pino';
import { Metrics } from '../../src/admin/metrics.js';
import { HealthService } from '../../src/health/health-service.js';
import type { HealthEvent } from '../../src/health/shared-health.js';
import { isToPrimary, isToWorker, send } from '../../src/cluster/messages.js';
import { workerCount } from '../../src/cluster/primary.js';
import { parseConfig } from '../../src/config/load.js';
import { CONNECT_FAILURE } from '../../src/upstream/outcome.js';
import type { Upstream } from '../../src/upstream/upstream.js';
import { manualClock, seededRandom, upstream, type ManualClock } from '../health/units.js';
import { startOrigin, type Origin } from '../helpers/origin.js';
import { startBallast, type TestBallast } from '../helpers/ballast.js';
import { waitFor } from '../helpers/wait.js';

const silent = pino({ level: 'silent' });
const OUTLIER = '    outlier_detection: { consecutive_gateway_failures: 2, consecutive_failures: 0, base_ejection_time: 1s, max_ejection_time: 10s, max_ejection_percent: 100% }';

function service(clock: ManualClock, events: HealthEvent[] = []): { u: Upstream; health: HealthService } {
  const u = upstream(OUTLIER, { n: 3, clock });
  const health = new HealthService([u], {
    clock,
    random: () => 0, // no jitter on ejection times
    log: silent,
    metrics: new Metrics({ processMetrics: false }),
    activeChecks: false,
    onEvent: (e) => events.push(e),
  });
  health.start();
  return { u, health };
}

const stops: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});

describe('HealthService sharing', () => {
  it('an ejection relayed from another worker respects max_ejection_percent here too', () => {
    const clock = manualClock(1_000);
    const u = upstream('    outlier_detection: { consecutive_gateway_failures: 2, consecutive_failures: 0, base_ejection_time: 1s, max_ejection_percent: 50% }', { n: 2, clock });
    const events: HealthEvent[] = [];
    const health = new HealthService([u], { clock, random: () => 0, log: silent, metrics: new Metrics({ processMetrics: false }), activeChecks: false, onEvent: (e) => events.push(e) });
    health.start();
    stops.push(() => health.stop());
    const [a, b] = u.hosts as [Upstream['hosts'][number], Upstream['hosts'][number]];
    // This worker ejects A itself; a relayed ejection of B would make it 2 of 2, over 50%.
    u.observe(a, CONNECT_FAILURE);
    u.observe(a, CONNECT_FAILURE);
    expect(a.state(clock.now)).toBe('ejected');
    expect(health.apply({ kind: 'ejected', upstream: 'pool', server: b.address, forMs: 1000, count: 1, reason: 'consecutive_local_origin_failures' })).toBe(false);
    expect(b.state(clock.now)).toBe('healthy');
  });

  it('reports a local ejection as an event; applying it elsewhere ejects for the same duration without reporting again', () => {
    const eventsA: HealthEvent[] = [];
    const eventsB: HealthEvent[] = [];
    const clockA = manualClock(1_000);
    const clockB = manualClock(9_000_000); // another process: another clock origin
    const a = service(clockA, eventsA);
    const b = service(clockB, eventsB);
    stops.push(() => a.health.stop(), () => b.health.stop());
    const host = a.u.hosts[1]!;
    a.u.observe(host, CONNECT_FAILURE);
    a.u.observe(host, CONNECT_FAILURE);
    expect(eventsA).toHaveLength(1);
    const ejected = eventsA[0]!;
    expect(ejected).toMatchObject({ kind: 'ejected', upstream: 'pool', server: host.address, count: 1, reason: 'consecutive_local_origin_failures' });
    if (ejected.kind !== 'ejected') throw new Error('unreachable');

    expect(b.health.apply(ejected)).toBe(true);
    const there = b.u.host(host.address)!;
    expect(there.state(clockB.now)).toBe('ejected');
    expect(there.ejectedUntil - clockB.now).toBe(ejected.forMs);
    expect(eventsB).toEqual([]);
    // The same ejection again, or a shorter one, changes nothing; a longer one extends it.
    expect(b.health.apply(ejected)).toBe(false);
    expect(b.health.apply({ ...ejected, forMs: ejected.forMs * 3 })).toBe(true);
    expect(there.ejectedUntil - clockB.now).toBe(ejected.forMs * 3);

    // The adopted count makes B's own next ejection as long as A's would be.
    clockB.now += ejected.forMs * 3 + 1;
    expect(there.state(clockB.now)).toBe('healthy');
    b.u.observe(there, CONNECT_FAILURE);
    b.u.observe(there, CONNECT_FAILURE);
    expect(eventsB).toHaveLength(1);
    expect(eventsB[0]).toMatchObject({ kind: 'ejected', count: 2, forMs: 2 * ejected.forMs });

    // An early end decided elsewhere.
    expect(b.health.apply({ kind: 'ejection-ended', upstream: 'pool', server: there.address })).toBe(true);
    expect(there.state(clockB.now)).toBe('healthy');
  });

  it('a snapshot carries every source flag and the time left of an ejection; applying it keeps a longer local ejection', () => {
    const clockA = manualClock(5_000);
    const clockB = manualClock(77_000_000);
    const a = service(clockA);
    const b = service(clockB);
    stops.push(() => a.health.stop(), () => b.health.stop());
    const [h0, h1, h2] = a.u.hosts as [typeof a.u.hosts[0], typeof a.u.hosts[0], typeof a.u.hosts[0]];
    h0.setActiveCheckFailed(true, clockA.now);
    h1.setDraining(true, clockA.now);
    h1.setDisabled(true, clockA.now);
    a.u.observe(h2, CONNECT_FAILURE);
    a.u.observe(h2, CONNECT_FAILURE);
    clockA.now += 400;
    const snapshot = a.health.snapshot();
    expect(snapshot.find((s) => s.server === h2.address)).toMatchObject({ ejectedForMs: 600, ejections: 1 });

    // B ejected h2 itself for longer than A knows of: the snapshot does not shorten it.
    const b2 = b.u.host(h2.address)!;
    b.health.apply({ kind: 'ejected', upstream: 'pool', server: h2.address, forMs: 5000, count: 1, reason: 'consecutive_failures' });
    b.health.applySnapshot(snapshot);
    const states = b.u.hosts.map((h) => h.state(clockB.now));
    expect(states).toEqual(['unhealthy', 'disabled', 'ejected']);
    expect(b.u.hosts[1]!.draining).toBe(true);
    expect(b2.ejectedUntil - clockB.now).toBe(5000);

    // And the primary's verdicts replace ours, both ways.
    h0.setActiveCheckFailed(false, clockA.now);
    b.health.applySnapshot(a.health.snapshot());
    expect(b.u.hosts[0]!.state(clockB.now)).toBe('healthy');
  });

  it('admin and active-check events apply one flag each; an unknown server is ignored', () => {
    const clock = manualClock();
    const b = service(clock);
    stops.push(() => b.health.stop());
    const address = b.u.hosts[0]!.address;
    expect(b.health.apply({ kind: 'active', upstream: 'pool', server: address, failed: true })).toBe(true);
    expect(b.health.apply({ kind: 'admin', upstream: 'pool', server: address, draining: true, disabled: false })).toBe(true);
    expect(b.u.hosts[0]).toMatchObject({ activeCheckFailed: true, draining: true, disabled: false });
    expect(b.health.apply({ kind: 'active', upstream: 'pool', server: address, failed: false })).toBe(true);
    expect(b.u.hosts[0]!.state(clock.now)).toBe('draining');
    expect(b.health.apply({ kind: 'active', upstream: 'nope', server: address, failed: true })).toBe(false);
    expect(b.health.apply({ kind: 'active', upstream: 'pool', server: '10.9.9.9:1', failed: true })).toBe(false);
  });
});

describe('cluster messages', () => {
  it('recognises only its own messages', () => {
    expect(isToPrimary({ type: 'hello' })).toBe(true);
    expect(isToPrimary({ type: 'prom-client:getMetricsRes' })).toBe(false);
    expect(isToPrimary(null)).toBe(false);
    expect(isToWorker({ type: 'stop' })).toBe(true);
    expect(isToWorker({ type: 'hello' })).toBe(false);
    expect(isToWorker('stop')).toBe(false);
  });

  it('a send to a peer that is gone resolves false and throws nothing', async () => {
    expect(await send({ connected: false, send: () => true }, { type: 'hello' })).toBe(false);
    expect(await send({ isConnected: () => true, send: (_m, cb) => (setImmediate(() => cb?.(new Error('EPIPE'))), false) }, { type: 'stop' })).toBe(false);
    expect(await send({ connected: true, send: () => { throw new Error('channel closed'); } }, { type: 'ready' })).toBe(false);
    expect(await send({ connected: true, send: (_m, cb) => (cb?.(null), true) }, { type: 'ready' })).toBe(true);
    expect(await send({}, { type: 'ready' })).toBe(false);
  });

  it('workers: auto is one per core', () => {
    expect(workerCount('auto', 8)).toBe(8);
    expect(workerCount('auto', 0)).toBe(1);
    expect(workerCount(3, 8)).toBe(3);
  });
});

describe('reload and active checks', () => {
  it('a server healthy before a reload that fails its first probe after it is marked unhealthy', async () => {
    const origin: Origin = await startOrigin('o1');
    stops.push(() => origin.close());
    const yaml = (interval: string) => `
admin: { listen: 127.0.0.1:0 }
logging: { level: silent }
listeners: [{ name: web, listen: 127.0.0.1:0, routes: [{ upstream: pool }] }]
upstreams:
  - name: pool
    servers: [{ address: ${origin.address} }]
    health_check: { interval: ${interval}, timeout: 1s, unhealthy_threshold: 3 }
`;
    const b: TestBallast = await startBallast(yaml('60s'), { random: seededRandom() });
    stops.push(() => b.stop());
    const host = () => b.ballast.upstreams.get('pool')!.hosts[0]!;
    expect(host().state(performance.now())).toBe('healthy');
    origin.healthy = false;
    // The new checker probes at once; its first result decides (as for a new server), and agrees with the flag.
    const next = parseConfig(yaml('50ms'), {});
    if (!next.ok) throw new Error('bad config');
    await b.ballast.reload(next.config);
    await waitFor(() => host().state(performance.now()) === 'unhealthy', { what: 'unhealthy after the reload', timeoutMs: 3000 });
  });
});
