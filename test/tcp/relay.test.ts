/**
 * The two-way pipe end to end: byte-exact relay, half-close in both directions, errors tearing down both sides,
 * and the idle timeout.
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { endedWithin, howItEnds, connectClient, readAll, readBytes, startTcpOrigin, startTcpProxy, type TestTcpProxy } from './helpers.js';
import { relay, type RelayResult } from '../../src/proxy/tcp/relay.js';
import { sleep, waitFor } from '../helpers/wait.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function proxy(servers: readonly string[], opts: { listener?: string; upstream?: string } = {}): Promise<TestTcpProxy> {
  const p = await startTcpProxy(servers, opts);
  cleanup.push(() => p.stop());
  return p;
}

/** A one-off origin whose connection handler the test writes. */
async function customOrigin(onConnection: (socket: Socket) => void): Promise<{ server: Server; address: string }> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    onConnection(socket);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanup.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
  return { server, address: `127.0.0.1:${(server.address() as AddressInfo).port}` };
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('relay', () => {
  it('relays 8 MiB of random bytes both ways unchanged', async () => {
    const o = await startTcpOrigin('o1', 'echo');
    cleanup.push(() => o.close());
    const p = await proxy([o.address]);
    const payload = randomBytes(8 * 1024 * 1024);
    const client = await connectClient(p.port);
    const all = readAll(client);
    client.end(payload);
    const got = await all;
    expect(got.length).toBe(payload.length);
    expect(sha(got)).toBe(sha(payload));
    const [line] = await p.waitForAccessLogs(1);
    expect(line).toMatchObject({ end: 'done', bytesIn: payload.length, bytesOut: payload.length });
  });

  // Upstream reads go into a reused buffer (relay.ts UpstreamReads) that grows from 16 to 256 KiB; a write the
  // kernel cannot take at once keeps its buffer, so the next read must get another. A slow client forces that path
  // again and again, and any reuse of a buffer still queued would show as corrupt bytes here. In bulk the origin's
  // writes fill every read; trickled, reads are small and several queue up before the client's buffer is full.
  it.each([
    { how: 'in bulk', total: 48 * 1024 * 1024, piece: 1024 * 1024, gap: false },
    { how: 'trickled', total: 12 * 1024 * 1024, piece: 3000, gap: true },
  ])('a client slower than its origin gets every byte intact ($how), and the origin is held back meanwhile', async ({ total, piece, gap }) => {
    const payload = randomBytes(total);
    let originBlocked = 0;
    const origin = await customOrigin((socket) => {
      let offset = 0;
      const pump = (): void => {
        while (offset < payload.length) {
          const chunk = payload.subarray(offset, offset + piece);
          offset += chunk.length;
          if (!socket.write(chunk)) {
            originBlocked++;
            socket.once('drain', pump);
            return;
          }
          if (gap) {
            setImmediate(pump);
            return;
          }
        }
        socket.end();
      };
      pump();
    });
    const p = await proxy([origin.address]);
    const client = await connectClient(p.port);
    const chunks: Buffer[] = [];
    let sinceStall = 0;
    client.on('data', (c: Buffer) => {
      chunks.push(c);
      sinceStall += c.length;
      if (sinceStall >= 2 * 1024 * 1024) {
        sinceStall = 0;
        client.pause();
        setTimeout(() => client.resume(), 40);
      }
    });
    await once(client, 'end');
    const got = Buffer.concat(chunks);
    expect(got.length).toBe(payload.length);
    expect(sha(got)).toBe(sha(payload));
    if (!gap) expect(originBlocked).toBeGreaterThan(5);
    client.end();
    const [line] = await p.waitForAccessLogs(1);
    expect(line).toMatchObject({ end: 'done', bytesOut: payload.length });
  });

  it('half-close: the client ends its side and still receives the whole response', async () => {
    const received: Buffer[] = [];
    const origin = await customOrigin((socket) => {
      socket.on('data', (c: Buffer) => received.push(c));
      // The origin answers only after the client's FIN, and takes its time: the client must still get all of it.
      socket.on('end', () => {
        void (async () => {
          const request = Buffer.concat(received).toString();
          for (let i = 0; i < 3; i++) {
            socket.write(`part ${i} of the answer to ${request}\n`);
            await sleep(30);
          }
          socket.end(Buffer.alloc(1024 * 1024, 'z'));
        })();
      });
    });
    const p = await proxy([origin.address]);
    const client = await connectClient(p.port);
    const all = readAll(client);
    client.end('question');
    const got = (await all).toString();
    expect(got.startsWith('part 0 of the answer to question\npart 1 of the answer to question\npart 2 of the answer to question\n')).toBe(true);
    expect(got.length).toBe(3 * 'part 0 of the answer to question\n'.length + 1024 * 1024);
    client.end();
    const [line] = await p.waitForAccessLogs(1);
    expect(line).toMatchObject({ end: 'done', bytesIn: 8, bytesOut: got.length });
  });

  it('half-close the other way: the origin ends first and still receives everything the client sends after', async () => {
    let afterFin = 0;
    let originGotEnd!: () => void;
    const originEnded = new Promise<void>((resolve) => {
      originGotEnd = resolve;
    });
    const origin = await customOrigin((socket) => {
      socket.end('bye\n');
      socket.on('data', (c: Buffer) => {
        afterFin += c.length;
      });
      socket.on('end', originGotEnd);
    });
    const p = await proxy([origin.address]);
    const client = await connectClient(p.port);
    // The origin's FIN arrives as end of stream; the client's write side is still open.
    expect((await readAll(client)).toString()).toBe('bye\n');
    expect(client.writable).toBe(true);
    for (let i = 0; i < 16; i++) client.write(Buffer.alloc(64 * 1024, i));
    client.end();
    await originEnded;
    expect(afterFin).toBe(16 * 64 * 1024);
    await endedWithin(client, 2000);
    const [line] = await p.waitForAccessLogs(1);
    expect(line).toMatchObject({ end: 'done', bytesIn: 16 * 64 * 1024, bytesOut: 4 });
  });

  it('after the client half-closed, a reset on either side still tears down the other and is logged as such', async () => {
    // Once the client's FIN has been passed on, its direction is complete; the other direction alone must still
    // carry a failure across (a leaked upstream would hold its server's connection slot forever).
    let originSocket: Socket | undefined;
    const origin = await customOrigin((socket) => {
      originSocket = socket;
      socket.resume();
      // After the request's FIN: a response that keeps coming, 64 KiB every 10 ms, until the socket goes.
      socket.on('end', () => {
        const timer = setInterval(() => socket.write(Buffer.alloc(64 * 1024, 'r')), 10);
        socket.write(Buffer.alloc(64 * 1024, 'r'));
        socket.once('close', () => clearInterval(timer));
      });
    });
    const p = await proxy([origin.address]);

    const client = await connectClient(p.port);
    client.end('request');
    await readBytes(client, 64 * 1024);
    originSocket!.resetAndDestroy();
    await endedWithin(client, 2000);
    const [first] = await p.waitForAccessLogs(1);
    expect(first).toMatchObject({ end: 'upstream-error', detail: 'ECONNRESET' });

    const client2 = await connectClient(p.port);
    client2.end('request');
    await readBytes(client2, 64 * 1024);
    const upstreamSide = originSocket!;
    // Not events.once: it would reject on the EPIPE the origin's next write gets.
    const upstreamClosed = new Promise((resolve) => upstreamSide.once('close', resolve));
    client2.resetAndDestroy();
    await upstreamClosed;
    const lines = await p.waitForAccessLogs(2);
    expect(lines[1]).toMatchObject({ end: 'client-error' });
    await waitFor(() => p.upstream.hosts[0]!.inflight === 0, { timeoutMs: 2000 });
  });

  it('a reset on one side resets the other, so a stream cut short cannot pass for a complete one', async () => {
    let originSocket: Socket | undefined;
    const origin = await customOrigin((socket) => {
      originSocket = socket;
      socket.write('hello');
    });
    const p = await proxy([origin.address]);
    const client = await connectClient(p.port);
    expect((await readBytes(client, 5)).toString()).toBe('hello');
    const clientEnd = howItEnds(client, 2000);
    originSocket!.resetAndDestroy();
    expect(await clientEnd).toBe('reset');
    const [line] = await p.waitForAccessLogs(1);
    expect(line).toMatchObject({ end: 'upstream-error', detail: 'ECONNRESET' });
    expect(p.upstream.hosts[0]!.inflight).toBe(0);

    // And the other way round.
    const client2 = await connectClient(p.port);
    expect((await readBytes(client2, 5)).toString()).toBe('hello');
    const upstreamEnd = howItEnds(originSocket!, 2000);
    client2.resetAndDestroy();
    expect(await upstreamEnd).toBe('reset');
    const lines = await p.waitForAccessLogs(2);
    expect(lines[1]).toMatchObject({ end: 'client-error', detail: 'ECONNRESET' });
  });
});

describe('relay() on its own', () => {
  it('reports once, and destroys the survivor, when a socket had already closed before the relay began', async () => {
    const origin = await customOrigin((socket) => socket.pipe(socket));
    const port = Number(origin.address.split(':')[1]);
    const a = await connectClient(port);
    const b = await connectClient(port);
    b.destroy();
    await once(b, 'close');
    const result = await new Promise<RelayResult>((resolve) => relay(a, b, resolve));
    expect(result.end).toBe('destroyed');
    expect(a.destroyed).toBe(true);
  });
});

describe('idle timeout', () => {
  it('closes both sides of a connection with no traffic for idle_timeout', async () => {
    let originClosed = false;
    const origin = await customOrigin((socket) => {
      socket.on('close', () => {
        originClosed = true;
      });
      socket.pipe(socket);
    });
    const p = await proxy([origin.address], { listener: 'idle_timeout: 300ms' });
    const client = await connectClient(p.port);
    client.write('a');
    expect((await readBytes(client, 1)).toString()).toBe('a');
    const started = performance.now();
    await endedWithin(client, 2000);
    const waited = performance.now() - started;
    expect(waited).toBeGreaterThanOrEqual(250);
    expect(waited).toBeLessThan(1500);
    const [line] = await p.waitForAccessLogs(1);
    expect(line).toMatchObject({ end: 'idle-timeout' });
    await waitFor(() => originClosed, { what: 'origin side closed' });
  });

  it('traffic in either direction alone keeps a connection open', async () => {
    const origin = await customOrigin((socket) => {
      socket.on('data', () => {});
      // Server-to-client only, every 100 ms, for 700 ms; then silence.
      let n = 0;
      const timer = setInterval(() => {
        if (++n > 7) clearInterval(timer);
        else socket.write('.');
      }, 100);
      socket.on('close', () => clearInterval(timer));
    });
    const p = await proxy([origin.address], { listener: 'idle_timeout: 300ms' });
    const client = await connectClient(p.port);
    client.on('data', () => {});
    await sleep(650);
    expect(client.closed).toBe(false);
    // Client-to-server only.
    for (let i = 0; i < 5; i++) {
      await sleep(100);
      client.write('x');
    }
    expect(client.closed).toBe(false);
    await endedWithin(client, 1500);
    expect((await p.waitForAccessLogs(1))[0]).toMatchObject({ end: 'idle-timeout', bytesIn: 5, bytesOut: 7 });
  });
});
