/**
 * HTTP/2 to origins carries many requests per connection (upstream/http2-pool.ts): real node:http2 h2c origins on
 * 127.0.0.1 that count their sessions and open streams, hold streams, refuse them, and send GOAWAY.
 */
import { connect as connectH2, constants, createServer as createH2cServer, type Http2Server, type Http2Session, type IncomingHttpHeaders, type ServerHttp2Stream, type Settings } from 'node:http2';
import { createServer as createHttpServer, request as httpRequest } from 'node:http';
import { connect, createServer as createNetServer, type AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.js';
import { Transport } from '../src/upstream/transport.js';
import { Http2Pool } from '../src/upstream/http2-pool.js';
import type { StreamHandler } from '../src/upstream/http2-request.js';
import { ballast, onCleanup } from './helpers/fixtures.js';
import { get, simpleConfig } from './helpers/ballast.js';
import { sendRaw } from './helpers/raw.js';
import { rawH2Server } from './helpers/raw-h2-server.js';
import { waitFor } from './helpers/wait.js';

interface H2Origin {
  address: string;
  server: Http2Server;
  /** Sessions opened, and those still open. */
  sessions: number;
  live: Set<Http2Session>;
  /** Streams open now, and the most at once on one session. */
  open: number;
  mostOnOneSession: number;
  paths: string[];
}

type StreamHandlerFn = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, origin: H2Origin) => void;

/** An h2c origin; `handle` answers each stream (GET /healthz always gets 200). */
async function h2cOrigin(handle: StreamHandlerFn, settings: Settings = {}): Promise<H2Origin> {
  const server = createH2cServer({ settings });
  const origin: H2Origin = { address: '', server, sessions: 0, live: new Set(), open: 0, mostOnOneSession: 0, paths: [] };
  const perSession = new Map<Http2Session, number>();
  server.on('session', (session) => {
    origin.sessions++;
    origin.live.add(session);
    perSession.set(session, 0);
    session.on('close', () => origin.live.delete(session));
    session.on('error', () => {});
  });
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    if (headers[':path'] === '/healthz') return void stream.respond({ ':status': 200 }, { endStream: true });
    const session = stream.session!;
    origin.open++;
    perSession.set(session, perSession.get(session)! + 1);
    origin.mostOnOneSession = Math.max(origin.mostOnOneSession, perSession.get(session)!);
    stream.on('close', () => {
      origin.open--;
      perSession.set(session, perSession.get(session)! - 1);
    });
    origin.paths.push(String(headers[':path']));
    handle(stream, headers, origin);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onCleanup(() => new Promise<void>((resolve) => {
    for (const s of origin.live) s.destroy();
    server.close(() => resolve());
  }));
  origin.address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return origin;
}

/** Answers with the request body once `until()` has held (checked every 10 ms from the end of the body). */
function echoWhen(until: (origin: H2Origin) => boolean): StreamHandlerFn {
  let reached = false;
  return (stream, _headers, origin) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const answer = (): void => {
        if (stream.destroyed) return;
        reached ||= until(origin);
        if (!reached) return void setTimeout(answer, 10);
        stream.respond({ ':status': 200 });
        stream.end(`echo:${Buffer.concat(chunks).toString()}`);
      };
      answer();
    });
  };
}

/** A POST whose body is streamed (chunked, no Content-Length) in two parts. */
function streamedPost(url: string, parts: [string, string]): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.write(parts[0]);
    setTimeout(() => req.end(parts[1]), 20);
  });
}

describe('HTTP/2 to origins: streams share connections', () => {
  it('carries concurrent POSTs with streamed bodies as streams of one connection', async () => {
    // undici's HTTP/2 client would start none of these while another stream is open on the connection.
    const origin = await h2cOrigin(echoWhen((o) => o.open >= 8));
    const b = await ballast(simpleConfig([origin.address], '    protocol: http2'));
    const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => streamedPost(b.url(`/p${i}`), [`a${i}`, `b${i}`])));
    expect(answers).toEqual(Array.from({ length: 8 }, (_, i) => ({ status: 200, body: `echo:a${i}b${i}` })));
    expect(origin.sessions).toBe(1);
    expect(origin.mostOnOneSession).toBe(8);
  });

  it('keeps to the server\'s SETTINGS_MAX_CONCURRENT_STREAMS; with every allowed connection full, requests wait their turn', async () => {
    const origin = await h2cOrigin((stream) => {
      setTimeout(() => {
        if (stream.destroyed) return;
        stream.respond({ ':status': 200 });
        stream.end('late');
      }, 100);
    }, { maxConcurrentStreams: 2 });
    const b = await ballast(simpleConfig([origin.address], '    protocol: http2\n    limits: { max_connections: 2 }'));
    const answers = await Promise.all(Array.from({ length: 9 }, (_, i) => get(b.url(`/w${i}`))));
    expect(answers.map((a) => `${a.status} ${a.body}`)).toEqual(Array(9).fill('200 late'));
    // Two connections of two streams each at most: nine requests take at least three rounds, and none was refused.
    expect(origin.sessions).toBe(2);
    expect(origin.mostOnOneSession).toBe(2);
    expect(origin.paths).toHaveLength(9);
  });

  it('opens a second connection when the first is full, and no more', async () => {
    const origin = await h2cOrigin(echoWhen((o) => o.open >= 5), { maxConcurrentStreams: 3 });
    const b = await ballast(simpleConfig([origin.address], '    protocol: http2'));
    const answers = await Promise.all(Array.from({ length: 5 }, (_, i) => get(b.url(`/s${i}`))));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect(origin.sessions).toBe(2);
    expect(origin.mostOnOneSession).toBe(3);
  });

  it('a client that does not read stops the origin\'s stream (HTTP/2 flow control), and then gets every byte', async () => {
    const total = 64 * 1024 * 1024;
    let sent = 0;
    const chunk = Buffer.alloc(64 * 1024, 120);
    const origin = await h2cOrigin((stream) => {
      stream.respond({ ':status': 200, 'content-length': String(total) });
      const pump = (): void => {
        while (sent < total) {
          sent += chunk.length;
          if (!stream.write(chunk)) return void stream.once('drain', pump);
        }
        stream.end();
      };
      pump();
    });
    const b = await ballast(simpleConfig([origin.address], '    protocol: http2'));
    let received = 0;
    const socket = connect(b.port, '127.0.0.1', () => socket.write('GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
    onCleanup(() => void socket.destroy());
    socket.pause();
    await new Promise((resolve) => setTimeout(resolve, 500));
    // What the kernel's socket buffers, Ballast's write buffer and the stream's window hold: not the whole body.
    expect(sent).toBeLessThan(24 * 1024 * 1024);
    const ended = new Promise((resolve) => socket.on('end', resolve));
    socket.on('data', (c: Buffer) => (received += c.length));
    socket.resume();
    await ended;
    expect(sent).toBe(total);
    expect(received).toBeGreaterThan(total);
  });

  it('sends a request\'s trailers on to the origin, from an HTTP/2 client and from a chunked HTTP/1.1 one', async () => {
    const got: { body: string; trailers: IncomingHttpHeaders | undefined }[] = [];
    const origin = await h2cOrigin((stream) => {
      const chunks: Buffer[] = [];
      let trailers: IncomingHttpHeaders | undefined;
      stream.on('trailers', (t: IncomingHttpHeaders) => (trailers = t));
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        got.push({ body: Buffer.concat(chunks).toString(), trailers });
        stream.respond({ ':status': 200 });
        stream.end('ok');
      });
    });
    const b = await ballast(simpleConfig([origin.address], '    protocol: http2', '    http2: { cleartext: true }'));

    const session = connectH2(`http://127.0.0.1:${b.port}`);
    onCleanup(() => void session.destroy());
    const viaH2 = (trailers: Record<string, string> | undefined): Promise<number> => new Promise((resolve, reject) => {
      const req = session.request({ ':method': 'POST', ':path': '/h2' }, { waitForTrailers: trailers !== undefined });
      req.on('wantTrailers', () => req.sendTrailers(trailers!));
      req.on('response', (h) => resolve(Number(h[':status'])));
      req.on('error', reject);
      req.resume();
      req.end('from h2');
    });
    expect(await viaH2({ 'x-checksum': 'abc' })).toBe(200);
    expect(await viaH2(undefined)).toBe(200);
    const h1 = await sendRaw(b.port, 'POST /h1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: x-checksum\r\nConnection: close\r\n\r\n7\r\nfrom h1\r\n0\r\nX-Checksum: def\r\n\r\n');
    expect(h1.split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
    expect(got.map((g) => ({ body: g.body, checksum: g.trailers?.['x-checksum'] }))).toEqual([
      { body: 'from h2', checksum: 'abc' },
      { body: 'from h2', checksum: undefined },
      { body: 'from h1', checksum: 'def' },
    ]);
  });

  it('a response whose body is slow shows its head at once; one held for the retry policy, then relayed, keeps its body', async () => {
    // The origin sends the body once the client has the head, or after 5 s: a head that waited for its body would
    // reach the client only after the body was sent (no clock to race on a busy machine).
    let bodySent = false;
    let sendBody = (): void => {};
    const origin = await h2cOrigin((stream, headers) => {
      if (headers[':method'] === 'POST') {
        // 503 is in retry_on, so the head is held for the policy, which will not replay a POST the origin saw.
        stream.respond({ ':status': 503, 'content-type': 'text/plain' });
        stream.end('busy, try later');
        return;
      }
      stream.respond({ ':status': 200, 'content-type': 'text/event-stream' });
      const late = setTimeout(() => sendBody(), 5000);
      sendBody = () => {
        clearTimeout(late);
        if (bodySent) return;
        bodySent = true;
        stream.end('data: late\n\n');
      };
    });
    const b = await ballast(simpleConfig([origin.address], '    protocol: http2'));
    const head = await new Promise<{ status: number; bodySentBefore: boolean; body: Promise<string> }>((resolve, reject) => {
      httpRequest(b.url('/events'), { agent: false }, (res) => {
        const bodySentBefore = bodySent;
        sendBody();
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        resolve({ status: res.statusCode!, bodySentBefore, body: new Promise((done) => res.on('end', () => done(body))) });
      }).on('error', reject).end();
    });
    expect(head.status).toBe(200);
    expect(head.bodySentBefore).toBe(false);
    expect(await head.body).toBe('data: late\n\n');
    const held = await get(b.url('/pay'), { method: 'POST', body: 'x' });
    expect(held).toMatchObject({ status: 503, body: 'busy, try later' });
  });

  it('retries a stream the server refused (RFC 9113 §8.7: not processed) on another server, even a POST', async () => {
    const refusing = await h2cOrigin((stream) => stream.close(constants.NGHTTP2_REFUSED_STREAM));
    const answering = await h2cOrigin(echoWhen(() => true));
    const b = await ballast(simpleConfig([refusing.address, answering.address], '    protocol: http2'));
    for (let i = 0; i < 4; i++) {
      const res = await get(b.url(`/order${i}`), { method: 'POST' });
      expect(res).toMatchObject({ status: 200, body: 'echo:' });
    }
    // Round robin sent some of them to the refusing server first; each was then sent to the other.
    expect(refusing.paths.length).toBeGreaterThan(0);
    expect(answering.paths).toHaveLength(4);
  });

  it('a POST the server reset after reading it is not sent again', async () => {
    const resetting = await h2cOrigin((stream) => stream.on('data', () => stream.close(constants.NGHTTP2_INTERNAL_ERROR)));
    const b = await ballast(simpleConfig([resetting.address], '    protocol: http2'));
    const res = await get(b.url('/charge'), { method: 'POST', body: 'once' });
    expect(res.status).toBe(502);
    expect(res.headers['x-ballast-error']).toBe('upstream_reset');
    expect(resetting.paths).toEqual(['/charge']);
  });

  it('a server that does not speak HTTP/2 on its port is a connect failure (502), not a reset', async () => {
    const h1 = createHttpServer((_req, res) => res.end('HTTP/1.1 only'));
    await new Promise<void>((resolve) => h1.listen(0, '127.0.0.1', resolve));
    onCleanup(() => new Promise<void>((resolve) => {
      h1.closeAllConnections();
      h1.close(() => resolve());
    }));
    const b = await ballast(simpleConfig([`127.0.0.1:${(h1.address() as AddressInfo).port}`], '    protocol: http2\n    retry: { attempts: 1 }'));
    const res = await get(b.url('/'));
    expect(res.status).toBe(502);
    expect(res.headers['x-ballast-error']).toBe('upstream_connect_failed');
  });

  it('after a GOAWAY, the stream in flight is answered and the next request goes on a new connection', async () => {
    let first = true;
    const origin = await h2cOrigin((stream) => {
      if (first) {
        first = false;
        // GOAWAY while this stream is still open (its id is the last one processed), then answer it.
        stream.session!.goaway(constants.NGHTTP2_NO_ERROR, stream.id!);
        setTimeout(() => {
          stream.respond({ ':status': 200 });
          stream.end('before goaway');
        }, 50);
        return;
      }
      stream.respond({ ':status': 200 });
      stream.end('after goaway');
    });
    const b = await ballast(simpleConfig([origin.address], '    protocol: http2'));
    expect((await get(b.url('/one'))).body).toBe('before goaway');
    expect((await get(b.url('/two'))).body).toBe('after goaway');
    expect(origin.sessions).toBe(2);
  });
});

describe('Http2Pool', () => {
  function poolFor(address: string, idleTimeoutMs: number, maxSessions = 4): Http2Pool {
    const parsed = parseConfig(simpleConfig([address], '    protocol: http2'), {});
    if (!parsed.ok) throw new Error('config');
    const upstream = parsed.config.upstreams[0]!;
    const pool = new Http2Pool(new Transport(upstream.servers[0]!.address, upstream), { maxSessions, connectTimeoutMs: 1000, idleTimeoutMs, connected: () => {} });
    onCleanup(() => pool.destroy());
    return pool;
  }

  /** One request through the pool, as an attempt drives it. */
  function fetchVia(pool: Http2Pool, path: string, body: Buffer | null = null): Promise<{ status: number; body: string; trailers: IncomingHttpHeaders | null } | Error> {
    return new Promise((resolve) => {
      let status = 0;
      const chunks: Buffer[] = [];
      const handler: StreamHandler = {
        onConnect: () => {},
        onHeaders: (s) => ((status = s), true),
        onData: (c) => (chunks.push(c), true),
        onComplete: (trailers) => resolve({ status, body: Buffer.concat(chunks).toString(), trailers }),
        onError: (err) => resolve(err),
      };
      pool.dispatch({ path, method: body === null ? 'GET' : 'POST', headers: ['host', 'origin.test', 'x-one', 'a', 'x-one', 'b', 'constructor', 'c', '__proto__', 'p'], body }, handler);
    });
  }

  it('sends the request fields as HTTP/2 fields (host as :authority, a repeated field kept) and hands back the response trailers', async () => {
    let seen: IncomingHttpHeaders = {};
    const origin = await h2cOrigin((stream, headers) => {
      seen = headers;
      stream.respond({ ':status': 201, 'set-cookie': ['a=1', 'b=2'] }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end('made');
    });
    const pool = poolFor(origin.address, 5000);
    const res = await fetchVia(pool, '/thing?x=1');
    expect(res).toMatchObject({ status: 201, body: 'made', trailers: { 'grpc-status': '0' } });
    expect(seen).toMatchObject({ ':authority': 'origin.test', ':method': 'GET', ':path': '/thing?x=1', ':scheme': 'http', 'x-one': 'a, b', constructor: 'c' });
    expect(Object.getOwnPropertyDescriptor(seen, '__proto__')?.value).toBe('p');
  });

  /** A handler that logs what the pool calls, and whose onHeaders and onData answers are set by the test. */
  function logged(answers: { headers?: boolean; data?: boolean } = {}): StreamHandler & { log: string[]; resume: (() => void) | undefined; ended: Promise<void> } {
    let ended!: () => void;
    const handler = {
      log: [] as string[],
      resume: undefined as (() => void) | undefined,
      ended: new Promise<void>((resolve) => (ended = resolve)),
      onConnect: () => {},
      onHeaders: (status: number, _raw: Buffer[], resume: () => void) => {
        handler.resume = resume;
        handler.log.push(`headers ${status}`);
        return answers.headers ?? true;
      },
      onData: (chunk: Buffer) => {
        handler.log.push(`data ${chunk.length}`);
        return answers.data ?? true;
      },
      onComplete: () => {
        handler.log.push('complete');
        ended();
      },
      onError: (err: Error & { code?: string; unprocessed?: boolean }) => {
        handler.log.push(`error ${err.code}${err.unprocessed === true ? ' unprocessed' : ''}`);
        ended();
      },
    };
    return handler;
  }

  function rawPool(port: number, maxSessions: number): Http2Pool {
    return poolFor(`127.0.0.1:${port}`, 5000, maxSessions);
  }

  it('a response held by its handler until the whole of it is in completes when resumed, body and all', async () => {
    const origin = await h2cOrigin((stream) => {
      stream.respond({ ':status': 503 });
      stream.end('held body');
    });
    const pool = poolFor(origin.address, 5000);
    const held = logged({ headers: false });
    pool.dispatch({ path: '/', method: 'GET', headers: ['host', 'x'], body: null }, held);
    // Long enough for the stream to end and close while the handler holds it.
    await waitFor(() => origin.open === 0, { timeoutMs: 2000 });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(held.log).toEqual(['headers 503']);
    held.resume!();
    await held.ended;
    expect(held.log).toEqual(['headers 503', 'data 9', 'complete']);
  });

  it('a paused stream (a slow client) is not timed out for the server\'s silence', async () => {
    const origin = await h2cOrigin((stream) => {
      stream.respond({ ':status': 200 });
      stream.write(Buffer.alloc(1000));
      setTimeout(() => stream.end(Buffer.alloc(1000)), 300);
    });
    const pool = poolFor(origin.address, 5000);
    const slow = logged({ data: false });
    pool.dispatch({ path: '/', method: 'GET', headers: ['host', 'x'], body: null, bodyTimeout: 150 }, slow);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(slow.log).toEqual(['headers 200', 'data 1000']);
    slow.resume!();
    await slow.ended;
    expect(slow.log.at(-1)).toBe('complete');
  });

  it('an early response frees the stream\'s place even when the server does not reset the rest of the request', async () => {
    const origin = await rawH2Server(1);
    onCleanup(() => new Promise<void>((resolve) => origin.server.close(() => resolve())));
    const pool = rawPool(origin.port, 1);
    const upload = new PassThrough();
    upload.write('part one');
    const first = logged();
    pool.dispatch({ path: '/upload', method: 'POST', headers: ['host', 'x'], body: upload }, first);
    await first.ended;
    upload.write('the client is still sending');
    const second = logged();
    pool.dispatch({ path: '/next', method: 'GET', headers: ['host', 'x'], body: null }, second);
    await second.ended;
    expect([first.log, second.log]).toEqual([['headers 200', 'complete'], ['headers 200', 'complete']]);
    await waitFor(() => origin.stats.rst === 1, { timeoutMs: 2000 });
    await pool.close();
  });

  it('a stream past the last one a GOAWAY says was processed is unprocessed, whatever the GOAWAY\'s error code', async () => {
    let streams = 0;
    const origin = await h2cOrigin((stream) => {
      if (++streams !== 2) return;
      const session = stream.session!;
      session.goaway(constants.NGHTTP2_ENHANCE_YOUR_CALM, 1);
      setTimeout(() => session.destroy(), 50);
    });
    const pool = poolFor(origin.address, 5000, 1);
    const [first, second] = [logged(), logged()];
    pool.dispatch({ path: '/a', method: 'POST', headers: ['host', 'x'], body: Buffer.from('a') }, first);
    await waitFor(() => streams === 1, { timeoutMs: 2000 });
    pool.dispatch({ path: '/b', method: 'POST', headers: ['host', 'x'], body: Buffer.from('b') }, second);
    await Promise.all([first.ended, second.ended]);
    // Stream 1 was processed as far as the server said; stream 3 came after the GOAWAY's last stream id.
    expect(first.log).toEqual(['error UND_ERR_SOCKET']);
    expect(second.log).toEqual(['error UND_ERR_SOCKET unprocessed']);
  });

  it('a request queued behind a session that went away is served on a new one, also while the pool closes', async () => {
    const origin = await h2cOrigin((stream, headers) => {
      if (headers[':path'] !== '/first') {
        stream.respond({ ':status': 200 });
        return void stream.end('second');
      }
      setTimeout(() => {
        // GOAWAY (the last stream is this one), then its answer: the session drains and takes nothing new.
        stream.session!.close();
        setTimeout(() => {
          stream.respond({ ':status': 200 });
          stream.end('first');
        }, 50);
      }, 100);
    }, { maxConcurrentStreams: 1 });
    const pool = poolFor(origin.address, 5000, 1);
    const [first, second] = [logged(), logged()];
    pool.dispatch({ path: '/first', method: 'GET', headers: ['host', 'x'], body: null }, first);
    await waitFor(() => origin.open === 1, { timeoutMs: 2000 });
    pool.dispatch({ path: '/second', method: 'GET', headers: ['host', 'x'], body: null }, second);
    const closed = pool.close();
    await Promise.all([first.ended, second.ended, closed]);
    expect([first.log, second.log]).toEqual([['headers 200', 'data 5', 'complete'], ['headers 200', 'data 6', 'complete']]);
    expect(origin.sessions).toBe(2);
  });

  it('when a new connection fails, what waits fails at once (a connect failure), with no second attempt', async () => {
    const h2 = createH2cServer({ settings: { maxConcurrentStreams: 1 } });
    h2.on('stream', (stream) => {
      stream.on('error', () => {});
      stream.respond({ ':status': 200 });
      stream.write('a long stream');
    });
    h2.on('session', (session) => session.on('error', () => {}));
    let accepted = 0;
    const listener = createNetServer((socket) => {
      accepted++;
      h2.emit('connection', socket);
    });
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    const port = (listener.address() as AddressInfo).port;
    const pool = rawPool(port, 4);
    const long = logged();
    pool.dispatch({ path: '/watch', method: 'GET', headers: ['host', 'x'], body: null }, long);
    await waitFor(() => long.log.length >= 2, { timeoutMs: 2000 });
    // The origin stops accepting connections (close() calls back only once the open one ends); that one goes on, full.
    listener.close();
    const started = performance.now();
    const queued = logged();
    pool.dispatch({ path: '/next', method: 'GET', headers: ['host', 'x'], body: null }, queued);
    await queued.ended;
    expect(queued.log).toEqual(['error ECONNREFUSED']);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(accepted).toBe(1);
    await pool.destroy();
    h2.close();
  });

  it('closes a session idle for idleTimeoutMs, and opens a new one for the next request', async () => {
    const origin = await h2cOrigin((stream) => {
      stream.respond({ ':status': 200 });
      stream.end('ok');
    });
    const pool = poolFor(origin.address, 150);
    expect(await fetchVia(pool, '/a')).toMatchObject({ status: 200 });
    expect(origin.live.size).toBe(1);
    await waitFor(() => origin.live.size === 0, { timeoutMs: 2000 });
    expect(await fetchVia(pool, '/b')).toMatchObject({ status: 200 });
    expect(origin.sessions).toBe(2);
  });

  it('fails what waits with a connect error when the server cannot be reached', async () => {
    const origin = await h2cOrigin(() => {});
    const address = origin.address;
    await new Promise<void>((resolve) => origin.server.close(() => resolve()));
    const pool = poolFor(address, 5000);
    const [a, b] = await Promise.all([fetchVia(pool, '/a'), fetchVia(pool, '/b')]);
    expect((a as Error & { code?: string }).code).toBe('ECONNREFUSED');
    expect((b as Error & { code?: string }).code).toBe('ECONNREFUSED');
  });

  it('close() lets the streams in flight finish, then closes the sessions', async () => {
    const origin = await h2cOrigin((stream) => setTimeout(() => {
      stream.respond({ ':status': 200 });
      stream.end('finished');
    }, 100));
    const pool = poolFor(origin.address, 5000);
    const pending = fetchVia(pool, '/slow');
    await waitFor(() => origin.open === 1, { timeoutMs: 2000 });
    const closed = pool.close();
    expect(await pending).toMatchObject({ status: 200, body: 'finished' });
    await closed;
    await waitFor(() => origin.live.size === 0, { timeoutMs: 2000 });
    expect(await fetchVia(pool, '/after')).toMatchObject({ code: 'UND_ERR_CLOSED' });
  });
});
