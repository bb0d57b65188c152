/**
 * Responses an origin may legitimately (or not quite legitimately) send, written byte for byte by a raw TCP origin,
 * and what the client gets through Ballast: a 304 that carries Content-Length, a 204 with a stray body, a reason
 * phrase in obs-text, a coding Ballast cannot undo, a head with no body after it, and an origin that fails on a
 * connection opened for the request. Clients are raw sockets too, so framing is seen as it is on the wire.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { startBallast, simpleConfig, type TestBallast } from './helpers/ballast.js';
import { waitFor } from './helpers/wait.js';

/** What the origin does with each request it reads, by path; it also counts requests and connections. */
type Respond = (socket: Socket) => void;

interface RawOrigin {
  readonly address: string;
  readonly requests: string[];
  connections: number;
  close(): Promise<void>;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function rawOrigin(routes: Record<string, Respond>): Promise<RawOrigin> {
  const sockets = new Set<Socket>();
  const origin: RawOrigin = { address: '', requests: [], connections: 0, close: async () => {} };
  const server: Server = createServer((socket) => {
    origin.connections++;
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    let buffered = '';
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('latin1');
      let end: number;
      while ((end = buffered.indexOf('\r\n\r\n')) !== -1) {
        const head = buffered.slice(0, end);
        buffered = buffered.slice(end + 4);
        const path = head.split(' ')[1] ?? '/';
        origin.requests.push(path);
        const respond = routes[path] ?? ((s: Socket) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
        respond(socket);
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const port = (server.address() as AddressInfo).port;
  const close = async (): Promise<void> => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  };
  Object.assign(origin, { address: `127.0.0.1:${port}`, close });
  cleanups.push(close);
  return origin;
}

async function proxy(origin: RawOrigin, upstreamExtra = ''): Promise<TestBallast> {
  const b = await startBallast(simpleConfig([origin.address], upstreamExtra));
  cleanups.push(() => b.stop());
  return b;
}

interface Exchange {
  /** Every byte the client received. */
  readonly text: string;
  /** How the connection ended: the peer's FIN, a reset, or still open when `settleMs` ran out. */
  readonly end: 'fin' | 'reset' | 'open';
}

/** Writes `request` on a fresh connection and collects the reply until the connection ends or goes quiet. */
function exchange(port: number, request: string, settleMs = 1500): Promise<Exchange> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    let timer: NodeJS.Timeout;
    const done = (end: Exchange['end']): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, end });
    };
    const quiet = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => done('open'), settleMs);
    };
    socket.on('data', (c: Buffer) => {
      text += c.toString('latin1');
      quiet();
    });
    socket.on('end', () => done('fin'));
    socket.on('error', (err: NodeJS.ErrnoException) => done(err.code === 'ECONNRESET' ? 'reset' : 'fin'));
    socket.write(request);
    quiet();
  });
}

const statusLines = (text: string): string[] => text.split('\r\n').filter((l) => /^HTTP\/1\.[01] \d{3}/.test(l));
const headOf = (text: string): string => text.slice(0, text.indexOf('\r\n\r\n')).toLowerCase();

describe('upstream responses', () => {
  it('relays a 304 that carries the Content-Length of the body it stands for, and keeps the connection usable', async () => {
    const origin = await rawOrigin({ '/304': (s) => s.write('HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nContent-Length: 1234\r\n\r\n') });
    const b = await proxy(origin);
    const reply = await exchange(b.port, 'GET /304 HTTP/1.1\r\nHost: a\r\nIf-None-Match: "v1"\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    expect(statusLines(reply.text)).toEqual(['HTTP/1.1 304 Not Modified', 'HTTP/1.1 200 OK']);
    expect(reply.text).toMatch(/etag: "v1"/i);
    expect(reply.end).toBe('fin');
    await waitFor(() => b.logs.some((l) => l.kind === 'access' && l.url === '/304'));
    expect(b.logs.find((l) => l.kind === 'access' && l.url === '/304')).toMatchObject({ status: 304 });
  });

  it('relays a 204 without the Content-Length and body an origin wrongly sent with it', async () => {
    const origin = await rawOrigin({ '/204': (s) => s.write('HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello') });
    const b = await proxy(origin);
    const reply = await exchange(b.port, 'GET /204 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    expect(statusLines(reply.text)).toEqual(['HTTP/1.1 204 No Content']);
    expect(headOf(reply.text)).toContain('x-a: 1');
    expect(headOf(reply.text)).not.toContain('content-length');
    expect(reply.text.endsWith('\r\n\r\n')).toBe(true);
  });

  it('sends a head the origin sent without a body at once, and resets the client when the origin then fails', async () => {
    let fail: () => void = () => {};
    const origin = await rawOrigin({
      '/stall': (s) => {
        s.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n');
        fail = () => s.resetAndDestroy();
      },
    });
    const b = await proxy(origin);
    const client = connect(b.port, '127.0.0.1');
    let text = '';
    const ended = new Promise<'fin' | 'reset'>((resolve) => {
      client.on('end', () => resolve('fin'));
      client.on('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNRESET' ? 'reset' : 'fin'));
    });
    client.on('data', (c: Buffer) => (text += c.toString('latin1')));
    cleanups.push(async () => void client.destroy());
    client.write('GET /stall HTTP/1.1\r\nHost: a\r\n\r\n');
    // The head reaches the client while the origin still holds the body back.
    await waitFor(() => text.includes('\r\n\r\n'), { what: 'the response head' });
    expect(statusLines(text)).toEqual(['HTTP/1.1 200 OK']);
    fail();
    expect(await ended).toBe('reset');
  });

  it('relays a reason phrase in obs-text, and replaces one Node cannot write with the standard phrase', async () => {
    const origin = await rawOrigin({
      '/latin1': (s) => s.write(Buffer.concat([Buffer.from('HTTP/1.1 200 Gr'), Buffer.from([0xfc]), Buffer.from('\xdfe\r\nContent-Length: 2\r\n\r\nok', 'latin1')])),
      '/ctl': (s) => s.write('HTTP/1.1 200 O\x01K\r\nContent-Length: 2\r\n\r\nok'),
    });
    const b = await proxy(origin);
    for (const path of ['/latin1', '/ctl']) {
      const reply = await exchange(b.port, `GET ${path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`);
      expect(statusLines(reply.text), path).toHaveLength(1);
      expect(reply.text.startsWith('HTTP/1.1 200 '), path).toBe(true);
      expect(reply.text.endsWith('\r\n\r\nok'), path).toBe(true);
    }
  });

  it('never sends Transfer-Encoding to an HTTP/1.0 client, even one that sent TE: chunked', async () => {
    const origin = await rawOrigin({ '/chunked': (s) => s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n') });
    const b = await proxy(origin);
    const reply = await exchange(b.port, 'GET /chunked HTTP/1.0\r\nHost: a\r\nTE: chunked\r\n\r\n');
    expect(statusLines(reply.text)).toHaveLength(1);
    expect(headOf(reply.text)).not.toContain('transfer-encoding');
    expect(reply.text.endsWith('\r\n\r\nhello world')).toBe(true);
    expect(reply.end).toBe('fin');
  });

  it('answers 502 to a response in a transfer coding it cannot undo, rather than pass the coded bytes on', async () => {
    const origin = await rawOrigin({ '/gzip': (s) => s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\n\x1f\x8b\x08\r\n0\r\n\r\n') });
    const b = await proxy(origin, '    retry: { attempts: 1 }');
    const reply = await exchange(b.port, 'GET /gzip HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    expect(statusLines(reply.text)).toEqual(['HTTP/1.1 502 Bad Gateway']);
    expect(headOf(reply.text)).toContain('x-ballast-error: upstream_invalid_response');
  });

  it('resets an HTTP/1.0 client whose close-delimited body the origin cut short, so it cannot pass for complete', async () => {
    const origin = await rawOrigin({
      '/cut': (s) => {
        s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
        setTimeout(() => s.destroy(), 50);
      },
    });
    const b = await proxy(origin);
    const reply = await exchange(b.port, 'GET /cut HTTP/1.0\r\nHost: a\r\n\r\n');
    expect(statusLines(reply.text)).toEqual(['HTTP/1.1 200 OK']);
    expect(reply.end).toBe('reset');
  });

  it('serves an h2c upgrade as HTTP/1.1: a 304 with Content-Length is complete, a body cut short resets the client', async () => {
    const origin = await rawOrigin({
      '/304': (s) => s.write('HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\n\r\n'),
      '/cut': (s) => {
        s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
        setTimeout(() => s.destroy(), 50);
      },
    });
    const b = await proxy(origin);
    const h2c = (path: string) => `GET ${path} HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n`;
    const notModified = await exchange(b.port, h2c('/304'));
    expect(statusLines(notModified.text)).toEqual(['HTTP/1.1 304 Not Modified']);
    expect(notModified.end).toBe('fin');
    const cut = await exchange(b.port, h2c('/cut'));
    expect(statusLines(cut.text)).toEqual(['HTTP/1.1 200 OK']);
    expect(cut.end).toBe('reset');
    await waitFor(() => b.logs.filter((l) => l.kind === 'access').length === 2);
    expect(b.logs.filter((l) => l.kind === 'access').map((l) => [l.url, l.status])).toEqual([
      ['/304', 304],
      ['/cut', 502],
    ]);
    // The 304 was a success for the server, not a failure that outlier detection counts.
    const metrics = await b.ballast.metrics.registry.metrics();
    expect(metrics).toContain(`ballast_upstream_attempts_total{upstream="pool",server="${origin.address}",outcome="3xx"} 1`);
  });

  it('with attempts: 1, sends a request once to an origin that fails it on a connection opened for it', async () => {
    const origin = await rawOrigin({
      '/partial': (s) => {
        s.write('HTTP/1.1 200 O');
        setTimeout(() => s.destroy(), 20);
      },
    });
    const b = await proxy(origin, '    retry: { attempts: 1 }');
    const reply = await exchange(b.port, 'GET /partial HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    expect(statusLines(reply.text)).toEqual(['HTTP/1.1 502 Bad Gateway']);
    expect(origin.requests).toEqual(['/partial']);
    expect(origin.connections).toBe(1);
  });
});
