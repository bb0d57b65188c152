/**
 * `workers: 2`: the compiled CLI as a cluster primary with two workers. Traffic is served by both workers, /metrics
 * counts it once across them, a tcp listener works too, SIGTERM drains every worker and exits 0, and SIGHUP and
 * POST /reload reload every worker (or, with a bad file, none).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { writeFileSync } from 'node:fs';
import type { Origin } from '../helpers/origin.js';
import { namedOrigins, onCleanup } from '../helpers/fixtures.js';
import { waitFor } from '../helpers/wait.js';
import { accessLines, exitCode, freePorts, getFresh, getFromEveryWorker, getJson, getMany, holdInEveryWorker, killAll, metricSamples, metricSum, nodeHasReusePort, originOf, startCluster, type StatusDoc } from './harness.js';

// Cluster processes go first; the fixtures' cleanup (origins, servers) runs after.
afterEach(() => killAll());

async function echoServer(): Promise<string> {
  const server: Server = createServer((s) => {
    s.on('error', () => {});
    s.write('echo:');
    s.pipe(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onCleanup(() => new Promise<void>((r) => server.close(() => r())));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function tcpRoundTrip(port: number, text: string): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  let out = '';
  socket.on('data', (c: Buffer) => (out += c.toString()));
  await once(socket, 'connect');
  socket.end(text);
  await once(socket, 'close');
  return out;
}

const workersOf = (lines: Record<string, unknown>[]) => new Set(lines.map((l) => l.worker));

describe('workers: 2', () => {
  it('serves through both workers; /metrics counts every request once across them; tcp works too', async () => {
    const [a, b, c] = await namedOrigins('o1', 'o2', 'o3');
    const echo = await echoServer();
    const [tcpPort] = (await freePorts(1)) as [number];
    const cluster = await startCluster((port, adminPort) => `
admin: { listen: 127.0.0.1:${adminPort} }
logging: { level: info, access_log: true }
workers: 2
listeners:
  - { name: web, listen: 127.0.0.1:${port}, routes: [{ upstream: pool }] }
  - { name: raw, protocol: tcp, listen: 127.0.0.1:${tcpPort}, upstream: echo }
upstreams:
  - name: pool
    servers: [{ address: ${a!.address} }, { address: ${b!.address} }, { address: ${c!.address} }]
  - name: echo
    servers: [{ address: ${echo} }]
`);
    // Each worker accepts its own connections: a socket of its own where Node has SO_REUSEPORT, else a shared one.
    const ready = cluster.lines.find((l) => l.msg === 'cluster ready')!;
    expect(ready.accept).toBe(nodeHasReusePort() ? 'reuseport' : 'shared');
    // Both workers serve (the access log says which one did); the kernel decides how many each.
    const replies = await getFromEveryWorker(cluster, '/hello', { n: 40, each: 3 });
    const n = replies.length;
    expect(replies.every((r) => r.status === 200)).toBe(true);
    expect(new Set(replies.map((r) => originOf(r.body)))).toEqual(new Set(['o1', 'o2', 'o3']));
    expect(workersOf(accessLines(cluster, '/hello'))).toEqual(new Set([1, 2]));

    expect(await tcpRoundTrip(tcpPort, 'ping')).toBe('echo:ping');

    const metrics = (await getFresh(cluster.admin('/metrics'))).body;
    expect(metricSum(metrics, 'ballast_requests_total', { listener: 'web' })).toBe(n);
    expect(metricSum(metrics, 'ballast_requests_total', { listener: 'web', code_class: '2xx' })).toBe(n);
    expect(metricSum(metrics, 'ballast_request_duration_seconds_count', { listener: 'web' })).toBe(n);
    expect(metricSum(metrics, 'ballast_upstream_attempts_total', { upstream: 'pool' })).toBe(n);
    expect(a!.received.length + b!.received.length + c!.received.length).toBe(n);
    // Health gauges come from the primary alone: 1 per server, not 1 per worker.
    const healthy = metricSamples(metrics, 'ballast_upstream_server_healthy');
    expect([...healthy.values()]).toEqual([1, 1, 1, 1]);
    expect(metricSum(metrics, 'ballast_upstream_active_requests')).toBe(0);

    const status = await getJson<StatusDoc>(cluster.admin('/status'));
    expect(status.upstreams[0]!.servers.map((s) => s.state)).toEqual(['healthy', 'healthy', 'healthy']);
    expect((await getFresh(cluster.admin('/ready'))).status).toBe(200);
  });

  it('rate_limit is per worker: each keeps its own buckets, so a client gets up to N times the burst', async () => {
    const [a] = await namedOrigins('o1');
    const cluster = await startCluster((port, adminPort) => `
admin: { listen: 127.0.0.1:${adminPort} }
logging: { level: info, access_log: true }
workers: 2
listeners:
  - { name: web, listen: 127.0.0.1:${port}, client: { rate_limit: { rate: 1, per: 1m, burst: 2 } }, routes: [{ upstream: pool }] }
upstreams:
  - { name: pool, servers: [{ address: ${a!.address} }] }
`);
    // One at a time on fresh connections, until each worker has seen more than its burst.
    const replies = await getFromEveryWorker(cluster, '/limited', { n: 10, each: 3, concurrency: 1 });
    const admitted = replies.filter((r) => r.status === 200).length;
    expect(replies.filter((r) => r.status !== 200).map((r) => r.status)).toEqual(Array(replies.length - admitted).fill(429));
    const lines = accessLines(cluster, '/limited');
    for (const worker of [1, 2]) {
      // Every worker admits its own burst of two, and no more.
      expect(lines.filter((l) => l.worker === worker && l.status === 200)).toHaveLength(2);
    }
    const metrics = await (await fetch(cluster.admin('/metrics'))).text();
    expect(metricSum(metrics, 'ballast_rate_limited_total')).toBe(replies.length - 4);
  });

  it('on SIGTERM, every worker finishes its request in flight, then all exit and the primary exits 0', async () => {
    const [slow] = await namedOrigins('slow');
    let release: () => void = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    const heldFrom: number[] = [];
    slow!.handler = (req, res) => {
      heldFrom.push(req.socket.remotePort!);
      void released.then(() => res.end(JSON.stringify({ origin: 'slow' })));
    };
    const cluster = await startCluster((port, adminPort) => `
admin: { listen: 127.0.0.1:${adminPort} }
logging: { level: info, access_log: true }
workers: 2
listeners:
  - { name: web, listen: 127.0.0.1:${port}, routes: [{ upstream: pool }] }
upstreams:
  - { name: pool, servers: [{ address: ${slow!.address} }] }
`);
    const pids = cluster.workerPids();
    expect(pids).toHaveLength(2);
    // Connections one by one until both workers have a request held at the origin.
    const inflight = await holdInEveryWorker(cluster, () => getFresh(cluster.url('/slow')), heldFrom);
    cluster.child.kill('SIGTERM');
    await cluster.waitForLine((l) => l.msg === 'worker draining' && l.worker === 2, 'worker 2 draining');
    await cluster.waitForLine((l) => l.msg === 'worker draining' && l.worker === 1, 'worker 1 draining');
    release();
    const replies = await Promise.all(inflight);
    expect(replies.map((r) => r.status)).toEqual(Array(inflight.length).fill(200));
    expect(await exitCode(cluster.child)).toBe(0);
    expect(workersOf(accessLines(cluster, '/slow'))).toEqual(new Set([1, 2]));
    expect(cluster.lines.filter((l) => l.msg === 'worker draining')).toHaveLength(2);
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
  });

  it('SIGHUP with an invalid file keeps every worker serving; a fixed file reloads them all; so does POST /reload on the primary, and /metrics counts the reloads once', async () => {
    const [a, b] = await namedOrigins('o1', 'o2');
    const text = (port: number, adminPort: number, server: Origin, balance = 'round-robin') => `
admin: { listen: 127.0.0.1:${adminPort} }
logging: { level: info, access_log: true }
workers: 2
listeners:
  - { name: web, listen: 127.0.0.1:${port}, routes: [{ upstream: pool }] }
upstreams:
  - name: pool
    balance: ${balance}
    servers: [{ address: ${server.address} }]
`;
    const startedAt = Math.floor(Date.now() / 1000);
    const cluster = await startCluster((port, adminPort) => text(port, adminPort, a!));
    for (const r of await getMany(cluster.url('/first'), 6)) expect(originOf(r.body)).toBe('o1');

    writeFileSync(cluster.file, text(cluster.port, cluster.adminPort, b!, 'round-robbin'));
    cluster.child.kill('SIGHUP');
    const refused = await cluster.waitForLine((l) => l.msg?.toString().startsWith('reload refused') === true, 'reload refused');
    expect(String(refused.msg)).toContain(`${cluster.file}:9:14 upstreams[0].balance`);
    for (const r of await getFromEveryWorker(cluster, '/kept', { n: 10 })) expect(originOf(r.body)).toBe('o1');

    writeFileSync(cluster.file, text(cluster.port, cluster.adminPort, b!));
    cluster.child.kill('SIGHUP');
    await cluster.waitForLine((l) => l.msg === 'config reloaded', 'config reloaded');
    for (const r of await getFromEveryWorker(cluster, '/reloaded', { n: 10 })) expect(originOf(r.body)).toBe('o2');
    const status = await getJson<StatusDoc>(cluster.admin('/status'));
    expect(status.upstreams[0]!.servers.map((s) => s.address)).toEqual([b!.address]);

    // POST /reload goes through the primary (it serves the admin) to every worker.
    writeFileSync(cluster.file, text(cluster.port, cluster.adminPort, a!));
    const answer = await fetch(cluster.admin('/reload'), { method: 'POST' });
    expect(answer.status).toBe(200);
    expect(await answer.json()).toMatchObject({ status: 'reloaded', servers: { kept: 0, added: 1, removed: 1 } });
    for (const r of await getFromEveryWorker(cluster, '/posted', { n: 10 })) expect(originOf(r.body)).toBe('o1');
    // Counted by the primary alone: the workers' copies of these series are left out of the sum.
    const metrics = (await getFresh(cluster.admin('/metrics'))).body;
    expect(metricSamples(metrics, 'ballast_config_reloads_total')).toEqual(new Map([['{result="success"}', 2], ['{result="failure"}', 1]]));
    const stamps = metricSamples(metrics, 'ballast_config_last_reload_success_timestamp_seconds');
    expect(stamps.size).toBe(1);
    expect(stamps.get('')).toBeGreaterThanOrEqual(startedAt);
    expect(stamps.get('')).toBeLessThanOrEqual(Date.now() / 1000);
  });
});
