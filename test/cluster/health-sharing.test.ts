/**
 * The pieces cluster mode shares health with, in one process: HealthService's events, snapshot and apply (with
 * manual clocks whose origins differ, as two processes' clocks do), the local and remote health feeds, the IPC
 * message guards and sends to a closed channel, and a reload that keeps the active checker's verdict consistent
 * with the servers' inherited flags.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import pino from 'pino';
import { Metrics } from '../../src/admin/metrics.js';
import { Ballast } from '../../src/ballast.js';
import { LocalHealthFeed, RemoteHealthFeed, type HealthFeed } from '../../src/health/health-feed.js';
import { HealthService } from '../../src/health/health-service.js';
import type { HealthEvent, HostHealth } from '../../src/health/shared-health.js';
import { isToPrimary, isToWorker, send } from '../../src/cluster/messages.js';
import { workerCount } from '../../src/cluster/primary.js';
import { parseConfig } from '../../src/config/load.js';
import { CONNECT_FAILURE } from '../../src/upstream/outcome.js';
import type { Upstream } from '../../src/upstream/upstream.js';
import { manualClock, seededRandom, upstream, type ManualClock } from '../health/units.js';
import { startOrigin, type Origin } from '../helpers/origin.js';
import { get, startBallast, type TestBallast } from '../helpers/ballast.js';
import { sleep, waitFor } from '../helpers/wait.js';

const silent = pino({ level: 'silent' });
const OUTLIER = '    outlier_detection: { consecutive_gateway_failures: 2, consecutive_failures: 0, base_ejection_time: 1s, max_ejection_time: 10s, max_ejection_percent: 100% }';

/** A feed like a cluster worker's: no probes, and the changes decided here recorded in `events`. */
function workerFeed(events: HealthEvent[] = []): RemoteHealthFeed {
  return new RemoteHealthFeed([], (e) => events.push(e));
}

function service(clock: ManualClock, events: HealthEvent[] = [], feed: HealthFeed = workerFeed(events)): { u: Upstream; health: HealthService } {
  const u = upstream(OUTLIER, { n: 3, clock });
  const health = new HealthService([u], {
    clock,
    random: () => 0, // no jitter on ejection times
    log: silent,
    metrics: new Metrics({ processMetrics: false }),
    feed,
  });
  void health.start();
  return { u, health };
}

/** A logger whose lines (their `msg`) are kept, to see which process logs what. */
function captured(): { log: pino.Logger; msgs: () => string[] } {
  const lines: { msg: string }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as { msg: string });
      cb();
    },
  });
  return { log: pino({ level: 'info' }, sink), msgs: () => lines.map((l) => l.msg) };
}

/** One server's flags in a snapshot, healthy unless said otherwise. */
function hostHealth(server: string, flags: Partial<HostHealth> = {}): HostHealth {
  return { upstream: 'pool', server, activeCheckFailed: false, ejectedForMs: 0, ejections: 0, draining: false, disabled: false, ...flags };
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
    const health = new HealthService([u], { clock, random: () => 0, log: silent, metrics: new Metrics({ processMetrics: false }), feed: workerFeed(events) });
    void health.start();
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

describe('health feeds', () => {
  it('a local feed publishes what its process decides to every subscriber, and applies what another decided without publishing it', () => {
    const clock = manualClock();
    const feed = new LocalHealthFeed();
    const heard: HealthEvent[] = [];
    const unsubscribe = feed.subscribe((e) => heard.push(e));
    const p = service(clock, [], feed);
    stops.push(() => p.health.stop());
    const [h0, h1] = p.u.hosts as [Upstream['hosts'][number], Upstream['hosts'][number]];
    p.u.observe(h0, CONNECT_FAILURE);
    p.u.observe(h0, CONNECT_FAILURE);
    expect(heard).toMatchObject([{ kind: 'ejected', server: h0.address }]);

    expect(feed.apply({ kind: 'ejected', upstream: 'pool', server: h1.address, forMs: 1000, count: 1, reason: 'consecutive_failures' })).toBe(true);
    expect(h1.state(clock.now)).toBe('ejected');
    expect(heard).toHaveLength(1);
    unsubscribe();
    feed.publish({ kind: 'admin', upstream: 'pool', server: h1.address, draining: true, disabled: false });
    expect(heard).toHaveLength(1);
  });

  it('a remote feed starts each service from the snapshot, then the changes that came before it; a stopped service hears no more', () => {
    const clock = manualClock();
    const [s0, s1, s2] = upstream(OUTLIER, { n: 3 }).hosts.map((h) => h.address) as [string, string, string];
    const feed = new RemoteHealthFeed([hostHealth(s0, { activeCheckFailed: true }), hostHealth(s2, { ejectedForMs: 500, ejections: 2 })], () => {});
    // Arrives before any service is built (a worker between its `init` and its first service): kept for it.
    expect(feed.apply({ kind: 'admin', upstream: 'pool', server: s1, draining: true, disabled: false })).toBe(false);
    const first = service(clock, [], feed);
    stops.push(() => first.health.stop());
    expect(first.u.hosts.map((h) => h.state(clock.now))).toEqual(['unhealthy', 'draining', 'ejected']);
    expect(first.u.host(s2)!.ejectedUntil - clock.now).toBe(500);

    // A reload: the new service starts from the snapshot sent with it, and until the old one stops, both take in
    // what the primary sends.
    feed.resetSnapshot([hostHealth(s0), hostHealth(s1, { draining: true }), hostHealth(s2, { ejectedForMs: 500, ejections: 2 })]);
    const second = service(clock, [], feed);
    stops.push(() => second.health.stop());
    expect(second.u.hosts.map((h) => h.state(clock.now))).toEqual(['healthy', 'draining', 'ejected']);
    expect(feed.apply({ kind: 'admin', upstream: 'pool', server: s0, draining: false, disabled: true })).toBe(true);
    expect(first.u.host(s0)!.disabled && second.u.host(s0)!.disabled).toBe(true);
    first.health.stop();
    feed.apply({ kind: 'admin', upstream: 'pool', server: s0, draining: false, disabled: false });
    expect(first.u.host(s0)!.disabled).toBe(true);
    expect(second.u.host(s0)!.disabled).toBe(false);
  });

  it('the process that probes logs panic and the end of every ejection, whoever decided it; one that does not logs only the ejections it decides', async () => {
    const keys = `${OUTLIER.replace('base_ejection_time: 1s', 'base_ejection_time: 50ms')}\n    panic_threshold: 70%`;
    const make = async (clock: ManualClock, feed: HealthFeed, log: pino.Logger) => {
      const u = upstream(keys, { n: 3, clock });
      const health = new HealthService([u], { clock, random: () => 0, log, metrics: new Metrics({ processMetrics: false }), feed });
      stops.push(() => health.stop());
      await health.start();
      return u;
    };
    const decided: HealthEvent[] = [];
    const workerLog = captured();
    const primaryLog = captured();
    const workerClock = manualClock(1_000);
    const primaryClock = manualClock(5_000_000);
    const worker = await make(workerClock, new RemoteHealthFeed([], (e) => decided.push(e)), workerLog.log);
    const primaryFeed = new LocalHealthFeed();
    const primary = await make(primaryClock, primaryFeed, primaryLog.log);

    const host = worker.hosts[1]!;
    worker.observe(host, CONNECT_FAILURE);
    worker.observe(host, CONNECT_FAILURE);
    expect(decided).toHaveLength(1);
    expect(primaryFeed.apply(decided[0]!)).toBe(true);
    // One server of three out: 67% available, under the 70% threshold.
    expect(workerLog.msgs()).toEqual(['server ejected']);
    expect(primaryLog.msgs()).toEqual(['upstream in panic: too few servers available, balancing over all of them']);

    // Both ejections run out (each process's timer, on its own clock).
    workerClock.now += 60;
    primaryClock.now += 60;
    await sleep(120);
    expect(primary.host(host.address)!.state(primaryClock.now)).toBe('healthy');
    expect(worker.host(host.address)!.state(workerClock.now)).toBe('healthy');
    expect(primaryLog.msgs()).toEqual(['upstream in panic: too few servers available, balancing over all of them', 'server ejection ended', 'upstream left panic']);
    expect(workerLog.msgs()).toEqual(['server ejected']);
  });

  it('a Ballast on a remote feed binds its proxy listeners only, probes nothing, and follows the feed across a reload', async () => {
    const origin: Origin = await startOrigin('o1');
    stops.push(() => origin.close());
    const yaml = (route: string) => `
admin: { listen: 127.0.0.1:0 }
logging: { level: silent }
listeners: [{ name: web, listen: 127.0.0.1:0, routes: [{ match: { path_prefix: ${route} }, upstream: pool }] }]
upstreams:
  - name: pool
    servers: [{ address: ${origin.address} }]
    health_check: { interval: 50ms, timeout: 1s }
`;
    const parsed = parseConfig(yaml('/'), {});
    if (!parsed.ok) throw new Error('bad config');
    const feed = new RemoteHealthFeed([hostHealth(origin.address, { activeCheckFailed: true })], () => {});
    const ballast = await Ballast.start(parsed.config, { log: silent, processMetrics: false, bind: 'proxy', health: feed });
    stops.push(() => ballast.stop(0));
    expect(ballast.admin).toBeUndefined();
    expect(ballast.health.checker.targets).toBe(0);
    const url = (path: string) => `http://127.0.0.1:${ballast.port('web')}${path}`;
    // The origin answers its /healthz, but this process does not probe: the snapshot's verdict stands.
    expect((await get(url('/'))).status).toBe(503);
    feed.apply({ kind: 'active', upstream: 'pool', server: origin.address, failed: false });
    expect((await get(url('/'))).status).toBe(200);

    feed.resetSnapshot([hostHealth(origin.address, { activeCheckFailed: true })]);
    const next = parseConfig(yaml('/v2/'), {});
    if (!next.ok) throw new Error('bad config');
    await ballast.reload(next.config);
    expect((await get(url('/v2/'))).status).toBe(503);
    await sleep(150);
    expect(origin.received).toHaveLength(1);
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
