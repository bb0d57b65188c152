/** WebSocket through the proxy: tunnelled only after a 101, relayed as a response otherwise, torn down together. */
import { afterEach, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { connect } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import { startBallast, simpleConfig, type TestBallast } from './helpers/ballast.js';
import { sleep, waitFor } from './helpers/wait.js';

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function listen(server: Server): Promise<string> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanup.push(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function echoOrigin(): Promise<{ address: string; wss: WebSocketServer; server: Server }> {
  const server = createServer((_req, res) => res.end('plain'));
  const wss = new WebSocketServer({ server });
  wss.on('connection', (socket, req) => {
    socket.on('message', (data, binary) => socket.send(binary ? data : `${String(data)} (via ${req.headers['x-forwarded-for']})`));
  });
  cleanup.push(() => { for (const c of wss.clients) c.terminate(); wss.close(); });
  return { address: await listen(server), wss, server };
}

/** Ballast in front of `address`; `upstreamExtra`: more upstream keys, as YAML lines indented by four spaces. */
async function proxy(address: string, upstreamExtra = ''): Promise<TestBallast> {
  const b = await startBallast(simpleConfig([address], upstreamExtra));
  cleanup.push(() => b.stop());
  return b;
}

describe('websocket', () => {
  it('echoes text and binary messages through the proxy', async () => {
    const origin = await echoOrigin();
    const b = await proxy(origin.address);
    const ws = new WebSocket(`ws://127.0.0.1:${b.port}/chat`);
    ws.on('error', () => {});
    await once(ws, 'open');
    ws.send('hello');
    const [text] = (await once(ws, 'message')) as [Buffer];
    expect(String(text)).toBe('hello (via 127.0.0.1)');
    const payload = Buffer.alloc(256 * 1024, 3);
    ws.send(payload);
    const [echoed] = (await once(ws, 'message')) as [Buffer];
    expect(Buffer.compare(echoed, payload)).toBe(0);
    ws.close();
    await once(ws, 'close');
  });

  it('answers 502 to an origin that switches to another protocol than WebSocket, instead of a 101 it never sent', async () => {
    const server = createServer((_req, res) => res.end());
    server.on('upgrade', (_req, socket) => {
      socket.on('error', () => {});
      socket.on('end', () => socket.destroy());
      socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n');
    });
    const b = await proxy(await listen(server));
    const socket = connect(b.port, '127.0.0.1');
    socket.write('GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
    let reply = '';
    socket.on('data', (c: Buffer) => (reply += c.toString()));
    await once(socket, 'close');
    expect(reply).toMatch(/^HTTP\/1\.1 502 /);
    expect(reply).toContain('x-ballast-error: upstream_invalid_response');
  });

  it('a client that half-closes before the origin answers its handshake is gone: the upstream request is aborted, 499', async () => {
    let originSide: import('node:net').Socket | undefined;
    const server = createServer((_req, res) => res.end());
    server.on('upgrade', (_req, socket) => {
      originSide = socket as import('node:net').Socket;
      socket.on('error', () => {});
      socket.on('end', () => socket.destroy());
    });
    const b = await proxy(await listen(server));
    const socket = connect(b.port, '127.0.0.1');
    socket.on('error', () => {});
    socket.write('GET /pending HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
    await waitFor(() => originSide !== undefined);
    const originClosed = once(originSide!, 'close');
    socket.end();
    await originClosed;
    await waitFor(() => b.logs.some((l) => l.kind === 'access' && l.url === '/pending'));
    expect(b.logs.find((l) => l.kind === 'access' && l.url === '/pending')).toMatchObject({ status: 499 });
    expect(b.ballast.upstreams.get('pool')!.hosts[0]!.inflight).toBe(0);
    const metrics = await b.ballast.metrics.registry.metrics();
    expect(metrics).not.toContain('outcome="timeout"');
  });

  it('bytes a client sends before the 101 reach the origin once, in order, after the handshake', async () => {
    const received: Buffer[] = [];
    let release: () => void = () => {};
    const server = createServer((_req, res) => res.end());
    server.on('upgrade', (req, socket) => {
      socket.on('error', () => {});
      socket.on('data', (c: Buffer) => received.push(c));
      socket.on('end', () => socket.destroy());
      release = () => socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
      void req;
    });
    const b = await proxy(await listen(server));
    const socket = connect(b.port, '127.0.0.1');
    socket.on('error', () => {});
    socket.write('GET /early HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\none');
    await sleep(50);
    socket.write('two');
    await sleep(50);
    release();
    let reply = '';
    socket.on('data', (c: Buffer) => (reply += c.toString()));
    await waitFor(() => reply.includes('101'));
    socket.write('three');
    await waitFor(() => Buffer.concat(received).toString() === 'onetwothree');
    socket.destroy();
  });

  it('closes a tunnel silent both ways for timeouts.idle, and logs it', async () => {
    const origin = await echoOrigin();
    const b = await proxy(origin.address, '    timeouts: { idle: 300ms }');
    const ws = new WebSocket(`ws://127.0.0.1:${b.port}/quiet`);
    ws.on('error', () => {});
    await once(ws, 'open');
    // Traffic keeps it open past the idle time...
    for (let i = 0; i < 4; i++) {
      await sleep(150);
      ws.send('ping');
      await once(ws, 'message');
    }
    const opened = performance.now();
    // ...and silence closes it.
    await once(ws, 'close');
    expect(performance.now() - opened).toBeGreaterThanOrEqual(250);
    await waitFor(() => b.logs.some((l) => l.kind === 'access' && l.url === '/quiet'));
    expect(b.logs.find((l) => l.kind === 'access' && l.url === '/quiet')).toMatchObject({ status: 101 });
    await waitFor(() => b.ballast.upstreams.get('pool')!.hosts[0]!.inflight === 0);
  });

  it('relays a refusal as an ordinary response instead of tunnelling', async () => {
    const server = createServer((_req, res) => res.end());
    server.on('upgrade', (_req, socket) => {
      socket.end('HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 7\r\n\r\nno way\n');
    });
    const address = await listen(server);
    const b = await proxy(address);
    const ws = new WebSocket(`ws://127.0.0.1:${b.port}/chat`);
    const [, res] = (await once(ws, 'unexpected-response')) as [unknown, import('node:http').IncomingMessage];
    expect(res.statusCode).toBe(403);
    let body = '';
    for await (const chunk of res) body += String(chunk);
    expect(body).toBe('no way\n');
  });

  it('closes the client when the origin goes away, and frees the server lease', async () => {
    const origin = await echoOrigin();
    const b = await proxy(origin.address);
    const ws = new WebSocket(`ws://127.0.0.1:${b.port}/chat`);
    ws.on('error', () => {});
    await once(ws, 'open');
    const host = b.ballast.upstreams.get('pool')!.hosts[0]!;
    expect(host.inflight).toBe(1);
    for (const c of origin.wss.clients) c.terminate();
    await once(ws, 'close');
    await waitFor(() => host.inflight === 0, { timeoutMs: 2000, what: 'lease freed' });
  });

  it('answers 502 when no origin accepts the upgrade', async () => {
    const server = createServer();
    const address = await listen(server);
    await new Promise<void>((r) => { server.close(() => r()); });
    const b = await proxy(address);
    const ws = new WebSocket(`ws://127.0.0.1:${b.port}/chat`);
    const [, res] = (await once(ws, 'unexpected-response')) as [unknown, import('node:http').IncomingMessage];
    expect(res.statusCode).toBe(502);
    res.resume();
  });

  it('refuses a WebSocket handshake that is not a GET (RFC 6455 §4.1)', async () => {
    const origin = await echoOrigin();
    const b = await proxy(origin.address);
    const socket = connect(b.port, '127.0.0.1');
    socket.write('POST /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
    let reply = '';
    socket.on('data', (c: Buffer) => (reply += c.toString()));
    await once(socket, 'close');
    expect(reply).toMatch(/^HTTP\/1\.1 400 /);
    expect(origin.wss.clients.size).toBe(0);
  });

  it('hashes upgrades on hash_key like plain requests, so a user keeps one server', async () => {
    const a = await echoOrigin();
    const b2 = await echoOrigin();
    const b = await startBallast(`
admin: { listen: 127.0.0.1:0 }
logging: { level: silent }
listeners:
  - { name: web, listen: 127.0.0.1:0, routes: [{ upstream: pool }] }
upstreams:
  - name: pool
    balance: consistent-hash
    hash_key: header:x-user-id
    servers: [{ address: ${a.address} }, { address: ${b2.address} }]
`);
    cleanup.push(() => b.stop());
    const served = new Set<number>();
    a.wss.on('connection', () => served.add(1));
    b2.wss.on('connection', () => served.add(2));
    for (let i = 0; i < 6; i++) {
      const ws = new WebSocket(`ws://127.0.0.1:${b.port}/chat`, { headers: { 'x-user-id': 'user-7' } });
      ws.on('error', () => {});
      await once(ws, 'open');
      ws.close();
      await once(ws, 'close');
    }
    expect(served.size).toBe(1);
  });

  it('relays a large refusal body with backpressure, to the end', async () => {
    const big = Buffer.alloc(8 * 1024 * 1024, 120);
    const server = createServer((_req, res) => res.end());
    server.on('upgrade', (_req, socket) => {
      socket.on('error', () => {});
      socket.write(`HTTP/1.1 403 Forbidden\r\ncontent-length: ${big.length}\r\n\r\n`);
      socket.end(big);
    });
    const address = await listen(server);
    const b = await proxy(address);
    const socket = connect(b.port, '127.0.0.1');
    socket.write('GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
    // Read slowly at first so the proxy meets backpressure, then drain.
    socket.pause();
    await sleep(300);
    let bytes = 0;
    socket.on('data', (c: Buffer) => (bytes += c.length));
    socket.resume();
    await once(socket, 'close');
    expect(bytes).toBeGreaterThan(big.length);
  });

  it('counts an open tunnel against max_requests, and frees it when the tunnel closes', async () => {
    const origin = await echoOrigin();
    const b = await proxy(origin.address, '    limits: { max_requests: 1 }');
    const first = new WebSocket(`ws://127.0.0.1:${b.port}/chat`);
    first.on('error', () => {});
    await once(first, 'open');
    const second = new WebSocket(`ws://127.0.0.1:${b.port}/chat`);
    const [, res] = (await once(second, 'unexpected-response')) as [unknown, import('node:http').IncomingMessage];
    expect(res.statusCode).toBe(503);
    res.resume();
    first.close();
    await once(first, 'close');
    const upstream = b.ballast.upstreams.get('pool')!;
    await waitFor(() => upstream.active === 0, { timeoutMs: 2000, what: 'tunnel no longer counted' });
    const third = new WebSocket(`ws://127.0.0.1:${b.port}/chat`);
    third.on('error', () => {});
    await once(third, 'open');
    third.close();
    await once(third, 'close');
    await waitFor(() => b.logs.some((l) => l.kind === 'access' && l.upgrade === 'websocket' && l.status === 101));
  });

  it('an upgrade queued behind a busy connection gives up at its per-try timeout', async () => {
    const origin = await echoOrigin();
    origin.server.removeAllListeners('request');
    let slowArrived = false;
    origin.server.on('request', (_req, res) => {
      slowArrived = true;
      setTimeout(() => res.end('slow'), 1500);
    });
    const b = await startBallast(`
admin: { listen: 127.0.0.1:0 }
logging: { level: silent }
listeners:
  - name: web
    listen: 127.0.0.1:0
    routes:
      - { match: { path_prefix: /slow }, upstream: pool }
      - { upstream: pool, retry: { per_try_timeout: 300ms } }
upstreams:
  - { name: pool, servers: [{ address: ${origin.address} }], limits: { max_connections: 1 } }
`);
    cleanup.push(() => b.stop());
    const slow = fetch(b.url('/slow')).then((r) => r.text(), () => '');
    await waitFor(() => slowArrived, { what: 'the slow request holding the only connection' });
    const started = Date.now();
    const ws = new WebSocket(`ws://127.0.0.1:${b.port}/chat`);
    const [, res] = (await once(ws, 'unexpected-response')) as [unknown, import('node:http').IncomingMessage];
    expect(res.statusCode).toBe(504);
    expect(Date.now() - started).toBeLessThan(1200);
    res.resume();
    await slow;
    const upstream = b.ballast.upstreams.get('pool')!;
    await waitFor(() => upstream.active === 0 && upstream.hosts[0]!.inflight === 0, { timeoutMs: 3000, what: 'leases freed' });
  });
});
