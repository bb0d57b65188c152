/**
 * Health in cluster mode (`workers: 2`): the primary probes each server once (not once per worker) and every worker
 * follows its verdicts; an ejection decided by one worker is applied by the other and shown in /status; panic and
 * the end of an ejection are logged once, by the primary; an admin action on the primary reaches every worker, and
 * /status sums the workers' requests in flight; a worker that dies is forked again and starts from the primary's
 * picture of health.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Client } from 'undici';
import type { Origin } from '../helpers/origin.js';
import { namedOrigins, onCleanup } from '../helpers/fixtures.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { accessLines, getFresh, getFromEveryWorker, getJson, getMany, holdInEveryWorker, killAll, metricSum, originOf, serverState, startCluster, type StatusDoc } from './harness.js';

// Cluster processes go first; the fixtures' cleanup (origins, servers) runs after.
afterEach(() => killAll());

/** Counts the probes an origin receives (the origin helper answers /healthz without recording it). */
function probeCounter(origin: Origin): { count: number } {
  const counter = { count: 0 };
  origin.server.on('request', (req: { url?: string }) => {
    if (req.url === '/healthz') counter.count++;
  });
  return counter;
}

const workersOf = (lines: Record<string, unknown>[]) => new Set(lines.map((l) => l.worker));

const INTERVAL_MS = 200;

function pool(port: number, adminPort: number, servers: Origin[], upstreamExtra: string): string {
  return `
admin: { listen: 127.0.0.1:${adminPort} }
logging: { level: info, access_log: true }
workers: 2
listeners:
  - { name: web, listen: 127.0.0.1:${port}, routes: [{ upstream: pool }] }
upstreams:
  - name: pool
    panic_threshold: 0%
    servers: [${servers.map((o) => `{ address: ${o.address} }`).join(', ')}]
${upstreamExtra}
`;
}

const healthCheck = `    health_check: { interval: ${INTERVAL_MS}ms, unhealthy_interval: ${INTERVAL_MS}ms, timeout: 1s, jitter: 0%, healthy_threshold: 1, unhealthy_threshold: 2 }`;

describe('shared health, workers: 2', () => {
  it('probes each server once per interval (in the primary) and every worker follows a failing /healthz', async () => {
    const [a, b] = await namedOrigins('o1', 'o2');
    const probesA = probeCounter(a!);
    const probesB = probeCounter(b!);
    const cluster = await startCluster((port, adminPort) => pool(port, adminPort, [a!, b!], healthCheck));

    // One prober: about one probe per interval per server (two probers would make it two). A loaded machine only
    // delays timers, so the upper bound is the one that matters.
    probesA.count = 0;
    probesB.count = 0;
    const windowMs = 2000;
    await sleep(windowMs);
    const expected = windowMs / INTERVAL_MS;
    for (const n of [probesA.count, probesB.count]) {
      expect(n).toBeGreaterThanOrEqual(3);
      expect(n).toBeLessThanOrEqual(expected * 1.3);
    }

    b!.healthy = false;
    await waitFor(async () => (await serverState(cluster, b!.address)) === 'unhealthy', { what: 'o2 unhealthy in /status' });
    const before = b!.received.length;
    // Both workers serve some of them, and none sends o2 anything.
    const replies = await getFromEveryWorker(cluster, '/while-down', { n: 20 });
    expect(replies.map((r) => originOf(r.body))).toEqual(Array(replies.length).fill('o1'));
    expect(b!.received.length).toBe(before);
    // The verdict is logged once, by the primary.
    const verdicts = cluster.lines.filter((l) => l.msg === 'server failed its active health checks');
    expect(verdicts).toHaveLength(1);
    expect(verdicts[0]!.role).toBe('primary');
    const metrics = (await getFresh(cluster.admin('/metrics'))).body;
    expect(metricSum(metrics, 'ballast_upstream_server_healthy', { server: b!.address })).toBe(0);
    expect(metricSum(metrics, 'ballast_health_checks_total', { server: b!.address, result: 'failure' })).toBeGreaterThanOrEqual(2);

    // And back, in every worker.
    b!.healthy = true;
    await waitFor(async () => (await serverState(cluster, b!.address)) === 'healthy', { what: 'o2 healthy again' });
    const back = await getMany(cluster.url('/'), 8);
    expect(back.filter((r) => originOf(r.body) === 'o2').length).toBeGreaterThanOrEqual(2);
  });

  it('an ejection decided by one worker is applied by the other and shown in /status', async () => {
    const [a, b] = await namedOrigins('o1', 'o2');
    b!.mode = { status: 500 };
    const cluster = await startCluster((port, adminPort) => pool(port, adminPort, [a!, b!], `
    outlier_detection: { consecutive_failures: 2, base_ejection_time: 30s }
    retry: { attempts: 1 }`));

    // One keep-alive connection: one worker sees both failures and ejects o2; the other has seen nothing.
    const client = new Client(cluster.url('/'), { pipelining: 1 });
    onCleanup(() => client.close());
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await client.request({ path: '/before', method: 'GET' });
      await res.body.text();
      statuses.push(res.statusCode);
    }
    expect(statuses.sort()).toEqual([200, 200, 500, 500]);
    const ejected = await cluster.waitForLine((l) => l.msg === 'server ejected', 'server ejected');
    const ejector = ejected.worker;
    expect(ejector === 1 || ejector === 2).toBe(true);
    await waitFor(async () => (await serverState(cluster, b!.address)) === 'ejected', { what: 'o2 ejected in /status' });
    await cluster.waitForLine((l) => l.msg === 'server ejected by a worker: shared with every worker', 'primary relays the ejection');

    const before = b!.received.length;
    // The other worker serves some of those too, and sends o2 nothing: it applied the ejection it did not decide.
    const replies = await getFromEveryWorker(cluster, '/after', { n: 20 });
    expect(replies.every((r) => r.status === 200 && originOf(r.body) === 'o1')).toBe(true);
    expect(b!.received.length).toBe(before);
    expect(cluster.lines.filter((l) => l.msg === 'server ejected')).toHaveLength(1);
    const metrics = (await getFresh(cluster.admin('/metrics'))).body;
    expect(metricSum(metrics, 'ballast_outlier_ejections_total', { server: b!.address })).toBe(1);
  });

  it('panic is logged once, by the primary, when a worker ejects a server and again when that ejection runs out', async () => {
    const [a, b] = await namedOrigins('o1', 'o2');
    b!.mode = { status: 500 };
    // One server of two ejected leaves 50% available, under a 60% threshold: panic.
    const cluster = await startCluster((port, adminPort) => pool(port, adminPort, [a!, b!], `
    outlier_detection: { consecutive_failures: 2, base_ejection_time: 1s, max_ejection_percent: 100%, interval: 60s }
    retry: { attempts: 1 }`).replace('panic_threshold: 0%', 'panic_threshold: 60%'));
    const client = new Client(cluster.url('/'), { pipelining: 1 });
    onCleanup(() => client.close());
    for (let i = 0; i < 4; i++) await (await client.request({ path: '/eject', method: 'GET' })).body.text();
    await cluster.waitForLine((l) => l.msg === 'server ejected', 'server ejected');
    b!.mode = 'ok';
    const inPanic = await cluster.waitForLine((l) => l.msg === 'upstream in panic: too few servers available, balancing over all of them', 'panic');
    expect(inPanic).toMatchObject({ role: 'primary', upstream: 'pool', available: 1, eligible: 2 });
    // Both workers pick while in panic (and after): neither logs it again.
    await getFromEveryWorker(cluster, '/in-panic', { n: 12 });
    const left = await cluster.waitForLine((l) => l.msg === 'upstream left panic', 'panic over when the ejection runs out', { timeoutMs: 5000 });
    expect(left).toMatchObject({ role: 'primary', available: 2, eligible: 2 });
    await getFromEveryWorker(cluster, '/after-panic', { n: 12 });
    const panicLines = cluster.lines.filter((l) => typeof l.msg === 'string' && /panic/.test(l.msg));
    expect(panicLines.map((l) => [l.msg, l.role ?? l.worker])).toEqual([
      [inPanic.msg, 'primary'],
      ['upstream left panic', 'primary'],
    ]);
    // So is the end of the ejection: by the primary, which hears of every ejection, not by each worker.
    const ends = cluster.lines.filter((l) => l.msg === 'server ejection ended');
    expect(ends.map((l) => [l.server, l.role ?? l.worker])).toEqual([[b!.address, 'primary']]);
  });

  it('admin disable on the primary reaches every worker; /status counts requests in flight in both workers', async () => {
    const [slow, fast] = await namedOrigins('slow', 'fast');
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    const heldFrom: number[] = [];
    slow!.handler = (req, res) => {
      heldFrom.push(req.socket.remotePort!);
      void held.then(() => res.end(JSON.stringify({ origin: 'slow' })));
    };
    const cluster = await startCluster((port, adminPort) => pool(port, adminPort, [slow!, fast!], ''));
    // Connections one by one (each worker alternates slow/fast) until both workers hold requests at slow.
    let i = 0;
    const inflight = await holdInEveryWorker(cluster, () => getFresh(cluster.url(`/held-${i++}`)), heldFrom, {
      arrived: () => slow!.received.length + fast!.received.length,
    });
    const atSlow = slow!.received.length;
    expect(atSlow).toBeGreaterThanOrEqual(2);
    const status = await getJson<StatusDoc>(cluster.admin('/status'));
    expect(status.upstreams[0]!.servers.find((s) => s.address === slow!.address)!.active_requests).toBe(atSlow);

    const res = await fetch(cluster.admin(`/servers/disable?server=${slow!.address}`), { method: 'POST' });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { servers: { state: string; active_requests: number }[] };
    expect(body.servers[0]).toMatchObject({ state: 'disabled', active_requests: atSlow });
    const replies = await getFromEveryWorker(cluster, '/while-disabled', { n: 12 });
    expect(replies.every((r) => r.status === 200 && originOf(r.body) === 'fast')).toBe(true);

    release();
    expect((await Promise.all(inflight)).every((r) => r.status === 200)).toBe(true);
    await waitFor(() => accessLines(cluster, '/held-').length === inflight.length, { what: 'access lines' });
    // The requests held at slow came through both workers.
    expect(workersOf(accessLines(cluster, '/held-').filter((l) => l.server === slow!.address))).toEqual(new Set([1, 2]));
    expect(await serverState(cluster, slow!.address)).toBe('disabled');
  });

  it('a worker that dies is forked again and starts from the primary’s health', async () => {
    const [a, b] = await namedOrigins('o1', 'o2');
    const cluster = await startCluster((port, adminPort) => pool(port, adminPort, [a!, b!], healthCheck));
    b!.healthy = false;
    await waitFor(async () => (await serverState(cluster, b!.address)) === 'unhealthy', { what: 'o2 unhealthy' });
    const [victim] = cluster.workerPids();
    const from = cluster.lines.length;
    process.kill(victim!, 'SIGKILL');
    await cluster.waitForLine((l) => l.msg === 'worker exited unexpectedly: starting another', 'exit noticed', { from });
    const reborn = await cluster.waitForLine((l) => l.msg === 'worker ready', 'a new worker ready', { from });
    expect(reborn.worker).toBe(3);

    // The new worker (id 3) takes its share and, from its first request, knows o2 is down.
    const replies = await getFromEveryWorker(cluster, '/after-restart', { n: 20, workers: [3] });
    expect(replies.every((r) => r.status === 200 && originOf(r.body) === 'o1')).toBe(true);
  });
});
