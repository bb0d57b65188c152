/**
 * The exchange loop's bookkeeping over real sockets: every path gives back what it took (leases, admissions, retry
 * slots) and ends with the status that says whose fault it was.
 */
import { createServer, type Server } from 'node:http';
import { connect, createServer as createTcpServer, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort, simpleConfig, startBallast, type TestBallast } from './helpers/ballast.js';
import { sendRaw } from './helpers/raw.js';
import { sleep, waitFor } from './helpers/wait.js';

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function listen(server: Server | import('node:net').Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanup.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function ballast(yaml: string, random?: () => number): Promise<TestBallast> {
  const b = await startBallast(yaml, random === undefined ? {} : { random });
  cleanup.push(() => b.stop());
  return b;
}

describe('exchange bookkeeping', () => {
  it('a HEAD answered with a retryable status the policy declines to retry is relayed, and gives everything back', async () => {
    const origin = createServer((req, res) => {
      res.writeHead(503, { 'retry-after': '3600', 'content-length': '5' });
      res.end(req.method === 'HEAD' ? undefined : 'busy\n');
    });
    const address = await listen(origin);
    // Retry-After is past the request deadline: the policy refuses (deadline) and the 503 is relayed as it is.
    const b = await ballast(simpleConfig([address], '    timeouts: { request: 5s }'));
    const text = await sendRaw(b.port, 'HEAD / HTTP/1.1\r\nHost: x\r\n\r\nHEAD /second HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(text.match(/HTTP\/1\.1 503/g)).toHaveLength(2);
    const upstream = b.ballast.upstreams.get('pool')!;
    await waitFor(() => upstream.hosts[0]!.inflight === 0 && upstream.breaker.active === 0, { what: 'leases and admissions given back' });
    expect(b.ballast.httpListeners[0]!.forwarder.exchanges).toBe(0);
    await waitFor(() => b.logs.filter((l) => l.kind === 'access' && l.method === 'HEAD').length === 2, { what: 'two access lines' });
    expect((await b.ballast.metrics.retriesSkipped.get()).values.map((v) => [v.labels.reason, v.value])).toEqual([['deadline', 2]]);
  });

  it('a TCP connection opened on a retry does not hold the retry budget while it lasts', async () => {
    const echo = createTcpServer((s) => s.pipe(s));
    const live = await listen(echo);
    const dead = `127.0.0.1:${await freePort()}`;
    const b = await ballast(`
admin: { listen: 127.0.0.1:0 }
logging: { level: warn }
listeners:
  - { name: db, protocol: tcp, listen: 127.0.0.1:0, upstream: pool }
upstreams:
  - name: pool
    balance: round-robin
    limits: { max_retries: 1 }
    servers: [ { address: "${dead}" }, { address: "${live}" } ]
`);
    const upstream = b.ballast.upstreams.get('pool')!;
    const sockets = await Promise.all([1, 2].map(() => new Promise<import('node:net').Socket>((resolve) => {
      const s = connect(b.port, '127.0.0.1', () => s.write('ping'));
      s.on('error', () => {});
      s.once('data', () => resolve(s));
    })));
    cleanup.push(() => sockets.forEach((s) => s.destroy()));
    // At least one of the two failed over from the dead server; both are open and relaying.
    expect((await b.ballast.metrics.retries.get()).values.reduce((n, v) => n + v.value, 0)).toBeGreaterThan(0);
    expect(upstream.breaker.retries).toBe(0);
    expect(upstream.hosts.find((h) => h.address === live)!.inflight).toBe(2);
  });

  it('a client that leaves while a retry waits out its backoff is logged 499, not as the failure it would have retried', async () => {
    const dead = `127.0.0.1:${await freePort()}`;
    // Full jitter draws a backoff in [0, 1.5 s); this random makes it ~1.5 s, long enough to leave during.
    const b = await ballast(simpleConfig([dead], '    retry: { attempts: 3, backoff: { base: 1500ms, max: 1500ms } }'), () => 0.99);
    const socket = connect(b.port, '127.0.0.1', () => socket.write('GET /refused HTTP/1.1\r\nHost: x\r\n\r\n'));
    socket.on('error', () => {});
    await waitFor(async () => (await b.ballast.metrics.retries.get()).values.length > 0, { what: 'a retry decided' });
    socket.destroy();
    await waitFor(() => b.logs.some((l) => l.kind === 'access' && l.url === '/refused'), { what: 'the access line' });
    const line = b.logs.find((l) => l.kind === 'access' && l.url === '/refused')!;
    expect(line.status).toBe(499);
    await sleep(10);
    expect(b.ballast.upstreams.get('pool')!.breaker.active).toBe(0);
  });
});
