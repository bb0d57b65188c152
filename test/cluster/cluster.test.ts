/**
 * `workers: 2`: the compiled CLI as a cluster primary with two workers. Traffic is served by both workers, /metrics
 * counts it once across them, a tcp listener works too, SIGTERM drains every worker and exits 0, and SIGHUP reloads
 * every worker (or, with a bad file, none).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { writeFileSync } from 'node:fs';
import type { Origin } from '../helpers/origin.js';
import { namedOrigins, onCleanup } from '../helpers/fixtures.js';
import { waitFor } from '../helpers/wait.js';
import { accessLines, exitCode, freePorts, getFresh, getJson, getMany, killAll, metricSamples, metricSum, originOf, startCluster, type StatusDoc } from './harness.js';

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
    const replies = await getMany(cluster.url('/hello'), 40);
    expect(replies.every((r) => r.status === 200)).toBe(true);
    expect(new Set(replies.map((r) => originOf(r.body)))).toEqual(new Set(['o1', 'o2', 'o3']));
    await waitFor(() => accessLines(cluster, '/hello').length === 40, { what: '40 access log lines' });
    // Both workers served, and the access log says which one did.
    expect(workersOf(accessLines(cluster, '/hello'))).toEqual(new Set([1, 2]));

    expect(await tcpRoundTrip(tcpPort, 'ping')).toBe('echo:ping');

    const metrics = (await getFresh(cluster.admin('/metrics'))).body;
    expect(metricSum(metrics, 'ballast_requests_total', { listener: 'web' })).toBe(40);
    expect(metricSum(metrics, 'ballast_requests_total', { listener: 'web', code_class: '2xx' })).toBe(40);
    expect(metricSum(metrics, 'ballast_request_duration_seconds_count', { listener: 'web' })).toBe(40);
    expect(metricSum(metrics, 'ballast_upstream_attempts_total', { upstream: 'pool' })).toBe(40);
    expect(a!.received.length + b!.received.length + c!.received.length).toBe(40);
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
    // One at a time on fresh connections, until each worker has answered three (however the kernel spreads them).
    const perWorker = () => [1, 2].map((w) => accessLines(cluster, '/limited').filter((l) => l.worker === w).length);
    let sent = 0;
    while (perWorker().some((n) => n < 3) && sent < 200) {
      sent++;
      const reply = (await getMany(cluster.url('/limited'), 1, 1))[0]!;
      expect([200, 429]).toContain(reply.status);
      await waitFor(() => accessLines(cluster, '/limited').length === sent, { what: `${sent} access lines` });
    }
    const lines = accessLines(cluster, '/limited');
    for (const worker of [1, 2]) {
      const own = lines.filter((l) => l.worker === worker);
      expect(own.length).toBeGreaterThan(2);
      // Every worker admits its own burst of two, and no more.
      expect(own.filter((l) => l.status === 200)).toHaveLength(2);
    }
    const metrics = await (await fetch(cluster.admin('/metrics'))).text();
    expect(metricSum(metrics, 'ballast_rate_limited_total')).toBe(sent - 4);
  });

  it('on SIGTERM, every worker finishes its request in flight, then all exit and the primary exits 0', async () => {
    const [slow] = await namedOrigins('slow');
    slow!.handler = (_req, res) => setTimeout(() => res.end(JSON.stringify({ origin: 'slow' })), 600);
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
    // Four connections, handed to the workers in turn: both have requests in flight.
    const inflight = Array.from({ length: 4 }, () => getFresh(cluster.url('/slow')));
    await waitFor(() => slow!.received.length === 4, { what: 'four requests at the origin' });
    cluster.child.kill('SIGTERM');
    const replies = await Promise.all(inflight);
    expect(replies.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    expect(await exitCode(cluster.child)).toBe(0);
    expect(workersOf(accessLines(cluster, '/slow'))).toEqual(new Set([1, 2]));
    expect(cluster.lines.filter((l) => l.msg === 'worker draining')).toHaveLength(2);
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
  });

  it('SIGHUP with an invalid file keeps every worker serving; a fixed file reloads them all', async () => {
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
    const cluster = await startCluster((port, adminPort) => text(port, adminPort, a!));
    for (const r of await getMany(cluster.url('/first'), 6)) expect(originOf(r.body)).toBe('o1');

    writeFileSync(cluster.file, text(cluster.port, cluster.adminPort, b!, 'round-robbin'));
    cluster.child.kill('SIGHUP');
    const refused = await cluster.waitForLine((l) => l.msg?.toString().startsWith('reload refused') === true, 'reload refused');
    expect(String(refused.msg)).toContain(`${cluster.file}:9:14 upstreams[0].balance`);
    for (const r of await getMany(cluster.url('/kept'), 10)) expect(originOf(r.body)).toBe('o1');
    await waitFor(() => accessLines(cluster, '/kept').length === 10, { what: 'access lines' });
    expect(workersOf(accessLines(cluster, '/kept'))).toEqual(new Set([1, 2]));

    writeFileSync(cluster.file, text(cluster.port, cluster.adminPort, b!));
    cluster.child.kill('SIGHUP');
    await cluster.waitForLine((l) => l.msg === 'config reloaded', 'config reloaded');
    for (const r of await getMany(cluster.url('/reloaded'), 10)) expect(originOf(r.body)).toBe('o2');
    await waitFor(() => accessLines(cluster, '/reloaded').length === 10, { what: 'access lines' });
    expect(workersOf(accessLines(cluster, '/reloaded'))).toEqual(new Set([1, 2]));
    const status = await getJson<StatusDoc>(cluster.admin('/status'));
    expect(status.upstreams[0]!.servers.map((s) => s.address)).toEqual([b!.address]);
  });
});
