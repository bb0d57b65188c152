/**
 * #15: TLS termination with SNI, HTTP/2 to clients by ALPN and with prior knowledge, the HTTP/2 → HTTP/1.1
 * translation (RFC 9113 §8), mutual TLS, handshake metrics, and a graceful drain with GOAWAY. Real sockets throughout.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { constants, type ClientHttp2Session } from 'node:http2';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { connect as netConnect } from 'node:net';
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createCertificateAuthority, type CertificateAuthority, type Pem } from '../helpers/certs.js';
import { startOrigin, type Origin } from '../helpers/origin.js';
import { startBallast, type TestBallast } from '../helpers/ballast.js';
import { h2connect, h2request } from '../helpers/h2.js';
import { waitFor } from '../helpers/wait.js';
import { PREMATURE_RESET_MIN } from '../../src/proxy/http/http2-front.js';

let ca: CertificateAuthority;
let shop: Pem;
let other: Pem;
let clientCert: Pem;
let origin: Origin;

beforeAll(async () => {
  ca = createCertificateAuthority();
  shop = ca.issue(['shop.test', 'www.shop.test'], { file: 'shop' });
  other = ca.issue(['*.other.test'], { file: 'other' });
  clientCert = ca.issue(['client.test'], { clientAuth: true, file: 'client' });
  origin = await startOrigin('o1');
});

afterAll(async () => {
  await origin.close();
  ca.remove();
});

function tlsConfig(extra = '', http2 = ''): string {
  return `
admin: { listen: 127.0.0.1:0 }
logging: { level: info, access_log: true }
listeners:
  - name: web
    listen: 127.0.0.1:0
    tls:
      certificates:
        - { cert: ${shop.certPath}, key: ${shop.keyPath} }
        - { cert: ${other.certPath}, key: ${other.keyPath} }
${extra}
${http2}
    routes: [ { upstream: pool } ]
upstreams:
  - name: pool
    servers: [ { address: ${origin.address} } ]
`;
}

/** The certificate a TLS client is shown when it asks for `servername` (none: no SNI). */
async function certificateFor(port: number, servername?: string): Promise<PeerCertificate> {
  const socket = tlsConnect({ port, host: '127.0.0.1', ca: ca.cert, ...(servername === undefined ? {} : { servername }), rejectUnauthorized: false });
  await once(socket, 'secureConnect');
  const cert = socket.getPeerCertificate();
  socket.destroy();
  return cert;
}

function https1(port: number, path: string, servername: string, extra: { cert?: string; key?: string } = {}): Promise<{ status: number; body: string; alpn: string | false }> {
  return new Promise((resolve, reject) => {
    const options: RequestOptions & { ALPNProtocols: string[] } = { host: '127.0.0.1', port, path, servername, ca: ca.cert, ALPNProtocols: ['http/1.1'], agent: false, ...extra };
    const req = httpsRequest(options, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, alpn: (res.socket as unknown as { alpnProtocol: string | false }).alpnProtocol }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('TLS termination and HTTP/2 to clients', () => {
  let b: TestBallast;
  beforeAll(async () => {
    b = await startBallast(tlsConfig());
  });
  afterAll(() => b.stop());

  it('SNI picks the certificate whose names match, exact or wildcard; an unknown name or none gets the first', async () => {
    expect((await certificateFor(b.port, 'shop.test')).subject.CN).toBe('shop.test');
    expect((await certificateFor(b.port, 'WWW.Shop.Test')).subject.CN).toBe('shop.test');
    expect((await certificateFor(b.port, 'api.other.test')).subject.CN).toBe('*.other.test');
    // A wildcard stands for one label only (RFC 6125 §6.4.3).
    expect((await certificateFor(b.port, 'a.b.other.test')).subject.CN).toBe('shop.test');
    expect((await certificateFor(b.port, 'unknown.test')).subject.CN).toBe('shop.test');
    expect((await certificateFor(b.port)).subject.CN).toBe('shop.test');
  });

  it('proxies HTTP/2 chosen by ALPN, translating the request into HTTP/1.1 terms (RFC 9113 §8.3.1, §8.2.3)', async () => {
    const session = await h2connect(`https://127.0.0.1:${b.port}`, { ca: ca.cert, servername: 'shop.test' });
    try {
      expect(session.alpnProtocol).toBe('h2');
      const before = origin.received.length;
      const res = await h2request(session, { ':path': '/h2/path?q=1', ':authority': 'shop.test', cookie: ['a=1', 'b=2'], 'x-custom': 'yes' });
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body)).toMatchObject({ origin: 'o1', url: '/h2/path?q=1' });
      expect(res.headers['x-request-id']).toBeTypeOf('string');
      expect(res.headers.connection).toBeUndefined();
      const seen = origin.received[before]!;
      expect(seen.headers.host).toBe('shop.test');
      expect(seen.headers.cookie).toBe('a=1; b=2');
      expect(seen.headers['x-custom']).toBe('yes');
      expect(seen.headers['x-forwarded-proto']).toBe('https');
      expect(seen.headers.via).toBe('2 ballast');
      // A request body is streamed through and the response relayed.
      const post = await h2request(session, { ':path': '/upload', ':authority': 'shop.test' }, 'x'.repeat(100_000));
      expect(post.status).toBe(200);
      expect(JSON.parse(post.body)).toMatchObject({ method: 'POST', bodyBytes: 100_000 });
      // Many streams on one connection at once.
      const many = await Promise.all(Array.from({ length: 50 }, (_, i) => h2request(session, { ':path': `/many/${i}`, ':authority': 'shop.test' })));
      expect(many.every((r) => r.status === 200)).toBe(true);
    } finally {
      session.close();
    }
    await waitFor(() => b.logs.some((l) => l.kind === 'access' && l.url === '/h2/path?q=1'));
    const line = b.logs.find((l) => l.kind === 'access' && l.url === '/h2/path?q=1');
    expect(line).toMatchObject({ protocol: 'h2', tls: 'TLSv1.3', status: 200 });
  });

  it('proxies HTTP/1.1 chosen by ALPN on the same port', async () => {
    const res = await https1(b.port, '/one', 'shop.test');
    expect(res.status).toBe(200);
    expect(res.alpn).toBe('http/1.1');
    expect(JSON.parse(res.body)).toMatchObject({ url: '/one' });
  });

  it('refuses an HTTP/2 request whose Host names another authority than :authority, and CONNECT', async () => {
    const session = await h2connect(`https://127.0.0.1:${b.port}`, { ca: ca.cert, servername: 'shop.test' });
    try {
      const before = origin.received.length;
      const mismatch = await h2request(session, { ':path': '/x', ':authority': 'shop.test', host: 'evil.test' });
      expect(mismatch.status).toBe(400);
      expect(origin.received.length).toBe(before);
      const noRoute = await h2request(session, { ':path': '/ok', ':authority': 'shop.test' });
      expect(noRoute.status).toBe(200);
    } finally {
      session.close();
    }
  });

  it('counts handshakes by version and protocol, and failures by reason; exports certificate expiry', async () => {
    // Clear-text HTTP to the TLS port is no handshake.
    const plain = netConnect(b.port, '127.0.0.1');
    plain.on('error', () => {});
    plain.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await once(plain, 'close');
    const metrics = async () => (await fetch(`http://127.0.0.1:${b.adminPort}/metrics`)).text();
    await waitFor(async () => /ballast_tls_handshake_errors_total\{listener="web",reason="not_tls"\} [1-9]/.test(await metrics()));
    const text = await metrics();
    expect(text).toMatch(/ballast_tls_handshakes_total\{listener="web",version="TLSv1.3",protocol="h2"\} [1-9]/);
    expect(text).toMatch(/ballast_tls_handshakes_total\{listener="web",version="TLSv1.3",protocol="http\/1.1"\} [1-9]/);
    const expiry = /ballast_tls_certificate_expiry_seconds\{listener="web",name="shop.test"\} (\d+)/.exec(text);
    expect(expiry).not.toBeNull();
    const days = (Number(expiry![1]) - Date.now() / 1000) / 86_400;
    expect(days).toBeGreaterThan(28);
    expect(days).toBeLessThan(31);
    expect(text).toMatch(/ballast_tls_certificate_expiry_seconds\{listener="web",name="\*.other.test"\} \d+/);
    // No line per failed handshake at info level.
    expect(b.logs.filter((l) => typeof l.msg === 'string' && /handshake/i.test(l.msg))).toEqual([]);
  });
});

describe('TLS settings', () => {
  it('alpn: [http/1.1] turns HTTP/2 off; min_version: TLSv1.3 refuses TLS 1.2', async () => {
    const b = await startBallast(tlsConfig('      alpn: [http/1.1]\n      min_version: TLSv1.3'));
    try {
      const res = await https1(b.port, '/only-h1', 'shop.test');
      expect(res.status).toBe(200);
      await expect(h2connect(`https://127.0.0.1:${b.port}`, { ca: ca.cert, servername: 'shop.test' }).then((s) => {
        const alpn = s.alpnProtocol;
        s.destroy();
        return alpn;
      })).rejects.toThrow();
      const old = tlsConnect({ port: b.port, host: '127.0.0.1', ca: ca.cert, servername: 'shop.test', maxVersion: 'TLSv1.2' });
      const [err] = (await once(old, 'error')) as [Error];
      expect(err.message).toMatch(/version|alert/i);
    } finally {
      await b.stop();
    }
  });

  it('mutual TLS: a client without a certificate from client_ca is refused, one with it is served', async () => {
    const b = await startBallast(tlsConfig(`      client_ca: ${ca.certPath}`));
    try {
      await expect(https1(b.port, '/anon', 'shop.test')).rejects.toThrow();
      const ok = await https1(b.port, '/mtls', 'shop.test', { cert: clientCert.cert, key: clientCert.key });
      expect(ok.status).toBe(200);
      const stranger = createCertificateAuthority('Stranger CA');
      try {
        const foreign = stranger.issue(['client.test'], { clientAuth: true });
        await expect(https1(b.port, '/foreign', 'shop.test', { cert: foreign.cert, key: foreign.key })).rejects.toThrow();
      } finally {
        stranger.remove();
      }
      const text = await (await fetch(`http://127.0.0.1:${b.adminPort}/metrics`)).text();
      expect(text).toMatch(/ballast_tls_handshake_errors_total\{listener="web",reason="(no_client_certificate|bad_client_certificate)"\} [1-9]/);
    } finally {
      await b.stop();
    }
  });

  it('a missing or mismatched certificate file is a config error naming its key and path', async () => {
    await expect(startBallast(tlsConfig().replace(shop.certPath, '/nonexistent/cert.pem'))).rejects.toThrow(/listeners\[0\]\.tls\.certificates\[0\]\.cert.*cannot read \/nonexistent\/cert\.pem/);
    await expect(startBallast(tlsConfig().replace(shop.keyPath, other.keyPath))).rejects.toThrow(/certificates\[0\]\.key.*does not go with/);
  });
});

describe('HTTP/2 in clear text', () => {
  it('with http2.cleartext, prior knowledge is HTTP/2 and anything else HTTP/1.1 on the same port', async () => {
    const b = await startBallast(`
admin: { listen: 127.0.0.1:0 }
listeners:
  - name: web
    listen: 127.0.0.1:0
    http2: { cleartext: true }
    routes: [ { upstream: pool } ]
upstreams:
  - name: pool
    servers: [ { address: ${origin.address} } ]
`);
    try {
      const session = await h2connect(`http://127.0.0.1:${b.port}`);
      const res = await h2request(session, { ':path': '/h2c' });
      session.close();
      expect(res.status).toBe(200);
      expect(origin.received.at(-1)!.headers.via).toBe('2 ballast');
      const h1 = await fetch(`http://127.0.0.1:${b.port}/h1`);
      expect(h1.status).toBe(200);
      expect(origin.received.at(-1)!.headers.via).toBe('1.1 ballast');
    } finally {
      await b.stop();
    }
  });

  it('without it, a clear-text listener does not speak HTTP/2', async () => {
    const b = await startBallast(`
admin: { listen: 127.0.0.1:0 }
listeners: [ { name: web, listen: 127.0.0.1:0, routes: [ { upstream: pool } ] } ]
upstreams: [ { name: pool, servers: [ { address: ${origin.address} } ] } ]
`);
    try {
      const session = await h2connect(`http://127.0.0.1:${b.port}`);
      await expect(h2request(session, { ':path': '/nope' })).rejects.toThrow();
      session.destroy();
    } finally {
      await b.stop();
    }
  });
});

describe('HTTP/2 under attack and at shutdown', () => {
  it('rapid reset (CVE-2023-44487): a client that cancels streams as fast as it opens them gets GOAWAY; others are served', async () => {
    const slow = await startOrigin('slow');
    slow.handler = (_req, res) => setTimeout(() => res.end('late'), 200);
    const b = await startBallast(tlsConfig().replace(origin.address, slow.address));
    try {
      const victim = await h2connect(`https://127.0.0.1:${b.port}`, { ca: ca.cert, servername: 'shop.test' });
      // The attacker runs in a process of its own, as it would.
      const child = spawn(process.execPath, [join(import.meta.dirname, '..', 'helpers', 'rapid-reset-client.mjs'), '127.0.0.1', String(b.port), ca.cert, 'shop.test', '1000']);
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      await once(child, 'exit');
      const seen = JSON.parse(out) as { goaway: number | null; opened: number };
      expect(seen.goaway).toBe(constants.NGHTTP2_ENHANCE_YOUR_CALM);
      // Cut off long before its thousand streams; the streams after the GOAWAY were refused and never became requests.
      const requests = () => b.logs.filter((l) => typeof l.url === 'string' && l.url.startsWith('/rr/')).length;
      await waitFor(() => requests() >= PREMATURE_RESET_MIN);
      expect(requests()).toBeLessThan(PREMATURE_RESET_MIN * 2);
      const ok = await h2request(victim, { ':path': '/victim', ':authority': 'shop.test' });
      expect(ok.status).toBe(200);
      victim.close();
      const text = await (await fetch(`http://127.0.0.1:${b.adminPort}/metrics`)).text();
      expect(text).toMatch(/ballast_http2_rapid_reset_total\{listener="web"\} 1/);
      // Far fewer than the streams opened reached the origin (each cancelled stream aborts its upstream request).
      expect(slow.received.filter((r) => r.url.startsWith('/rr/')).length).toBeLessThan(PREMATURE_RESET_MIN * 2);
    } finally {
      await b.stop();
      await slow.close();
    }
  });

  it('a client that cancels an ordinary request now and then is not cut off', async () => {
    const b = await startBallast(tlsConfig());
    try {
      const session: ClientHttp2Session = await h2connect(`https://127.0.0.1:${b.port}`, { ca: ca.cert, servername: 'shop.test' });
      for (let i = 0; i < 150; i++) {
        if (i % 5 === 0) {
          const s = session.request({ ':path': `/cancel/${i}`, ':authority': 'shop.test' });
          s.on('error', () => {});
          s.close(constants.NGHTTP2_CANCEL);
        } else expect((await h2request(session, { ':path': `/fine/${i}`, ':authority': 'shop.test' })).status).toBe(200);
      }
      expect(session.destroyed).toBe(false);
      session.close();
    } finally {
      await b.stop();
    }
  });

  it('client.request_timeout bounds a stream whose body trickles in under body_timeout: 408, the upstream request aborted', async () => {
    const sink = await startOrigin('sink');
    // Whether a request the origin was sent closed before its body was all there: Ballast gave up on it.
    let aborted = false;
    sink.server.on('request', (req: IncomingMessage) => req.on('close', () => (aborted ||= !req.complete)));
    const b = await startBallast(tlsConfig('', '    client: { headers_timeout: 400ms, request_timeout: 400ms, body_timeout: 10s }').replace(origin.address, sink.address));
    try {
      const session = await h2connect(`https://127.0.0.1:${b.port}`, { ca: ca.cert, servername: 'shop.test' });
      // A byte every 100 ms: never silent for body_timeout, never done.
      const started = Date.now();
      const stream = session.request({ ':method': 'POST', ':path': '/upload', ':authority': 'shop.test' });
      const drip = setInterval(() => stream.write('x'), 100);
      const [head] = (await once(stream, 'response')) as [Record<string, string | number>];
      clearInterval(drip);
      const waited = Date.now() - started;
      expect(head[':status']).toBe(408);
      expect(head['x-ballast-error']).toBe('client_timeout');
      expect(waited).toBeGreaterThanOrEqual(350);
      expect(waited).toBeLessThan(3000);
      stream.on('error', () => {});
      stream.resume();
      await once(stream, 'close');
      await waitFor(() => aborted, { what: () => 'the upstream request to be aborted' });
      expect(sink.received).toHaveLength(1);
      // A body sent in time, and a GET, are untouched by it.
      expect(JSON.parse((await h2request(session, { ':path': '/upload', ':authority': 'shop.test' }, 'all of it')).body)).toMatchObject({ bodyBytes: 9 });
      expect((await h2request(session, { ':path': '/get', ':authority': 'shop.test' })).status).toBe(200);
      session.close();
    } finally {
      await b.stop();
      await sink.close();
    }
  });

  it('an idle session is closed after keep_alive_timeout; one with a stream still open is not', async () => {
    const slow = await startOrigin('slow-keepalive');
    slow.handler = (req, res) => (req.url === '/slow' ? setTimeout(() => res.end('finished'), 900) : res.end('ok'));
    const b = await startBallast(tlsConfig('', '    client: { keep_alive_timeout: 300ms }').replace(origin.address, slow.address));
    try {
      const idle = await h2connect(`https://127.0.0.1:${b.port}`, { ca: ca.cert, servername: 'shop.test' });
      const busy = await h2connect(`https://127.0.0.1:${b.port}`, { ca: ca.cert, servername: 'shop.test' });
      expect((await h2request(idle, { ':path': '/quick', ':authority': 'shop.test' })).status).toBe(200);
      const idleSince = Date.now();
      const idleGone = once(idle, 'goaway');
      // The busy session's one stream outlasts the timeout several times over: it must not be closed under it.
      const inflight = h2request(busy, { ':path': '/slow', ':authority': 'shop.test' });
      let busyGoaway = false;
      busy.on('goaway', () => (busyGoaway = true));
      await idleGone;
      const waited = Date.now() - idleSince;
      expect(waited).toBeGreaterThanOrEqual(250);
      expect(waited).toBeLessThan(2000);
      const res = await inflight;
      expect(res.body).toBe('finished');
      expect(busyGoaway).toBe(false);
      // Idle now, it goes too.
      await once(busy, 'goaway');
      idle.destroy();
      busy.destroy();
    } finally {
      await b.stop();
      await slow.close();
    }
  });

  it('graceful shutdown sends GOAWAY and lets the streams in flight finish', async () => {
    const slow = await startOrigin('slow');
    slow.handler = (_req, res) => setTimeout(() => res.end('finished'), 300);
    const b = await startBallast(tlsConfig().replace(origin.address, slow.address));
    const session = await h2connect(`https://127.0.0.1:${b.port}`, { ca: ca.cert, servername: 'shop.test' });
    const goaway = once(session, 'goaway');
    const inflight = h2request(session, { ':path': '/slow', ':authority': 'shop.test' });
    await waitFor(() => slow.received.length === 1);
    const stopping = b.ballast.stop(5000);
    await goaway;
    const res = await inflight;
    expect(res.status).toBe(200);
    expect(res.body).toBe('finished');
    await stopping;
    await slow.close();
  });
});
