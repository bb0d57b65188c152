/** End-to-end behaviour of the HTTP data path, over real sockets to real origins. */
import { describe, expect, it } from 'vitest';
import { ballast, origins } from './helpers/fixtures.js';
import { request } from 'node:http';
import { connect } from 'node:net';
import { once } from 'node:events';
import { Readable } from 'node:stream';
import { get, startBallast, simpleConfig } from './helpers/ballast.js';
import { waitFor } from './helpers/wait.js';

describe('forwarding', () => {
  it('rotates requests over three origins in turn', async () => {
    const os = await origins(3);
    const b = await ballast(simpleConfig(os.map((o) => o.address)));
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await get(b.url('/hello'));
      expect(res.status).toBe(200);
      seen.push((JSON.parse(res.body) as { origin: string }).origin);
    }
    expect(seen.slice(0, 3).sort()).toEqual(['o1', 'o2', 'o3']);
    expect(seen.slice(3)).toEqual(seen.slice(0, 3));
  });

  it('routes by exact host, wildcard host and path prefix, first match wins', async () => {
    const [api, wild, web] = await origins(3);
    const b = await ballast(`
admin: { listen: 127.0.0.1:0 }
logging: { level: silent }
listeners:
  - name: web
    listen: 127.0.0.1:0
    routes:
      - { match: { host: api.example.com, path_prefix: /v1/ }, upstream: api }
      - { match: { host: "*.example.com" }, upstream: wild }
      - upstream: web
upstreams:
  - { name: api, servers: [{ address: ${api!.address} }] }
  - { name: wild, servers: [{ address: ${wild!.address} }] }
  - { name: web, servers: [{ address: ${web!.address} }] }
`);
    const originFor = async (host: string, path: string) => (JSON.parse((await get(b.url(path), { headers: { host } })).body) as { origin: string }).origin;
    expect(await originFor('api.example.com', '/v1/users')).toBe('o1');
    expect(await originFor('API.example.com:8080', '/v1/users')).toBe('o1');
    expect(await originFor('api.example.com', '/v2/users')).toBe('o2');
    expect(await originFor('cdn.example.com', '/v1/users')).toBe('o2');
    expect(await originFor('example.com', '/')).toBe('o3');
    expect(await originFor('other.org', '/v1/')).toBe('o3');
  });

  it('streams a large body both ways without buffering it', async () => {
    const [o] = await origins(1);
    // The origin echoes the request body back as it arrives.
    o!.handler = undefined;
    o!.server.removeAllListeners('request');
    o!.server.on('request', (req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      req.pipe(res);
    });
    const b = await ballast(simpleConfig([o!.address]).replace('level: info', 'level: silent'));
    const total = 256 * 1024 * 1024;
    const chunk = Buffer.alloc(64 * 1024, 7);
    let sent = 0;
    const body = new Readable({
      read() {
        if (sent >= total) return this.push(null);
        sent += chunk.length;
        this.push(chunk);
      },
    });
    const before = process.memoryUsage().rss;
    let peak = before;
    const res = await new Promise<{ status: number; bytes: number }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: b.port, method: 'POST', path: '/echo', headers: { 'transfer-encoding': 'chunked' } }, (r) => {
        let bytes = 0;
        r.on('data', (c: Buffer) => {
          bytes += c.length;
          peak = Math.max(peak, process.memoryUsage().rss);
        });
        r.on('end', () => resolve({ status: r.statusCode ?? 0, bytes }));
        r.on('error', reject);
      });
      req.on('error', reject);
      body.pipe(req);
    });
    expect(res.status).toBe(200);
    expect(res.bytes).toBe(total);
    // 256 MiB went through both ways; memory grew by a fraction of it (garbage the GC has not yet reclaimed is
    // about the same for 64 MiB and 256 MiB bodies: flat, not proportional).
    expect(peak - before).toBeLessThan(total / 2);
  });
});

describe('failure mapping', () => {
  it('answers 502 when the origin refuses connections', async () => {
    const [o] = await origins(1);
    await o!.kill();
    const b = await ballast(simpleConfig([o!.address], '    retry: { attempts: 1 }'));
    const res = await get(b.url('/'));
    expect(res.status).toBe(502);
    expect(res.headers['x-ballast-error']).toBe('upstream_connect_failed');
  });

  it('answers 502 when the origin resets the connection', async () => {
    const [o] = await origins(1);
    o!.mode = 'reset';
    const b = await ballast(simpleConfig([o!.address], '    retry: { attempts: 1 }'));
    const res = await get(b.url('/'));
    expect(res.status).toBe(502);
    expect(res.headers['x-ballast-error']).toBe('upstream_reset');
  });

  it('answers 502 when the origin sends an invalid response', async () => {
    const [o] = await origins(1);
    o!.server.removeAllListeners('request');
    o!.server.on('request', (req) => req.socket.end('HTTP/1.1 abc nonsense\r\n\r\n'));
    const b = await ballast(simpleConfig([o!.address], '    retry: { attempts: 1 }'));
    const res = await get(b.url('/'));
    expect(res.status).toBe(502);
    expect(res.headers['x-ballast-error']).toBe('upstream_invalid_response');
  });

  it('answers 504 when the origin does not answer in time', async () => {
    const [o] = await origins(1);
    o!.mode = 'hang';
    const b = await ballast(simpleConfig([o!.address], '    retry: { attempts: 1 }\n    timeouts: { request: 300ms }'));
    const started = Date.now();
    const res = await get(b.url('/'));
    expect(res.status).toBe(504);
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('answers 503 with Retry-After at once when no server is available', async () => {
    const [o] = await origins(1);
    const b = await ballast(simpleConfig([o!.address]));
    for (const h of b.ballast.upstreams.get('pool')!.hosts) h.disabled = true;
    const started = Date.now();
    const res = await get(b.url('/'));
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('1');
    expect(Date.now() - started).toBeLessThan(500);
    expect(o!.received).toHaveLength(0);
  });

  it('answers 404 when no route matches', async () => {
    const [o] = await origins(1);
    const b = await ballast(simpleConfig([o!.address]).replace('      - upstream: pool', '      - { match: { path_prefix: /api/ }, upstream: pool }'));
    expect((await get(b.url('/other'))).status).toBe(404);
    expect((await get(b.url('/api/x'))).status).toBe(200);
    // Answered here, but a request all the same: an access line and a count (upstream="").
    const raw = connect(b.port, '127.0.0.1');
    raw.write('GET /bad#fragment HTTP/1.1\r\nHost: x\r\n\r\n');
    raw.resume();
    await once(raw, 'close');
    await waitFor(() => b.logs.filter((l) => l.kind === 'access').length === 3);
    const lines = b.logs.filter((l) => l.kind === 'access');
    expect(lines.map((l) => [l.url, l.status, l.upstream, l.detail])).toEqual([
      ['/other', 404, undefined, 'no route'],
      ['/api/x', 200, 'pool', undefined],
      ['/bad#fragment', 400, undefined, 'invalid character in request target'],
    ]);
    const metrics = (await get(`http://127.0.0.1:${b.adminPort}/metrics`)).body;
    expect(metrics).toContain('ballast_requests_total{listener="web",upstream="",code_class="4xx"} 2');
    expect(metrics).toContain('ballast_requests_total{listener="web",upstream="pool",code_class="2xx"} 1');
  });

  it('aborts the upstream request when the client goes away', async () => {
    const [o] = await origins(1);
    o!.mode = 'hang';
    const b = await ballast(simpleConfig([o!.address]));
    let originSocketClosed = false;
    o!.server.on('request', (req) => req.socket.once('close', () => (originSocketClosed = true)));
    const socket = connect(b.port, '127.0.0.1');
    await once(socket, 'connect');
    socket.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor(() => o!.received.length === 1);
    const host = b.ballast.upstreams.get('pool')!.hosts[0]!;
    expect(host.inflight).toBe(1);
    socket.destroy();
    await waitFor(() => host.inflight === 0);
    // The origin's connection for that request is closed too, not left hanging.
    await waitFor(() => originSocketClosed);
    await waitFor(() => b.logs.some((l) => l.kind === 'access' && l.status === 499));
  });

  it('truncates the response visibly when the origin dies mid-body', async () => {
    const [o] = await origins(1);
    o!.server.removeAllListeners('request');
    o!.server.on('request', (_req, res) => {
      res.writeHead(200, { 'content-length': '100000' });
      res.write(Buffer.alloc(1000));
      setTimeout(() => res.socket?.destroy(), 50);
    });
    const b = await ballast(simpleConfig([o!.address]));
    const outcome = await new Promise<string>((resolve) => {
      const req = request({ host: '127.0.0.1', port: b.port, path: '/' }, (res) => {
        res.on('data', () => {});
        res.on('end', () => resolve('clean end'));
        res.on('error', () => resolve('error'));
        res.on('aborted', () => resolve('aborted'));
      });
      req.on('error', () => resolve('error'));
      req.end();
    });
    expect(outcome).not.toBe('clean end');
  });
});

describe('header hygiene', () => {
  it('strips hop-by-hop and Connection-named headers, then adds the forwarding headers', async () => {
    const [o] = await origins(1);
    const b = await ballast(simpleConfig([o!.address]));
    // node:http, not undici: undici refuses to send hop-by-hop headers at all.
    const res = await new Promise<{ status: number }>((resolve, reject) => {
      const req = request({
        host: '127.0.0.1',
        port: b.port,
        path: '/h',
        headers: {
          connection: 'keep-alive, x-secret, x-forwarded-for',
          'x-secret': 'hidden',
          'keep-alive': 'timeout=5',
          'proxy-authorization': 'Basic abc',
          te: 'trailers',
          'x-forwarded-for': '6.6.6.6',
          'x-forwarded-host': 'evil.example',
          'x-request-id': 'req-123',
          'x-kept': 'yes',
        },
      }, (r) => {
        r.resume();
        r.on('end', () => resolve({ status: r.statusCode ?? 0 }));
      });
      req.on('error', reject);
      req.end();
    });
    expect(res.status).toBe(200);
    const h = o!.received[0]!.headers;
    expect(h['x-secret']).toBeUndefined();
    expect(h['keep-alive']).toBeUndefined();
    expect(h['proxy-authorization']).toBeUndefined();
    expect(h.te).toBeUndefined();
    expect(h['x-kept']).toBe('yes');
    // Untrusted peer: its chain is replaced, and Connection could not strip Ballast's own header.
    expect(h['x-forwarded-for']).toBe('127.0.0.1');
    expect(h['x-forwarded-host']).toBe(`127.0.0.1:${b.port}`);
    expect(h['x-forwarded-proto']).toBe('http');
    expect(h.via).toBe('1.1 ballast');
    expect(h['x-request-id']).toBe('req-123');
  });

  it('appends to the X-Forwarded-For chain of a trusted proxy', async () => {
    const [o] = await origins(1);
    const b = await ballast(simpleConfig([o!.address], '', '    trusted_proxies: [127.0.0.0/8]'));
    await get(b.url('/'), { headers: { 'x-forwarded-for': '203.0.113.9', 'x-forwarded-proto': 'https' } });
    const h = o!.received[0]!.headers;
    expect(h['x-forwarded-for']).toBe('203.0.113.9, 127.0.0.1');
    expect(h['x-forwarded-proto']).toBe('https');
    expect(typeof h['x-request-id']).toBe('string');
  });

  it('removes hop-by-hop headers from the response', async () => {
    const [o] = await origins(1);
    o!.mode = { status: 200, headers: { connection: 'x-internal', 'x-internal': 'secret', 'keep-alive': 'timeout=1', 'x-public': 'ok' } };
    const b = await ballast(simpleConfig([o!.address]));
    const res = await get(b.url('/'));
    expect(res.headers['x-internal']).toBeUndefined();
    expect(res.headers['x-public']).toBe('ok');
  });
});

describe('admin', () => {
  it('serves status, metrics, healthz and ready', async () => {
    const os = await origins(2);
    const b = await ballast(simpleConfig(os.map((o) => o.address)));
    await get(b.url('/'));
    const admin = (p: string) => get(`http://127.0.0.1:${b.adminPort}${p}`);
    expect((await admin('/healthz')).status).toBe(200);
    expect((await admin('/ready')).status).toBe(200);
    const status = JSON.parse((await admin('/status')).body) as { upstreams: { name: string; servers: { address: string; state: string; weight: number; active_requests: number }[] }[] };
    expect(status.upstreams[0]!.name).toBe('pool');
    expect(status.upstreams[0]!.servers.map((s) => s.address)).toEqual(os.map((o) => o.address));
    expect(status.upstreams[0]!.servers.every((s) => s.state === 'healthy' && s.weight === 1 && s.active_requests === 0)).toBe(true);
    const metrics = (await admin('/metrics')).body;
    expect(metrics).toMatch(/ballast_requests_total\{listener="web",upstream="pool",code_class="2xx"\} 1/);
    expect(metrics).toMatch(/ballast_request_duration_seconds_count\{listener="web",upstream="pool"\} 1/);
    expect(metrics).toMatch(/ballast_upstream_server_healthy\{upstream="pool",server="127\.0\.0\.1:\d+"\} 1/);
    expect(metrics).toMatch(/ballast_upstream_attempts_total\{upstream="pool",server="127\.0\.0\.1:\d+",outcome="2xx"\} 1/);
  });

  it('counts open client connections per listener, up while they are open and down when they close', async () => {
    const [o] = await origins(1);
    const b = await ballast(simpleConfig([o!.address]));
    const active = async () => /ballast_active_connections\{listener="web"\} (\d+)/.exec((await get(`http://127.0.0.1:${b.adminPort}/metrics`)).body)?.[1];
    expect(await active()).toBe('0');
    const sockets = await Promise.all(
      [1, 2, 3].map(async () => {
        const s = connect(b.port, '127.0.0.1');
        await once(s, 'connect');
        return s;
      }),
    );
    await waitFor(async () => (await active()) === '3');
    sockets[0]!.destroy();
    sockets[1]!.end();
    await waitFor(async () => (await active()) === '1');
    sockets[2]!.destroy();
    await waitFor(async () => (await active()) === '0');
  });
});

describe('graceful shutdown', () => {
  it('finishes a request in flight, then stops accepting', async () => {
    const [o] = await origins(1);
    o!.handler = (_req, res) => setTimeout(() => res.end('late but complete'), 300);
    const b = await startBallast(simpleConfig([o!.address]));
    const pending = get(b.url('/slow'));
    await waitFor(() => o!.received.length === 1);
    const stopped = b.ballast.stop(5000);
    const res = await pending;
    expect(res.status).toBe(200);
    expect(res.body).toBe('late but complete');
    await stopped;
    await expect(get(b.url('/'))).rejects.toThrow();
  });

  it('a request cut at the drain deadline still gets its access line (503, cut at the drain deadline)', async () => {
    const [o] = await origins(1);
    o!.mode = 'hang';
    const b = await startBallast(simpleConfig([o!.address]));
    const pending = get(b.url('/held')).catch((err: unknown) => err);
    await waitFor(() => o!.received.length === 1);
    await b.ballast.stop(200);
    expect(await pending).toBeInstanceOf(Error);
    // stop() has resolved: every access line is written by now.
    const line = b.logs.find((l) => l.kind === 'access' && l.url === '/held');
    expect(line).toMatchObject({ status: 503, detail: 'cut at the drain deadline', upstream: 'pool' });
  });
});
