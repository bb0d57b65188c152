/**
 * Layer 4 end to end, over real sockets: which server a connection goes to (strategy, client-ip affinity,
 * least-request), failover on connect failure, limits, and what is recorded (outcomes, metrics, access log).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startBlackhole, type Blackhole, connectClient, exchange, readAll, readBytes, startTcpOrigin, startTcpProxy, type OriginBehaviour, type TcpOrigin, type TestTcpProxy } from './helpers.js';
import { waitFor } from '../helpers/wait.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function origins(n: number, behaviour: OriginBehaviour = 'greet'): Promise<TcpOrigin[]> {
  const list = await Promise.all(Array.from({ length: n }, (_, i) => startTcpOrigin(`o${i + 1}`, behaviour)));
  cleanup.push(async () => {
    await Promise.all(list.map((o) => o.close()));
  });
  return list;
}

async function blackhole(): Promise<Blackhole> {
  const hole = await startBlackhole();
  cleanup.push(() => hole.close());
  return hole;
}

async function proxy(servers: Parameters<typeof startTcpProxy>[0], opts: { listener?: string; upstream?: string } = {}): Promise<TestTcpProxy> {
  const p = await startTcpProxy(servers, opts);
  cleanup.push(() => p.stop());
  return p;
}

/** The name a greeting origin answered with, after echoing `ping`. */
async function originOf(port: number, localAddress?: string): Promise<string> {
  const reply = (await exchange(port, 'ping', localAddress)).toString();
  expect(reply).toMatch(/^o\d+\nping$/);
  return reply.split('\n')[0]!;
}

function tally(names: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const n of names) out[n] = (out[n] ?? 0) + 1;
  return out;
}

describe('choosing a server', () => {
  it('spreads connections over the servers in turn (round robin)', async () => {
    const os = await origins(3);
    const p = await proxy(os.map((o) => o.address));
    const seen: string[] = [];
    for (let i = 0; i < 30; i++) seen.push(await originOf(p.port));
    expect(tally(seen)).toEqual({ o1: 10, o2: 10, o3: 10 });
    expect(seen.slice(0, 3).sort()).toEqual(['o1', 'o2', 'o3']);
  });

  it('keeps a client IP on one server with maglev on client-ip, and spreads different IPs', async () => {
    const os = await origins(3);
    const p = await proxy(os.map((o) => o.address), { upstream: 'balance: maglev\nhash_key: client-ip' });
    const byIp = new Map<string, Set<string>>();
    // Every 127.0.0.0/8 address is local on Linux, so each of these is a distinct client IP.
    for (let round = 0; round < 3; round++) {
      for (let i = 1; i <= 24; i++) {
        const ip = `127.0.0.${i}`;
        const name = await originOf(p.port, ip);
        if (!byIp.has(ip)) byIp.set(ip, new Set());
        byIp.get(ip)!.add(name);
      }
    }
    for (const [ip, names] of byIp) expect(names.size, ip).toBe(1);
    const used = new Set([...byIp.values()].map((s) => [...s][0]));
    expect(used.size).toBeGreaterThan(1);
    expect((await p.waitForAccessLogs(72)).map((l) => l.client)).toContain('127.0.0.7');
  });

  it('keeps affinity with consistent-hash as well', async () => {
    const os = await origins(3);
    const p = await proxy(os.map((o) => o.address), { upstream: 'balance: consistent-hash' });
    const first = await originOf(p.port, '127.0.0.9');
    for (let i = 0; i < 5; i++) expect(await originOf(p.port, '127.0.0.9')).toBe(first);
  });

  it('least-request counts open connections: a held connection steers the next one away', async () => {
    const os = await origins(2);
    const p = await proxy(os.map((o) => o.address), { upstream: 'balance: least-request' });
    const held = await connectClient(p.port);
    const heldName = (await readBytes(held, 3)).toString().trim();
    for (let i = 0; i < 5; i++) expect(await originOf(p.port)).not.toBe(heldName);
    const host = p.upstream.hosts.find((h) => h.address === os.find((o) => o.name === heldName)!.address)!;
    expect(host.inflight).toBe(1);
    held.destroy();
    await p.waitForAccessLogs(6);
    expect(p.upstream.hosts.map((h) => h.inflight)).toEqual([0, 0]);
  });
});

describe('failover', () => {
  it('one origin killed: every new connection still succeeds on the others', async () => {
    const os = await origins(3);
    const p = await proxy(os.map((o) => o.address));
    await os[1]!.kill();
    const seen: string[] = [];
    for (let i = 0; i < 30; i++) seen.push(await originOf(p.port));
    expect(seen).toHaveLength(30);
    expect(seen).not.toContain('o2');
    // o2's share fails over to both of the others in turn: 15 each, not 10 and 20.
    expect(tally(seen)).toEqual({ o1: 15, o3: 15 });
    // Each connection the strategy sent to o2 failed over, and o2's failures went to the outcome sink.
    const failures = p.outcomes.filter((o) => o.outcome.kind === 'connect-failure');
    // Every third connection tries o2 first: a failed-over one does not take the next connection's turn.
    expect(failures).toHaveLength(10);
    expect(new Set(failures.map((f) => f.server))).toEqual(new Set([os[1]!.address]));
    const failedOver = (await p.waitForAccessLogs(30)).filter((l) => (l.attempts as unknown[]).length === 2);
    expect(failedOver).toHaveLength(failures.length);
    expect(failedOver[0]!.attempts).toEqual([
      { server: os[1]!.address, result: 'ECONNREFUSED', ms: expect.any(Number) as number },
      { server: expect.any(String) as string, result: 'connected', ms: expect.any(Number) as number },
    ]);
    const text = await p.metrics.registry.metrics();
    expect(text).toContain(`ballast_tcp_connect_failures_total{upstream="pool",server="${os[1]!.address}"} ${failures.length}`);
    expect(text).toContain(`ballast_upstream_attempts_total{upstream="pool",server="${os[1]!.address}",outcome="connect-failure"} ${failures.length}`);
  });

  it('a successful connect is reported as connected, with the connect time', async () => {
    const os = await origins(1);
    const p = await proxy(os.map((o) => o.address));
    await originOf(p.port);
    expect(p.outcomes).toEqual([{ server: os[0]!.address, outcome: { kind: 'connected', latencyMs: expect.any(Number) as number } }]);
  });

  it('gives up after connect_attempts and closes the client', async () => {
    const os = await origins(3);
    const p = await proxy(os.map((o) => o.address), { listener: 'connect_attempts: 2' });
    await Promise.all(os.map((o) => o.kill()));
    const client = await connectClient(p.port);
    const got = await readAll(client);
    expect(got.length).toBe(0);
    const [line] = await p.waitForAccessLogs(1);
    expect(line).toMatchObject({ end: 'connect-failed', bytesOut: 0 });
    expect((line!.attempts as unknown[]).length).toBe(2);
    expect(p.outcomes.map((o) => o.outcome.kind)).toEqual(['connect-failure', 'connect-failure']);
  });

  it('times out a connect to a server that does not answer, and fails over', async () => {
    const os = await origins(1);
    const hole = await blackhole();
    const p = await proxy([hole.address, os[0]!.address], { upstream: 'timeouts: { connect: 200ms }' });
    const started = performance.now();
    const names = [await originOf(p.port), await originOf(p.port)];
    expect(names).toEqual(['o1', 'o1']);
    // Without outlier detection the rotation may offer the silent server to both connections; each fails over.
    const failed = (await p.waitForAccessLogs(2)).flatMap((l) => l.attempts as { server: string; result: string; ms: number }[]).filter((a) => a.result !== 'connected');
    expect(failed.length).toBeGreaterThanOrEqual(1);
    for (const f of failed) {
      expect(f).toMatchObject({ server: hole.address, result: 'ETIMEDOUT' });
      expect(f.ms).toBeGreaterThanOrEqual(195);
    }
    expect(performance.now() - started).toBeLessThan(2000);
    expect(p.outcomes.filter((o) => o.outcome.kind === 'connect-failure')).toHaveLength(failed.length);
  });
});

describe('availability', () => {
  it('skips servers the health state marks unavailable, and refuses when none is left', async () => {
    const os = await origins(2);
    const p = await proxy(os.map((o) => o.address));
    const [h1, h2] = p.upstream.hosts;
    h1!.activeCheckFailed = true;
    for (let i = 0; i < 4; i++) expect(await originOf(p.port)).toBe('o2');
    h2!.ejectedUntil = Number.POSITIVE_INFINITY;
    const client = await connectClient(p.port);
    expect((await readAll(client)).length).toBe(0);
    const lines = await p.waitForAccessLogs(5);
    expect(lines[4]).toMatchObject({ end: 'no-server', attempts: [] });
    expect(os.map((o) => o.accepted)).toEqual([0, 4]);
  });

  it('uses a backup server only when no primary is available', async () => {
    const os = await origins(2);
    const p = await proxy([os[0]!.address, { address: os[1]!.address, backup: true }]);
    expect(await originOf(p.port)).toBe('o1');
    p.upstream.hosts[0]!.activeCheckFailed = true;
    expect(await originOf(p.port)).toBe('o2');
  });
});

describe('limits', () => {
  it('refuses connections over the listener max_connections, and accepts again once one closes', async () => {
    const os = await origins(1);
    const p = await proxy(os.map((o) => o.address), { listener: 'max_connections: 2' });
    const a = await connectClient(p.port);
    const b = await connectClient(p.port);
    expect((await readBytes(a, 3)).toString()).toBe('o1\n');
    expect((await readBytes(b, 3)).toString()).toBe('o1\n');
    const c = await connectClient(p.port);
    // Closed at accept: the client reads end of stream at once, and nothing reached the origin.
    expect((await readAll(c)).length).toBe(0);
    c.destroy();
    expect(os[0]!.accepted).toBe(2);
    a.destroy();
    await p.waitForAccessLogs(1);
    expect(await originOf(p.port)).toBe('o1');
    b.destroy();
    const text = await p.metrics.registry.metrics();
    expect(text).toContain('ballast_tcp_connections_closed_total{listener="db",end="listener-limit"} 1');
    // The refused connection has its access line too.
    const refusedLines = (await p.waitForAccessLogs(3)).filter((l) => l.end === 'listener-limit');
    expect(refusedLines).toMatchObject([{ protocol: 'tcp', listener: 'db', client: '127.0.0.1', attempts: 0, bytesIn: 0 }]);
  });

  it('caps connections per server (limits.max_connections) and refuses when every server is full', async () => {
    const os = await origins(2);
    const p = await proxy(os.map((o) => o.address), { upstream: 'limits: { max_connections: 1 }' });
    const a = await connectClient(p.port);
    const b = await connectClient(p.port);
    const names = [(await readBytes(a, 3)).toString(), (await readBytes(b, 3)).toString()].sort();
    expect(names).toEqual(['o1\n', 'o2\n']);
    const c = await connectClient(p.port);
    expect((await readAll(c)).length).toBe(0);
    const [line] = await p.waitForAccessLogs(1);
    expect(line).toMatchObject({ end: 'server-limit', attempts: [] });
    a.destroy();
    await p.waitForAccessLogs(2);
    // A slot is free again, on whichever server `a` used.
    expect(['o1', 'o2']).toContain(await originOf(p.port));
    b.destroy();
  });

  it('with a server full, the next connection goes to the other even if the strategy prefers the full one', async () => {
    const os = await origins(2);
    const p = await proxy(os.map((o) => o.address), { upstream: 'balance: maglev\nlimits: { max_connections: 1 }' });
    const preferred = await originOf(p.port, '127.0.0.5');
    const held = await connectClient(p.port, '127.0.0.5');
    expect((await readBytes(held, 3)).toString()).toBe(`${preferred}\n`);
    const other = await originOf(p.port, '127.0.0.5');
    expect(other).not.toBe(preferred);
    held.destroy();
  });
});

describe('records', () => {
  it('writes one access-log line per connection and keeps the metrics', async () => {
    const os = await origins(1, 'echo');
    const p = await proxy(os.map((o) => o.address));
    expect((await exchange(p.port, 'hello')).toString()).toBe('hello');
    const [line] = await p.waitForAccessLogs(1);
    expect(line).toMatchObject({
      kind: 'access',
      protocol: 'tcp',
      listener: 'db',
      client: '127.0.0.1',
      clientPort: expect.any(Number) as number,
      upstream: 'pool',
      server: os[0]!.address,
      bytesIn: 5,
      bytesOut: 5,
      durationMs: expect.any(Number) as number,
      end: 'done',
    });
    const text = await p.metrics.registry.metrics();
    expect(text).toContain('ballast_tcp_connections_total{listener="db"} 1');
    expect(text).toContain('ballast_tcp_active_connections{listener="db"} 0');
    expect(text).toContain('ballast_active_connections{listener="db"} 0');
    expect(text).toContain('ballast_tcp_bytes_total{listener="db",direction="in"} 5');
    expect(text).toContain('ballast_tcp_bytes_total{listener="db",direction="out"} 5');
    expect(text).toContain('ballast_tcp_connection_duration_seconds_count{listener="db"} 1');
    expect(text).toContain('ballast_tcp_connections_closed_total{listener="db",end="done"} 1');
    expect(text).toContain(`ballast_upstream_attempts_total{upstream="pool",server="${os[0]!.address}",outcome="connected"} 1`);
  });

  it('counts open connections while they are open', async () => {
    const os = await origins(1, 'echo');
    const p = await proxy(os.map((o) => o.address));
    const a = await connectClient(p.port);
    a.write('x');
    await readBytes(a, 1);
    const text = await p.metrics.registry.metrics();
    expect(text).toContain('ballast_tcp_active_connections{listener="db"} 1');
    expect(text).toContain(`ballast_upstream_active_requests{upstream="pool",server="${os[0]!.address}"} 1`);
    a.resetAndDestroy();
    await p.waitForAccessLogs(1);
    expect(p.accessLogs()[0]).toMatchObject({ end: 'client-error', detail: 'ECONNRESET' });
  });

  it('a client that leaves while its server is being connected is logged as client-gone, and nothing is held', async () => {
    const hole = await blackhole();
    const p = await proxy([hole.address], { upstream: 'timeouts: { connect: 5s }' });
    const client = await connectClient(p.port);
    await waitFor(() => p.upstream.hosts[0]!.inflight === 1, { what: 'a lease on the silent server' });
    // A reset, not a FIN: a client that only half-closes may still want its answer, so it is waited for.
    client.resetAndDestroy();
    const [line] = await p.waitForAccessLogs(1, 1000);
    expect(line).toMatchObject({ end: 'client-gone', attempts: [] });
    expect(p.upstream.hosts[0]!.inflight).toBe(0);
    // Leaving is not the server's fault: nothing reached the outcome sink.
    expect(p.outcomes).toEqual([]);
  });
});
