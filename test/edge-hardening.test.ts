/**
 * What a public edge sees, over real sockets: pipelined floods, slow uploads, oversized bodies, request floods,
 * and origins that answer what no proxy should pass on. Each of these failed before the exchange loop learnt it.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { get, simpleConfig, startBallast, type TestBallast } from './helpers/ballast.js';
import { startOrigin, type Origin } from './helpers/origin.js';
import { sendRaw } from './helpers/raw.js';
import { sleep, waitFor } from './helpers/wait.js';

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function ballast(yaml: string): Promise<TestBallast> {
  const b = await startBallast(yaml);
  cleanup.push(() => b.stop());
  return b;
}

async function origins(n: number): Promise<Origin[]> {
  const os = await Promise.all(Array.from({ length: n }, (_, i) => startOrigin(`o${i}`)));
  for (const o of os) cleanup.push(() => o.close());
  return os;
}

/** An origin whose handler is all the test's, on 127.0.0.1. */
async function rawOrigin(handler: (req: IncomingMessage, socket: Socket, res: import('node:http').ServerResponse) => void): Promise<{ server: Server; address: string }> {
  const server = createServer((req, res) => handler(req, req.socket, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanup.push(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  return { server, address: `127.0.0.1:${(server.address() as AddressInfo).port}` };
}

async function metric(b: TestBallast, prefix: string): Promise<string[]> {
  const text = await (await fetch(`http://127.0.0.1:${b.adminPort}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith(prefix));
}

describe('pipelining', () => {
  it("a connection's pipelined requests reach the origin one at a time, in order, and answers come back in order", async () => {
    let inflight = 0;
    let most = 0;
    const seen: string[] = [];
    const origin = await rawOrigin((req, _socket, res) => {
      // In flight from the pipelining connection (another client's request is not one of them).
      const piped = req.url !== '/other';
      if (piped) most = Math.max(most, ++inflight);
      seen.push(req.url ?? '');
      req.resume();
      setTimeout(() => {
        if (piped) inflight--;
        res.end(req.url);
      }, 5);
    });
    const b = await ballast(simpleConfig([origin.address]).replace('access_log: true', 'access_log: false'));
    const n = 60;
    const pipelined = Array.from({ length: n }, (_, i) => `GET /p${i} HTTP/1.1\r\nHost: x\r\n\r\n`).join('');
    const socket = connect(b.port, '127.0.0.1', () => socket.write(pipelined));
    socket.on('error', () => {});
    cleanup.push(() => void socket.destroy());
    let text = '';
    socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
    await waitFor(() => (text.match(/HTTP\/1\.1 200/g) ?? []).length >= 10, { what: 'the first answers' });
    // Another client is served while the pipeline drains, not after it.
    expect((await get(b.url('/other'))).status).toBe(200);
    await waitFor(() => (text.match(/HTTP\/1\.1 200/g) ?? []).length === n, { timeoutMs: 15_000, what: 'every pipelined answer' });
    expect(most).toBe(1);
    const piped = seen.filter((u) => u !== '/other');
    expect(piped).toEqual(Array.from({ length: n }, (_, i) => `/p${i}`));
    expect(seen.indexOf('/other')).toBeLessThan(seen.length - 1);
    const bodies = [...text.matchAll(/\r\n\r\n(\/p\d+)/g)].map((m) => m[1]);
    expect(bodies).toEqual(piped);
  });

  it('a connection with more than 64 requests waiting is closed: the flood reaches the origin one request at a time, and nothing is held', async () => {
    let inflight = 0;
    let most = 0;
    let seen = 0;
    const origin = await rawOrigin((req, _socket, res) => {
      most = Math.max(most, ++inflight);
      seen++;
      req.resume();
      setTimeout(() => {
        inflight--;
        res.end('x');
      }, 50);
    });
    const b = await ballast(simpleConfig([origin.address]).replace('access_log: true', 'access_log: false'));
    const text = await sendRaw(b.port, 'GET /p HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(2000));
    expect(text).toBe('');
    // The first request may not even have reached the origin before its connection was closed.
    expect(most).toBeLessThanOrEqual(1);
    expect(seen).toBeLessThanOrEqual(1);
    const dropped = await metric(b, 'ballast_bad_requests_total{listener="web",reason="pipeline-overflow"}');
    expect(Number(dropped[0]?.split(' ')[1])).toBeGreaterThan(64);
    const upstream = b.ballast.upstreams.get('pool')!;
    await waitFor(() => upstream.breaker.active === 0 && upstream.hosts[0]!.inflight === 0 && b.ballast.httpListeners[0]!.forwarder.exchanges === 0, { what: 'nothing held' });
    expect(b.logs.filter((l) => l.msg === 'connection closed: too many pipelined requests waiting')).toHaveLength(1);
  });

  it('a client that closes with requests waiting sends none of them upstream', async () => {
    const seen: string[] = [];
    const origin = await rawOrigin((req, _socket, res) => {
      seen.push(req.url ?? '');
      req.resume();
      setTimeout(() => res.end('a'.repeat(64 * 1024)), 30);
    });
    const b = await ballast(simpleConfig([origin.address]));
    await new Promise<void>((resolve) => {
      const socket = connect(b.port, '127.0.0.1', () => {
        socket.write('GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\nGET /three HTTP/1.1\r\nHost: x\r\n\r\n');
        setTimeout(() => socket.destroy(), 10);
      });
      socket.on('error', () => {});
      socket.on('close', () => resolve());
    });
    const upstream = b.ballast.upstreams.get('pool')!;
    await waitFor(() => b.ballast.httpListeners[0]!.forwarder.exchanges === 0 && upstream.hosts[0]!.inflight === 0, { what: 'every exchange over' });
    // /one went upstream unless the client was gone before it could (a loaded machine); the waiting ones never did.
    expect(seen.filter((u) => u !== '/one')).toEqual([]);
    await waitFor(() => b.logs.filter((l) => l.kind === 'access').length === 3, { what: 'three access lines' });
    expect(b.logs.filter((l) => l.kind === 'access').map((l) => l.status)).toEqual([499, 499, 499]);
  });

  it('a WebSocket handshake pipelined behind a request in flight closes the connection instead of overtaking its answer', async () => {
    const [o] = await origins(1);
    o!.mode = 'hang';
    const b = await ballast(simpleConfig([o!.address]));
    const text = await sendRaw(b.port, 'GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
    expect(text).not.toContain('101');
    const upstream = b.ballast.upstreams.get('pool')!;
    await waitFor(() => upstream.hosts[0]!.inflight === 0, { what: 'the hung request cancelled' });
  });
});

describe('slow uploads are the client\'s fault', () => {
  const upstream = `    retry: { per_try_timeout: 300ms }
    outlier_detection: { consecutive_gateway_failures: 3, max_ejection_percent: 100% }`;

  async function slowUploaders(b: TestBallast, count: number, trickle: boolean): Promise<string[]> {
    return Promise.all(Array.from({ length: count }, (_, i) => new Promise<string>((resolve) => {
      const socket = connect(b.port, '127.0.0.1', () => socket.write(`POST /up${i} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n`));
      let text = '';
      socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
      socket.on('error', () => {});
      // One byte every 200 ms, or nothing at all after the head.
      const timer = setInterval(() => trickle && !socket.destroyed && socket.write('a'), 200);
      socket.on('close', () => {
        clearInterval(timer);
        resolve(text.split('\r\n')[0] ?? '');
      });
    })));
  }

  it('nine clients trickling their bodies get 408 from request_timeout, and no origin is ejected or blamed', async () => {
    const os = await origins(3);
    const b = await ballast(simpleConfig(os.map((o) => o.address), upstream, '    client: { request_timeout: 2s, headers_timeout: 1s }'));
    const lines = await slowUploaders(b, 9, true);
    expect(lines).toEqual(Array(9).fill('HTTP/1.1 408 Request Timeout'));
    const status = (await (await fetch(`http://127.0.0.1:${b.adminPort}/status`)).json()) as { upstreams: { servers: { state: string }[] }[] };
    expect(status.upstreams[0]!.servers.map((s) => s.state)).toEqual(['healthy', 'healthy', 'healthy']);
    expect(await metric(b, 'ballast_outlier_ejections_total{')).toEqual([]);
    expect((await metric(b, 'ballast_upstream_attempts_total{')).filter((l) => !l.includes('outcome="cancelled"'))).toEqual([]);
    expect(await metric(b, 'ballast_retries_total{')).toEqual([]);
    const access = b.logs.filter((l) => l.kind === 'access' && String(l.url).startsWith('/up'));
    await waitFor(() => b.logs.filter((l) => l.kind === 'access' && String(l.url).startsWith('/up')).length === 9, { what: 'nine access lines' });
    expect(new Set(b.logs.filter((l) => l.kind === 'access' && String(l.url).startsWith('/up')).map((l) => l.status))).toEqual(new Set([408]));
    expect(access.length).toBeLessThanOrEqual(9);
    // Normal clients are still served by every origin.
    const answers = await Promise.all(Array.from({ length: 6 }, () => get(b.url('/after'))));
    expect(answers.map((a) => a.status)).toEqual(Array(6).fill(200));
  });

  it('a client that stops sending its body gets 408 after body_timeout, with the upstream request aborted', async () => {
    const os = await origins(3);
    const b = await ballast(simpleConfig(os.map((o) => o.address), upstream, '    client: { body_timeout: 500ms }'));
    const lines = await slowUploaders(b, 9, false);
    expect(lines).toEqual(Array(9).fill('HTTP/1.1 408 Request Timeout'));
    await waitFor(() => b.logs.filter((l) => l.kind === 'access' && l.status === 408).length === 9, { what: 'nine 408 lines' });
    expect(b.logs.find((l) => l.kind === 'access' && l.status === 408)!.detail).toBe('client too slow to send its request body');
    expect(await metric(b, 'ballast_outlier_ejections_total{')).toEqual([]);
    expect((await metric(b, 'ballast_upstream_attempts_total{')).filter((l) => !l.includes('outcome="cancelled"'))).toEqual([]);
    await waitFor(() => b.ballast.upstreams.get('pool')!.hosts.every((h) => h.inflight === 0), { what: 'leases given back' });
  });

  it('a slow upload to a slow origin: the per-try timeout starts once the body is complete', async () => {
    const origin = await rawOrigin((req, _socket, res) => {
      req.resume();
      req.on('end', () => setTimeout(() => res.end('late but in time'), 150));
    });
    const b = await ballast(simpleConfig([origin.address], '    retry: { attempts: 1, per_try_timeout: 300ms }'));
    // The body takes ~600 ms to arrive, twice the per-try timeout; the origin answers 150 ms after its end.
    const text = await new Promise<string>((resolve) => {
      const socket = connect(b.port, '127.0.0.1', () => socket.write('POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nConnection: close\r\n\r\n'));
      let out = '';
      socket.on('data', (c: Buffer) => (out += c.toString('latin1')));
      socket.on('error', () => {});
      let sent = 0;
      const timer = setInterval(() => {
        socket.write('a');
        if (++sent === 4) clearInterval(timer);
      }, 150);
      socket.on('close', () => resolve(out));
    });
    expect(text.split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
    expect(text.endsWith('late but in time')).toBe(true);
  });

  it('a slow upload to an origin that then stops reading it and never answers: 504 at the per-try timeout, not a hang', async () => {
    // The origin takes the head and nothing more: once the socket buffers fill, undici stops reading the client's
    // body, so no client timer runs, and the per-try timer has deferred to the upload. undici's head timer, refreshed
    // by each body write, is what is left to end it.
    const origin = await rawOrigin((req) => req.pause());
    const b = await ballast(simpleConfig([origin.address], '    retry: { attempts: 1, per_try_timeout: 300ms }', '    client: { request_timeout: 15s, body_timeout: 15s }'));
    const started = Date.now();
    const status = await new Promise<string>((resolve) => {
      const socket = connect(b.port, '127.0.0.1', () => socket.write(`POST /stall HTTP/1.1\r\nHost: x\r\nContent-Length: ${64 * 1024 * 1024}\r\n\r\n`));
      let out = '';
      socket.on('data', (c: Buffer) => {
        out += c.toString('latin1');
        if (out.includes('\r\n')) {
          socket.destroy();
          resolve(out.split('\r\n')[0]!);
        }
      });
      socket.on('error', () => {});
      socket.on('close', () => resolve(out.split('\r\n')[0] ?? ''));
      // A trickle past the per-try timeout, then more than the origin's and Ballast's socket buffers hold.
      let sent = 0;
      const timer = setInterval(() => {
        if (socket.destroyed) return clearInterval(timer);
        if (++sent < 6) socket.write('a');
        else {
          clearInterval(timer);
          const chunk = Buffer.alloc(1024 * 1024, 97);
          for (let i = 0; i < 48 && !socket.destroyed; i++) socket.write(chunk);
        }
      }, 100);
    });
    expect(status).toBe('HTTP/1.1 504 Gateway Timeout');
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});

describe('max_body_size', () => {
  const limited = '    client: { max_body_size: 1MiB }';

  it('a Content-Length over the limit gets 413 before anything is sent upstream', async () => {
    const [o] = await origins(1);
    const b = await ballast(simpleConfig([o!.address], '', limited));
    const text = await sendRaw(b.port, `POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: ${2 * 1024 * 1024}\r\n\r\n${'a'.repeat(1024)}`);
    expect(text.split('\r\n')[0]).toBe('HTTP/1.1 413 Payload Too Large');
    expect(text).toMatch(/x-ballast-error: body_too_large/i);
    expect(text).toMatch(/connection: close/i);
    expect(o!.received).toEqual([]);
    expect(await metric(b, 'ballast_requests_total{listener="web",upstream="pool",code_class="4xx"}')).toEqual(['ballast_requests_total{listener="web",upstream="pool",code_class="4xx"} 1']);
  });

  it('a chunked body that crosses the limit gets 413, and the origin never sees a complete request', async () => {
    let completed = 0;
    let started = 0;
    const origin = await rawOrigin((req, _socket, res) => {
      started++;
      req.resume();
      req.on('end', () => {
        completed++;
        res.end('whole');
      });
    });
    const b = await ballast(simpleConfig([origin.address], '', limited));
    const chunk = 'a'.repeat(64 * 1024);
    let body = '';
    for (let i = 0; i < 32; i++) body += `${(64 * 1024).toString(16)}\r\n${chunk}\r\n`;
    const text = await sendRaw(b.port, `POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${body}0\r\n\r\n`);
    expect(text.split('\r\n')[0]).toBe('HTTP/1.1 413 Payload Too Large');
    await sleep(100);
    expect(started).toBeLessThanOrEqual(1);
    expect(completed).toBe(0);
    // A chunked body under the limit still goes through whole.
    const small = await sendRaw(b.port, `POST /small HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n`);
    expect(small.split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
    expect(completed).toBe(1);
  });

  it('a route can lift the listener limit', async () => {
    const [o] = await origins(1);
    const yaml = simpleConfig([o!.address], '', limited).replace('      - upstream: pool', '      - { match: { path_prefix: /uploads/ }, upstream: pool, client: { max_body_size: 0 } }\n      - upstream: pool');
    const b = await ballast(yaml);
    const big = 'a'.repeat(2 * 1024 * 1024);
    const up = await get(b.url('/uploads/x'), { method: 'POST', body: big });
    expect(up.status).toBe(200);
    const other = await get(b.url('/x'), { method: 'POST', body: big });
    expect(other.status).toBe(413);
  });
});

describe('rate_limit', () => {
  it('20/s with a burst of 10 admits 10 + 20·t requests of a flooding client, and answers the rest 429 with Retry-After', async () => {
    const [o] = await origins(1);
    const b = await ballast(simpleConfig([o!.address], '', '    client: { rate_limit: { rate: 20, per: 1s, burst: 10 } }').replace('access_log: true', 'access_log: false'));
    const started = performance.now();
    let admitted = 0;
    let refused = 0;
    let retryAfter: unknown;
    while (performance.now() - started < 2000) {
      const r = await get(b.url('/flood'));
      if (r.status === 200) admitted++;
      else {
        refused++;
        expect(r.status).toBe(429);
        expect(r.headers['x-ballast-error']).toBe('rate_limited');
        retryAfter = r.headers['retry-after'];
      }
    }
    const t = (performance.now() - started) / 1000;
    const expected = 10 + 20 * t;
    expect(admitted).toBeGreaterThanOrEqual(Math.floor(expected * 0.85));
    expect(admitted).toBeLessThanOrEqual(Math.ceil(expected * 1.15));
    expect(refused).toBeGreaterThan(0);
    expect(retryAfter).toBe('1');
    expect(await metric(b, 'ballast_rate_limited_total{')).toEqual([`ballast_rate_limited_total{listener="web",route="0"} ${refused}`]);
    expect(o!.received.length).toBe(admitted);
  });

  it('keys on a header when asked, and a route can turn the limit off', async () => {
    const [o] = await origins(1);
    const yaml = simpleConfig([o!.address], '', '    client: { rate_limit: { rate: 1, per: 1m, burst: 2, key: "header:x-api-key" } }')
      .replace('      - upstream: pool', '      - { match: { path_prefix: /free/ }, upstream: pool, client: { rate_limit: off } }\n      - upstream: pool');
    const b = await ballast(yaml);
    const as = (key: string) => get(b.url('/x'), { headers: { 'x-api-key': key } });
    expect([(await as('a')).status, (await as('a')).status, (await as('a')).status]).toEqual([200, 200, 429]);
    expect((await as('b')).status).toBe(200);
    expect((await get(b.url('/free/x'), { headers: { 'x-api-key': 'a' } })).status).toBe(200);
  });
});

describe('clients that do not read, and what is asked before a body is sent', () => {
  it('a client that reads nothing of a large response is reset after send_timeout, and its upstream connection freed', async () => {
    const big = Buffer.alloc(32 * 1024 * 1024, 97);
    const origin = await rawOrigin((req, _socket, res) => {
      req.resume();
      res.end(big);
    });
    const b = await ballast(simpleConfig([origin.address], '    limits: { max_connections: 2 }', '    client: { send_timeout: 500ms }'));
    const stuck = [1, 2].map(() => {
      const socket = connect(b.port, '127.0.0.1', () => socket.write('GET /big HTTP/1.1\r\nHost: x\r\n\r\n'));
      socket.on('error', () => {});
      socket.pause();
      cleanup.push(() => void socket.destroy());
      return socket;
    });
    expect(stuck).toHaveLength(2);
    const upstream = b.ballast.upstreams.get('pool')!;
    await waitFor(() => b.logs.filter((l) => l.kind === 'access' && l.url === '/big').length === 2, { what: 'both stalled exchanges ended' });
    expect(b.logs.filter((l) => l.kind === 'access' && l.url === '/big').map((l) => l.detail)).toEqual(Array(2).fill('client too slow to read its response'));
    await waitFor(() => upstream.hosts[0]!.inflight === 0, { what: 'leases given back' });
  });

  it('Expect: 100-continue gets its 100 only once the request is admitted', async () => {
    const [o] = await origins(1);
    const b = await ballast(simpleConfig([o!.address], '', '    client: { max_body_size: 10 }'));
    const refused = await sendRaw(b.port, 'POST /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 100\r\n\r\n', 2000);
    expect(refused.split('\r\n')[0]).toBe('HTTP/1.1 413 Payload Too Large');
    expect(refused).not.toContain('100 Continue');
    const admitted = await new Promise<string>((resolve) => {
      const socket = connect(b.port, '127.0.0.1', () => socket.write('POST /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\n'));
      let text = '';
      socket.on('data', (c: Buffer) => {
        text += c.toString('latin1');
        if (text.startsWith('HTTP/1.1 100 Continue') && !text.includes('200')) socket.write('hello');
      });
      socket.on('error', () => {});
      socket.on('close', () => resolve(text));
    });
    expect(admitted.startsWith('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK')).toBe(true);
    expect(o!.received.map((r) => r.bodyBytes)).toEqual([5]);
  });

  it('client-ip behind trusted_proxies is the client the proxy names, so a flood through one load balancer is limited per client', async () => {
    const [o] = await origins(1);
    const b = await ballast(simpleConfig([o!.address], '', '    trusted_proxies: [127.0.0.0/8]\n    client: { rate_limit: { rate: 1, per: 1m, burst: 1 } }'));
    const from = (chain: string) => get(b.url('/'), { headers: { 'x-forwarded-for': chain } });
    expect((await from('203.0.113.7')).status).toBe(200);
    expect((await from('203.0.113.7')).status).toBe(429);
    // What the client wrote left of the last untrusted hop does not give it a new bucket.
    expect((await from('198.51.100.1, 203.0.113.7')).status).toBe(429);
    expect((await from('203.0.113.8')).status).toBe(200);
  });
});

describe('what no proxy should pass on, and what every answer carries', () => {
  it('an origin status outside 100-599 is a 502 invalid response, never relayed', async () => {
    for (const line of ['HTTP/1.1 600 Weird', 'HTTP/1.1 099 Early']) {
      const origin = await rawOrigin((_req, socket) => socket.end(`${line}\r\nContent-Length: 0\r\n\r\n`));
      const b = await ballast(simpleConfig([origin.address], '    retry: { attempts: 1 }'));
      const r = await get(b.url('/'));
      expect(r.status).toBe(502);
      expect(r.headers['x-ballast-error']).toBe('upstream_invalid_response');
    }
  });

  it('every response carries x-request-id: the client\'s own, or one Ballast made; an origin\'s own wins', async () => {
    const [plain] = await origins(1);
    const b = await ballast(simpleConfig([plain!.address]));
    const made = await get(b.url('/'));
    expect(made.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(plain!.received[0]!.headers['x-request-id']).toBe(made.headers['x-request-id']);
    const theirs = await get(b.url('/'), { headers: { 'x-request-id': 'abc-123' } });
    expect(theirs.headers['x-request-id']).toBe('abc-123');
    plain!.mode = { status: 200, headers: { 'x-request-id': 'origin-1' } };
    expect((await get(b.url('/'))).headers['x-request-id']).toBe('origin-1');
  });

  it('answers Ballast makes itself carry x-request-id too', async () => {
    const [o] = await origins(1);
    const b = await ballast(simpleConfig([o!.address]).replace('      - upstream: pool', '      - { match: { host: only.example }, upstream: pool }'));
    for (const raw of ['GET / HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n', 'GET / HTTP/1.1\r\nConnection: close\r\n\r\n', 'CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n']) {
      const text = await sendRaw(b.port, raw, 2000);
      expect(text).toMatch(/\r\nx-request-id: [^\r]+\r\n/i);
    }
  });

  it('OPTIONS * is answered by Ballast with 200 and Allow, and never reaches an origin', async () => {
    const [o] = await origins(1);
    const b = await ballast(simpleConfig([o!.address]));
    const text = await sendRaw(b.port, 'OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(text.split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
    expect(text).toMatch(/\r\nallow: GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, TRACE\r\n/i);
    expect(o!.received).toEqual([]);
  });
});
