/**
 * TLS and HTTP/2 to origins (`upstreams[].tls`, `upstreams[].protocol`): real node:https and node:http2 origins on
 * 127.0.0.1 with throw-away certificates, Ballast in front speaking HTTP/1.1 to the client.
 */
import { createServer as createHttpsServer, type ServerOptions } from 'node:https';
import { createSecureServer, createServer as createH2cServer, type Http2Server, type Http2SecureServer, type ServerHttp2Stream } from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.js';
import { Upstream } from '../src/upstream/upstream.js';
import { Attempt, type AttemptOwner } from '../src/proxy/http/attempt.js';
import type { Downstream } from '../src/proxy/http/downstream.js';
import { createCertificateAuthority, type CertificateAuthority, type Pem } from './helpers/certs.js';
import { ballast, onCleanup } from './helpers/fixtures.js';
import { get, simpleConfig } from './helpers/ballast.js';
import { sendRaw } from './helpers/raw.js';
import { waitFor } from './helpers/wait.js';

let ca: CertificateAuthority;
let otherCa: CertificateAuthority;
/** For api.internal, localhost and 127.0.0.1. */
let server: Pem;
let client: Pem;

beforeAll(() => {
  ca = createCertificateAuthority();
  otherCa = createCertificateAuthority('Someone Else');
  server = ca.issue(['api.internal', 'localhost', '127.0.0.1'], { file: 'origin' });
  client = ca.issue(['ballast-client'], { clientAuth: true, file: 'client' });
});

afterAll(() => {
  ca.remove();
  otherCa.remove();
});

interface Seen {
  /** SNI the origin received (false: none). */
  servername: string | false;
  httpVersion: string;
  headers: Record<string, string | string[] | undefined>;
  /** Subject CN of the client certificate, if one was presented. */
  clientCn: string | undefined;
}

type AnyServer = ReturnType<typeof createHttpsServer> | Http2SecureServer | Http2Server;

async function listen(s: AnyServer): Promise<string> {
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  onCleanup(() => new Promise<void>((resolve) => {
    (s as { closeAllConnections?: () => void }).closeAllConnections?.();
    s.close(() => resolve());
  }));
  return `127.0.0.1:${(s.address() as AddressInfo).port}`;
}

/** An HTTPS (HTTP/1.1) origin recording what it was sent; `/healthz` answers `health()`. */
async function httpsOrigin(options: ServerOptions = {}, health: () => number = () => 200): Promise<{ address: string; port: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const s = createHttpsServer({ cert: server.cert, key: server.key, ...options }, (req, res) => {
    if (req.url === '/healthz') return void res.writeHead(health()).end();
    const socket = req.socket as TLSSocket;
    const peer = socket.getPeerCertificate();
    const cn = peer.subject?.CN;
    seen.push({ servername: socket.servername ?? false, httpVersion: req.httpVersion, headers: req.headers, clientCn: Array.isArray(cn) ? cn[0] : cn });
    res.writeHead(200, { 'content-type': 'text/plain' }).end('tls ok');
  });
  s.on('tlsClientError', () => {});
  const address = await listen(s);
  return { address, port: address.split(':')[1]!, seen };
}

/** An HTTP/2 origin (TLS without HTTP/1.1, or h2c) answering every stream with a body and trailers. */
async function h2Origin(tls: boolean): Promise<{ address: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const s = tls ? createSecureServer({ cert: server.cert, key: server.key, allowHTTP1: false }) : createH2cServer();
  s.on('stream', (stream: ServerHttp2Stream, headers) => {
    const socket = stream.session?.socket as TLSSocket | undefined;
    seen.push({ servername: tls ? socket?.servername ?? false : false, httpVersion: '2.0', headers, clientCn: undefined });
    if (headers[':path'] === '/healthz') return void stream.respond({ ':status': 200 }, { endStream: true });
    stream.respond({ ':status': 200, 'content-type': 'text/plain' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': 'fine' }));
    stream.end('h2 ok');
  });
  s.on('sessionError', () => {});
  return { address: await listen(s), seen };
}

function tlsConfig(servers: string[], tls: string, extra = ''): string {
  return simpleConfig(servers, `    tls: ${tls}\n${extra}`);
}

async function metrics(adminPort: number): Promise<string> {
  return (await get(`http://127.0.0.1:${adminPort}/metrics`)).body;
}

describe('TLS to origins', () => {
  it('verifies the origin with the configured CA and sends the configured servername as SNI, whatever the client\'s Host', async () => {
    const origin = await httpsOrigin();
    const b = await ballast(tlsConfig([origin.address], `{ servername: api.internal, ca: ${ca.certPath} }`));
    const res = await get(b.url('/x'), { headers: { host: 'www.example.com' } });
    expect(res.status).toBe(200);
    expect(res.body).toBe('tls ok');
    expect(origin.seen[0]).toMatchObject({ servername: 'api.internal', httpVersion: '1.1' });
    // The client's authority still reaches the origin as Host; only the TLS name is the server's.
    expect(origin.seen[0]!.headers.host).toBe('www.example.com');
    expect((await get(b.url('/y'), { headers: { host: 'other.example.org' } })).status).toBe(200);
    expect(origin.seen[1]!.servername).toBe('api.internal');
  });

  it('sends the server\'s host name as SNI by default, and none for an IP address (verified against the IP)', async () => {
    const origin = await httpsOrigin();
    const byName = await ballast(tlsConfig([`localhost:${origin.port}`], `{ ca: ${ca.certPath} }`));
    expect((await get(byName.url('/'))).status).toBe(200);
    expect(origin.seen[0]!.servername).toBe('localhost');
    const byIp = await ballast(tlsConfig([origin.address], `{ ca: ${ca.certPath} }`));
    expect((await get(byIp.url('/'))).status).toBe(200);
    expect(origin.seen[1]!.servername).toBe(false);
  });

  it('refuses an origin whose certificate another CA signed (502, a connect failure), and accepts it with verify: false', async () => {
    const origin = await httpsOrigin();
    const strict = await ballast(tlsConfig([origin.address], `{ ca: ${otherCa.certPath} }`, '    retry: { attempts: 1 }'));
    const res = await get(strict.url('/'));
    expect(res.status).toBe(502);
    expect(res.headers['x-ballast-error']).toBe('upstream_connect_failed');
    expect(origin.seen).toHaveLength(0);
    expect(await metrics(strict.adminPort)).toContain(`ballast_upstream_attempts_total{upstream="pool",server="${origin.address}",outcome="connect-failure"} 1`);

    const lax = await ballast(tlsConfig([origin.address], `{ ca: ${otherCa.certPath}, verify: false }`));
    expect((await get(lax.url('/'))).status).toBe(200);
    expect(origin.seen).toHaveLength(1);
  });

  it('presents the client certificate to an origin that requires one (mutual TLS)', async () => {
    const origin = await httpsOrigin({ requestCert: true, rejectUnauthorized: true, ca: ca.cert });
    const without = await ballast(tlsConfig([origin.address], `{ ca: ${ca.certPath} }`, '    retry: { attempts: 1 }'));
    expect((await get(without.url('/'))).status).toBe(502);
    expect(origin.seen).toHaveLength(0);
    const withCert = await ballast(tlsConfig([origin.address], `{ ca: ${ca.certPath}, cert: ${client.certPath}, key: ${client.keyPath} }`));
    expect((await get(withCert.url('/'))).status).toBe(200);
    expect(origin.seen[0]!.clientCn).toBe('ballast-client');
  });
});

describe('HTTP/2 to origins', () => {
  it('refuses an HTTP/2 origin whose certificate another CA signed, and one that does not offer h2: 502, connect failures', async () => {
    const origin = await h2Origin(true);
    const strict = await ballast(tlsConfig([origin.address], `{ ca: ${otherCa.certPath} }`, '    protocol: http2\n    retry: { attempts: 1 }'));
    const res = await get(strict.url('/'));
    expect(res.status).toBe(502);
    expect(res.headers['x-ballast-error']).toBe('upstream_connect_failed');
    expect(origin.seen).toHaveLength(0);
    // ALPN: `protocol: http2` over TLS offers h2 alone, so an HTTP/1.1-only origin is not reached at all.
    const h1Only = await httpsOrigin();
    const b = await ballast(tlsConfig([h1Only.address], `{ ca: ${ca.certPath} }`, '    protocol: http2\n    retry: { attempts: 1 }'));
    const refused = await get(b.url('/'));
    expect(refused.status).toBe(502);
    expect(refused.headers['x-ballast-error']).toBe('upstream_connect_failed');
    expect(h1Only.seen).toHaveLength(0);
    expect(await metrics(b.adminPort)).toContain(`ballast_upstream_attempts_total{upstream="pool",server="${h1Only.address}",outcome="connect-failure"} 1`);
  });

  it('reaches an HTTP/2-only origin over TLS (ALPN h2) with no connection-specific field, TE: trailers kept', async () => {
    const origin = await h2Origin(true);
    const b = await ballast(tlsConfig([origin.address], `{ servername: api.internal, ca: ${ca.certPath} }`, '    protocol: http2'));
    // Raw, since an HTTP client will not send Keep-Alive or Proxy-Connection itself.
    const answer = await sendRaw(b.port, 'GET /grpc HTTP/1.1\r\nHost: api.example\r\nTE: trailers\r\nConnection: close, x-drop\r\n'
      + 'Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nX-Drop: 1\r\nX-Keep: 1\r\n\r\n');
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(answer).toMatch(/h2 ok/);
    const seen = origin.seen[0]!;
    expect(seen).toMatchObject({ httpVersion: '2.0', servername: 'api.internal' });
    expect(seen.headers).toMatchObject({ ':method': 'GET', ':path': '/grpc', ':authority': 'api.example', te: 'trailers', 'x-keep': '1' });
    for (const name of ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host', 'x-drop']) expect(seen.headers[name]).toBeUndefined();
  });

  it('speaks h2c with prior knowledge to a clear-text HTTP/2 origin', async () => {
    const origin = await h2Origin(false);
    const b = await ballast(simpleConfig([origin.address], '    protocol: http2'));
    const res = await get(b.url('/h2c'), { method: 'POST', body: 'payload' });
    expect(res.status).toBe(200);
    expect(res.body).toBe('h2 ok');
    expect(origin.seen[0]).toMatchObject({ httpVersion: '2.0', headers: { ':method': 'POST', ':path': '/h2c', ':scheme': 'http' } });
    // A client's TE other than trailers is not forwarded (RFC 9113 §8.2.2).
    await get(b.url('/te'), { headers: { te: 'gzip' } });
    expect(origin.seen[1]!.headers.te).toBeUndefined();
  });

  it('hands the origin\'s response trailers to the exchange when the attempt completes', async () => {
    const origin = await h2Origin(false);
    const parsed = parseConfig(simpleConfig([origin.address], '    protocol: http2'), {});
    if (!parsed.ok) throw new Error('config');
    const upstream = new Upstream(parsed.config.upstreams[0]!, { clock: () => performance.now(), random: Math.random });
    onCleanup(() => upstream.destroy());
    const chunks: Buffer[] = [];
    const down = { write: (chunk: Buffer) => (chunks.push(chunk), true) } as unknown as Downstream;
    const owner: AttemptOwner = { down, uploading: false, holds: () => false, respond: () => undefined };
    const lease = upstream.lease(undefined, [])!;
    const attempt = new Attempt(owner, lease, 5000, performance.now());
    attempt.dispatch({ path: '/t', method: 'GET', headers: ['host', 'api.internal'], servername: lease.host.transport.dispatchServername });
    const end = await attempt.ended;
    lease.release();
    expect(Buffer.concat(chunks).toString()).toBe('h2 ok');
    expect(end).toEqual({ kind: 'complete', trailers: { 'grpc-status': '0', 'grpc-message': 'fine' } });
  });

  it('refuses a WebSocket handshake to an http2 upstream with 501', async () => {
    const origin = await h2Origin(false);
    const b = await ballast(simpleConfig([origin.address], '    protocol: http2'));
    const answer = await sendRaw(b.port, 'GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
    expect(answer).toMatch(/^HTTP\/1\.1 501 /);
    expect(answer).toContain('websocket_to_http2_upstream');
    expect(origin.seen).toHaveLength(0);
  });
});

describe('active health checks over TLS', () => {
  it('probe with the traffic\'s TLS settings: the right CA passes, another CA fails as a connect failure', async () => {
    const origin = await httpsOrigin();
    const check = '    health_check: { interval: 50ms, timeout: 2s, healthy_threshold: 1, unhealthy_threshold: 1 }';
    const good = await ballast(tlsConfig([origin.address], `{ servername: api.internal, ca: ${ca.certPath} }`, check));
    const host = good.ballast.upstreams.get('pool')!.hosts[0]!;
    await waitFor(() => !host.activeCheckFailed, { what: 'server healthy by a TLS probe' });
    expect((await get(good.url('/'))).status).toBe(200);

    const bad = await ballast(tlsConfig([origin.address], `{ servername: api.internal, ca: ${otherCa.certPath} }`, check.replace('interval', 'initial_state: healthy, interval')));
    const badHost = bad.ballast.upstreams.get('pool')!.hosts[0]!;
    await waitFor(() => badHost.activeCheckFailed, { what: 'server unhealthy by a TLS probe' });
    expect(await metrics(bad.adminPort)).toMatch(new RegExp(`ballast_health_check_failures_total\\{upstream="pool",server="${origin.address}",reason="connect"\\} [1-9]`));
  });

  it('a tcp check over TLS completes the handshake, and an http check over HTTP/2 speaks h2', async () => {
    const origin = await httpsOrigin();
    const tcp = await ballast(tlsConfig([origin.address], `{ ca: ${otherCa.certPath} }`, '    health_check: { type: tcp, interval: 50ms, initial_state: healthy, healthy_threshold: 1, unhealthy_threshold: 1 }'));
    const host = tcp.ballast.upstreams.get('pool')!.hosts[0]!;
    await waitFor(() => host.activeCheckFailed, { what: 'tcp check failed on an unverifiable certificate' });

    const h2 = await h2Origin(false);
    const b = await ballast(simpleConfig([h2.address], '    protocol: http2\n    health_check: { interval: 50ms, healthy_threshold: 1, unhealthy_threshold: 1 }'));
    const h2Host = b.ballast.upstreams.get('pool')!.hosts[0]!;
    await waitFor(() => !h2Host.activeCheckFailed, { what: 'h2c server healthy' });
    expect(h2.seen.some((s) => s.headers[':path'] === '/healthz')).toBe(true);
  });

  it('an http check over TLS with protocol: http2 fails a server that answers only HTTP/1.1, as the traffic would', async () => {
    const h1Only = await httpsOrigin();
    const h2 = await h2Origin(true);
    const check = '    protocol: http2\n    health_check: { interval: 50ms, initial_state: healthy, healthy_threshold: 1, unhealthy_threshold: 1 }';
    const b = await ballast(tlsConfig([h1Only.address, h2.address], `{ servername: api.internal, ca: ${ca.certPath} }`, check));
    const [h1Host, h2Host] = b.ballast.upstreams.get('pool')!.hosts;
    await waitFor(() => h1Host!.activeCheckFailed, { what: 'the HTTP/1.1-only server failed its check' });
    expect(h2Host!.activeCheckFailed).toBe(false);
    expect(h1Only.seen).toHaveLength(0);
    expect(b.logs.some((l) => typeof l.detail === 'string' && l.detail.includes('ALPN'))).toBe(true);
  });
});

describe('reload', () => {
  it('gives a server whose TLS settings changed new connections and a fresh health verdict', async () => {
    const origin = await httpsOrigin();
    const extra = '    retry: { attempts: 1 }\n    panic_threshold: 0%\n    outlier_detection: { consecutive_gateway_failures: 1, base_ejection_time: 60s, max_ejection_percent: 100% }';
    const config = (caPath: string) => {
      const r = parseConfig(tlsConfig([origin.address], `{ ca: ${caPath} }`, extra), {});
      if (!r.ok) throw new Error('config');
      return r.config;
    };
    const b = await ballast(tlsConfig([origin.address], `{ ca: ${otherCa.certPath} }`, extra));
    expect((await get(b.url('/'))).status).toBe(502);
    const hostNow = () => b.ballast.upstreams.get('pool')!.hosts[0]!;
    await waitFor(() => hostNow().state(performance.now()) === 'ejected', { what: 'server ejected after a failed handshake' });
    // The same TLS settings: the same server, still ejected.
    await b.ballast.reload(config(otherCa.certPath));
    expect((await get(b.url('/'))).status).toBe(503);
    const before = hostNow();
    // Another CA: reached another way, a changed server, whose ejection for the old settings is not carried over.
    await b.ballast.reload(config(ca.certPath));
    expect(hostNow().transport.identity).not.toBe(before.transport.identity);
    expect((await get(b.url('/'))).status).toBe(200);
  });
});

describe('config', () => {
  const upstream = (tls: string, protocol = ''): string => `
listeners: [{ name: web, listen: 127.0.0.1:0, routes: [{ upstream: api }] }]
upstreams:
  - name: api
    servers: [{ address: 127.0.0.1:1 }]${protocol}
    tls: ${tls}
`;
  const errorsOf = (text: string) => {
    const r = parseConfig(text, {});
    return r.ok ? [] : r.errors.map((e) => `${e.path}: ${e.message}`);
  };

  it('reads the PEM files at load, and names the key and the file of one that is missing or not PEM', () => {
    const ok = parseConfig(upstream(`{ ca: ${ca.certPath}, cert: ${client.certPath}, key: ${client.keyPath} }`, '\n    protocol: http2'), {});
    expect(ok.ok && ok.config.upstreams[0]!.tls?.ca?.pem).toBe(ca.cert);
    expect(ok.ok && ok.config.upstreams[0]!.protocol).toBe('http2');
    expect(errorsOf(upstream('{ ca: /nonexistent/ca.pem }'))).toEqual(['upstreams[0].tls.ca: cannot read /nonexistent/ca.pem: no such file or directory']);
    expect(errorsOf(upstream(`{ ca: ${client.keyPath} }`))).toEqual([`upstreams[0].tls.ca: ${client.keyPath}: no PEM certificate in it`]);
    expect(errorsOf(upstream(`{ cert: ${client.certPath}, key: ${client.certPath} }`))).toEqual([`upstreams[0].tls.key: ${client.certPath}: no PEM private key in it`]);
  });

  it('wants cert and key together, and the key of that certificate', () => {
    expect(errorsOf(upstream(`{ cert: ${client.certPath} }`))).toEqual(['upstreams[0].tls.key: a client certificate needs both cert and key']);
    expect(errorsOf(upstream(`{ cert: ${client.certPath}, key: ${server.keyPath} }`))).toEqual([`upstreams[0].tls.key: ${server.keyPath} is not the private key of the certificate in ${client.certPath}`]);
    expect(errorsOf(upstream('{ servername: "not a name" }'))[0]).toMatch(/^upstreams\[0\]\.tls\.servername: expected a host name/);
    expect(errorsOf(upstream('{}', '\n    protocol: http3'))[0]).toMatch(/^upstreams\[0\]\.protocol: /);
  });
});
