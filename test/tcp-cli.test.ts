/** A tcp listener started from a config file by the real Ballast, next to an http one, sharing health. */
import { afterEach, describe, expect, it } from 'vitest';
import { createServer, connect, type Server, type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { startBallast, type TestBallast } from './helpers/ballast.js';
import { waitFor } from './helpers/wait.js';

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function echo(name: string): Promise<{ server: Server; address: string }> {
  const server = createServer((s) => {
    s.on('error', () => {});
    s.write(`${name}:`);
    s.pipe(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanup.push(() => new Promise<void>((r) => server.close(() => r())));
  return { server, address: `127.0.0.1:${(server.address() as AddressInfo).port}` };
}

async function roundTrip(port: number, text: string): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  let out = '';
  socket.on('data', (c: Buffer) => (out += c.toString()));
  await once(socket, 'connect');
  socket.end(text);
  await once(socket, 'close');
  return out;
}

describe('tcp listener in Ballast', () => {
  it('balances raw TCP over the pool and skips a server its tcp health check marks down', async () => {
    const a = await echo('a');
    const b = await echo('b');
    const ballast: TestBallast = await startBallast(`
admin: { listen: 127.0.0.1:0 }
logging: { level: silent }
listeners:
  - { name: db, protocol: tcp, listen: 127.0.0.1:0, upstream: pool }
upstreams:
  - name: pool
    servers: [{ address: ${a.address} }, { address: ${b.address} }]
    health_check: { type: tcp, interval: 100ms, timeout: 200ms, unhealthy_threshold: 1, healthy_threshold: 1 }
`);
    cleanup.push(() => ballast.stop());
    const port = ballast.ballast.port('db');
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const reply = await roundTrip(port, 'ping');
      expect(reply).toMatch(/^[ab]:ping$/);
      seen.add(reply[0]!);
    }
    expect(seen).toEqual(new Set(['a', 'b']));
    await new Promise<void>((r) => b.server.close(() => r()));
    const host = ballast.ballast.upstreams.get('pool')!.hosts[1]!;
    await waitFor(() => host.state(performance.now()) === 'unhealthy', { timeoutMs: 3000, intervalMs: 20, what: 'b unhealthy' });
    for (let i = 0; i < 4; i++) expect(await roundTrip(port, 'x')).toBe('a:x');
  });
});
