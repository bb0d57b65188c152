/**
 * TLS passthrough routed by SNI, end to end over real sockets: a whole Ballast with one tcp listener in front of TLS
 * origins, each with its own certificate from a throw-away CA. A client that completes a TLS handshake verified
 * against the origin's certificate, and reads the origin's name over it, proves the bytes went through untouched.
 */
import { once } from 'node:events';
import { connect as netConnect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { connect as tlsConnect, createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { logStartupSummary } from '../../src/startup-summary.js';
import { freePort, startBallast, type TestBallast } from '../helpers/ballast.js';
import { createCertificateAuthority, type CertificateAuthority, type Pem } from '../helpers/certs.js';
import { waitFor } from '../helpers/wait.js';
import { endedWithin } from './helpers.js';

interface TlsOrigin {
  readonly address: string;
  /** Connections whose TLS handshake completed. */
  handshakes: number;
  /** With `proxyHeader`: the PROXY header bytes each connection started with. */
  readonly proxyHeaders: Buffer[];
  close(): Promise<void>;
}

/**
 * A TLS origin on `host` that writes `<name>\n` and closes once the handshake is done. With `proxyHeader`, a
 * plain TCP server first takes a PROXY v2 header off each connection (framed by hand), then runs TLS on the rest.
 */
async function startTlsOrigin(name: string, host: string, pem: Pem, options: { proxyHeader?: boolean } = {}): Promise<TlsOrigin> {
  const proxyHeaders: Buffer[] = [];
  const sockets = new Set<Socket>();
  const tls = createTlsServer({ cert: pem.cert, key: pem.key }, (socket) => {
    origin.handshakes++;
    socket.on('error', () => {});
    socket.end(`${name}\n`);
  });
  tls.on('tlsClientError', () => {});
  const server: Server = options.proxyHeader
    ? createServer((socket) => {
      let buf = Buffer.alloc(0);
      const onData = (chunk: Buffer): void => {
        buf = Buffer.concat([buf, chunk]);
        if (buf.length < 16 || buf.length < 16 + buf.readUInt16BE(14)) return;
        socket.off('data', onData);
        const length = 16 + buf.readUInt16BE(14);
        proxyHeaders.push(buf.subarray(0, length));
        tls.emit('connection', rest(socket, buf.subarray(length)));
      };
      socket.on('data', onData);
    })
    : tls;
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const origin: TlsOrigin = {
    address: `${host}:${(server.address() as AddressInfo).port}`,
    handshakes: 0,
    proxyHeaders,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return origin;
}

/** A stream that yields `first`, then the rest of `socket`: what a TLS server reads after a PROXY header. */
function rest(socket: Socket, first: Buffer): Duplex {
  const duplex = new Duplex({
    read: () => socket.resume(),
    write: (chunk: Buffer, _enc, cb) => socket.write(chunk, cb),
    final: (cb) => socket.end(cb),
    destroy: (err, cb) => {
      socket.destroy();
      cb(err);
    },
  });
  if (first.length > 0) duplex.push(first);
  socket.on('data', (c: Buffer) => {
    if (!duplex.push(c)) socket.pause();
  });
  socket.on('end', () => duplex.push(null));
  socket.on('close', () => duplex.destroy());
  return duplex;
}

let ca: CertificateAuthority;
let certs: { web: Pem; api: Pem; fallback: Pem };
const cleanup: (() => Promise<void>)[] = [];

beforeAll(() => {
  ca = createCertificateAuthority();
  certs = { web: ca.issue(['*.example.com']), api: ca.issue(['api.example.com']), fallback: ca.issue(['127.0.0.1']) };
});

afterAll(() => ca.remove());

afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function origin(name: string, host: string, pem: Pem, options?: { proxyHeader?: boolean }): Promise<TlsOrigin> {
  const o = await startTlsOrigin(name, host, pem, options);
  cleanup.push(() => o.close());
  return o;
}

async function ballast(yaml: string): Promise<TestBallast> {
  const b = await startBallast(yaml);
  cleanup.push(() => b.stop());
  return b;
}

/** Three origins: web (*.example.com) on 127.0.0.2, api on 127.0.0.3, fallback on 127.0.0.1. */
async function threeOrigins(): Promise<{ web: TlsOrigin; api: TlsOrigin; fallback: TlsOrigin }> {
  return {
    web: await origin('web', '127.0.0.2', certs.web),
    api: await origin('api', '127.0.0.3', certs.api),
    fallback: await origin('fallback', '127.0.0.1', certs.fallback),
  };
}

function config(o: { web: TlsOrigin; api: TlsOrigin; fallback: TlsOrigin }, listenerExtra = '    upstream: default-tls', upstreamExtra = ''): string {
  return `
admin: { listen: 127.0.0.1:0 }
listeners:
  - name: edge-tls
    protocol: tcp
    listen: 127.0.0.1:0
    preread_timeout: 300ms
    routes:
      - { match: { sni: "*.example.com" }, upstream: web-tls }
      - { match: { sni: "API.example.com" }, upstream: api-tls }
${listenerExtra}
upstreams:
  - name: web-tls
    servers: [ ${upstreamExtra}{ address: "${o.web.address}" } ]
  - name: api-tls
    servers: [ { address: "${o.api.address}" } ]
  - name: default-tls
    servers: [ { address: "${o.fallback.address}" } ]
`;
}

/**
 * A TLS client through Ballast: the handshake is verified against the test CA for `servername` (or, without one,
 * for 127.0.0.1); resolves with what the origin wrote.
 */
async function tlsThrough(port: number, servername: string | undefined, socket?: Socket): Promise<{ reply: string; peer: string }> {
  const client: TLSSocket = tlsConnect({
    ...(socket === undefined ? { host: '127.0.0.1', port } : { socket }),
    ca: ca.cert,
    // Without a name node:tls sends no SNI, and checks the certificate against the host.
    servername: servername ?? '',
    ...(servername === undefined && { checkServerIdentity: () => undefined }),
  });
  const chunks: Buffer[] = [];
  client.on('data', (c: Buffer) => chunks.push(c));
  await once(client, 'secureConnect');
  expect(client.authorized).toBe(true);
  const peer = String(client.getPeerCertificate().subject.CN);
  await once(client, 'end');
  client.destroy();
  return { reply: Buffer.concat(chunks).toString(), peer };
}

async function metrics(b: TestBallast): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${b.adminPort}/metrics`);
  return res.text();
}

async function rawClient(port: number): Promise<Socket> {
  const s = netConnect({ port, host: '127.0.0.1' });
  s.on('error', () => {});
  await once(s, 'connect');
  return s;
}

describe('tcp listener routes by SNI (TLS passthrough)', () => {
  it('a.example.com reaches the wildcard route, api.example.com its exact route, each with its origin\'s certificate', async () => {
    const o = await threeOrigins();
    const b = await ballast(config(o));
    logStartupSummary(b.ballast.log, b.ballast);
    expect(b.logs.find((l) => l.kind === 'startup' && l.listener === 'edge-tls')?.msg)
      .toBe(`listener edge-tls: tcp 127.0.0.1:${b.port}, TLS passthrough (sni *.example.com → web-tls, sni api.example.com → api-tls, otherwise → default-tls)`);
    expect(await tlsThrough(b.port, 'a.example.com')).toEqual({ reply: 'web\n', peer: '*.example.com' });
    expect(await tlsThrough(b.port, 'api.example.com')).toEqual({ reply: 'api\n', peer: 'api.example.com' });
    expect(await tlsThrough(b.port, 'B.Example.COM')).toEqual({ reply: 'web\n', peer: '*.example.com' });
    expect([o.web.handshakes, o.api.handshakes, o.fallback.handshakes]).toEqual([2, 1, 0]);
    const text = await metrics(b);
    expect(text).toContain('ballast_tcp_sni_total{listener="edge-tls",result="matched"} 3');
    await waitFor(() => b.logs.filter((l) => l.kind === 'access').length >= 3, { what: 'three access lines' });
    expect(b.logs.filter((l) => l.kind === 'access').map((l) => [l.sni, l.upstream, l.end])).toEqual([
      ['a.example.com', 'web-tls', 'done'],
      ['api.example.com', 'api-tls', 'done'],
      ['b.example.com', 'web-tls', 'done'],
    ]);
  });

  it('no SNI, and a name no route matches, go to the listener\'s upstream', async () => {
    const o = await threeOrigins();
    const b = await ballast(config(o));
    expect(await tlsThrough(b.port, undefined)).toEqual({ reply: 'fallback\n', peer: '127.0.0.1' });
    // Two labels under example.com: the one-label wildcard does not match, so the default takes it.
    const deep = tlsConnect({ host: '127.0.0.1', port: b.port, servername: 'x.y.example.com', ca: ca.cert, checkServerIdentity: () => undefined });
    deep.on('error', () => {});
    await once(deep, 'secureConnect');
    expect(String(deep.getPeerCertificate().subject.CN)).toBe('127.0.0.1');
    deep.destroy();
    const text = await metrics(b);
    expect(text).toContain('ballast_tcp_sni_total{listener="edge-tls",result="no_sni"} 1');
    expect(text).toContain('ballast_tcp_sni_total{listener="edge-tls",result="default"} 1');
  });

  it('without a default upstream, a name no route matches is closed, before any origin hears of it', async () => {
    const o = await threeOrigins();
    const b = await ballast(config(o, ''));
    const client = tlsConnect({ host: '127.0.0.1', port: b.port, servername: 'other.org', ca: ca.cert });
    const failed = once(client, 'error');
    const [err] = (await failed) as [NodeJS.ErrnoException];
    expect(err.code).toMatch(/ECONNRESET|EPIPE|ERR_SSL|ECONNABORTED/);
    expect(o.web.handshakes + o.api.handshakes + o.fallback.handshakes).toBe(0);
    expect(await metrics(b)).toContain('ballast_tcp_sni_total{listener="edge-tls",result="no_match"} 1');
    await waitFor(() => b.logs.some((l) => l.kind === 'access' && l.end === 'no-route'), { what: 'a no-route access line' });
  });

  it('bytes that are not TLS are closed at once', async () => {
    const o = await threeOrigins();
    const b = await ballast(config(o));
    const s = await rawClient(b.port);
    s.write('GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n');
    await endedWithin(s, 5000);
    expect(o.web.handshakes + o.api.handshakes + o.fallback.handshakes).toBe(0);
    expect(await metrics(b)).toContain('ballast_tcp_sni_total{listener="edge-tls",result="not_tls"} 1');
    expect(await metrics(b)).toContain('ballast_tcp_connections_closed_total{listener="edge-tls",end="not-tls"} 1');
  });

  it('a slowloris that sends half a ClientHello is cut at preread_timeout', async () => {
    const o = await threeOrigins();
    const b = await ballast(config(o));
    const s = await rawClient(b.port);
    const started = performance.now();
    // A handshake record announcing 200 bytes, then a ClientHello header, and nothing more.
    s.write(Buffer.from([22, 3, 1, 0, 200, 1, 0, 0, 196, 3, 3]));
    await endedWithin(s, 10_000);
    // A timer never fires early; 300ms is the configured preread_timeout.
    expect(performance.now() - started).toBeGreaterThanOrEqual(250);
    expect(await metrics(b)).toContain('ballast_tcp_sni_total{listener="edge-tls",result="timeout"} 1');
    await waitFor(() => b.logs.some((l) => l.kind === 'access' && l.end === 'preread-timeout'), { what: 'a preread-timeout access line' });
  });

  it('a reload changes the routes for new connections: the default upstream removed, no-SNI clients are closed', async () => {
    const o = await threeOrigins();
    const b = await ballast(config(o));
    expect((await tlsThrough(b.port, undefined)).reply).toBe('fallback\n');
    const next = parseConfig(config(o, ''), {});
    if (!next.ok) throw new Error('bad test config');
    await b.ballast.reload(next.config);
    expect((await tlsThrough(b.port, 'api.example.com')).reply).toBe('api\n');
    const client = tlsConnect({ host: '127.0.0.1', port: b.port, servername: '', ca: ca.cert, checkServerIdentity: () => undefined });
    await once(client, 'error');
    expect(o.fallback.handshakes).toBe(1);
    // The same series, carried on across the reload.
    expect(await metrics(b)).toContain('ballast_tcp_sni_total{listener="edge-tls",result="no_sni"} 2');
  });

  it('fails over to the next server of the route\'s upstream when a connect is refused', async () => {
    const o = await threeOrigins();
    const dead = await freePort();
    const b = await ballast(config(o, '    upstream: default-tls\n    connect_attempts: 2', `{ address: "127.0.0.1:${dead}" }, `));
    for (let i = 0; i < 4; i++) expect((await tlsThrough(b.port, 'www.example.com')).reply).toBe('web\n');
    expect(await metrics(b)).toMatch(new RegExp(`ballast_tcp_connect_failures_total\\{upstream="web-tls",server="127.0.0.1:${dead}"\\} [1-9]`));
  });
});

describe('SNI routing behind and in front of the PROXY protocol', () => {
  /** A PROXY v2 header for TCP over IPv4, laid out by hand (spec §2.2). */
  function proxyV2(src: string, dst: string, srcPort: number, dstPort: number): Buffer {
    const header = Buffer.alloc(28);
    Buffer.from('0d0a0d0a000d0a515549540a', 'hex').copy(header);
    header[12] = 0x21;
    header[13] = 0x11;
    header.writeUInt16BE(12, 14);
    Buffer.from(src.split('.').map(Number)).copy(header, 16);
    Buffer.from(dst.split('.').map(Number)).copy(header, 20);
    header.writeUInt16BE(srcPort, 24);
    header.writeUInt16BE(dstPort, 26);
    return header;
  }

  it('reads the PROXY header, then the ClientHello, and sends a PROXY header of its own before the replayed ClientHello', async () => {
    const web = await origin('web', '127.0.0.2', certs.web, { proxyHeader: true });
    const api = await origin('api', '127.0.0.3', certs.api, { proxyHeader: true });
    const fallback = await origin('fallback', '127.0.0.1', certs.fallback, { proxyHeader: true });
    const b = await ballast(config({ web, api, fallback }, '    upstream: default-tls\n    accept_proxy_protocol: true\n    send_proxy_protocol: v2'));
    for (const [name, expected] of [['api.example.com', 'api\n'], ['a.example.com', 'web\n']] as const) {
      const raw = await rawClient(b.port);
      // The header and the ClientHello may share a segment: written before the TLS client starts.
      raw.write(proxyV2('203.0.113.7', '192.0.2.1', 5555, 443));
      expect((await tlsThrough(b.port, name, raw)).reply).toBe(expected);
    }
    for (const o of [api, web]) {
      expect(o.proxyHeaders).toHaveLength(1);
      const h = o.proxyHeaders[0]!;
      expect([...h.subarray(16, 20)].join('.')).toBe('203.0.113.7');
      expect(h.readUInt16BE(24)).toBe(5555);
    }
    expect(fallback.proxyHeaders).toHaveLength(0);
  });
});
