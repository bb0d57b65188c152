/**
 * #15: gRPC through Ballast, @grpc/grpc-js on both ends: an HTTP/2 client over TLS, Ballast, `protocol: http2`
 * upstreams over TLS. Status, messages and trailing metadata intact; bidirectional streaming; a killed origin gives
 * UNAVAILABLE and the next call goes to another server; proxy-made errors are gRPC statuses; `grpc-timeout` is the
 * request's deadline; a call is never replayed once its bytes were sent.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { createCertificateAuthority, type CertificateAuthority, type Pem } from '../helpers/certs.js';
import { startBallast, type TestBallast } from '../helpers/ballast.js';
import { h2connect, h2request } from '../helpers/h2.js';
import { waitFor } from '../helpers/wait.js';

const raw = { serialize: (b: Buffer) => b, deserialize: (b: Buffer) => b };
const SERVICE = {
  unary: { path: '/test.Echo/Unary', requestStream: false, responseStream: false, requestSerialize: raw.serialize, requestDeserialize: raw.deserialize, responseSerialize: raw.serialize, responseDeserialize: raw.deserialize },
  chat: { path: '/test.Echo/Chat', requestStream: true, responseStream: true, requestSerialize: raw.serialize, requestDeserialize: raw.deserialize, responseSerialize: raw.serialize, responseDeserialize: raw.deserialize },
} satisfies grpc.ServiceDefinition;

interface EchoClient extends grpc.Client {
  unary(message: Buffer, metadata: grpc.Metadata, options: grpc.CallOptions, callback: (err: grpc.ServiceError | null, value?: Buffer) => void): grpc.ClientUnaryCall;
  chat(metadata?: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<Buffer, Buffer>;
}
const EchoClient = grpc.makeGenericClientConstructor(SERVICE, 'Echo') as unknown as new (address: string, credentials: grpc.ChannelCredentials, options?: grpc.ClientOptions) => EchoClient;

interface GrpcOrigin {
  readonly name: string;
  readonly address: string;
  calls: number;
  stop(): Promise<void>;
}

let ca: CertificateAuthority;
let edge: Pem;
let originCert: Pem;

beforeAll(() => {
  ca = createCertificateAuthority();
  edge = ca.issue(['grpc.test'], { file: 'edge' });
  originCert = ca.issue(['origin.internal'], { file: 'origin' });
});
afterAll(() => ca.remove());

/** A gRPC server over TLS that echoes, says its name in trailing metadata, and fails on request. */
async function startGrpcOrigin(name: string): Promise<GrpcOrigin> {
  const server = new grpc.Server();
  const origin = { name, address: '', calls: 0 } as GrpcOrigin & { address: string };
  server.addService(SERVICE, {
    unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      origin.calls++;
      const text = call.request.toString();
      if (text === 'not-found') return callback({ code: grpc.status.NOT_FOUND, details: 'no such thing' });
      if (text === 'slow') {
        setTimeout(() => callback(null, Buffer.from('late')), 3000);
        return;
      }
      const trailer = new grpc.Metadata();
      trailer.set('x-served-by', name);
      callback(null, Buffer.from(`${name}:${text}`), trailer);
    },
    chat: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      origin.calls++;
      call.on('data', (m: Buffer) => call.write(Buffer.from(`${name}:${m.toString()}`)));
      call.on('end', () => {
        const trailer = new grpc.Metadata();
        trailer.set('x-served-by', name);
        call.end(trailer);
      });
    },
  });
  const credentials = grpc.ServerCredentials.createSsl(null, [{ private_key: Buffer.from(originCert.key), cert_chain: Buffer.from(originCert.cert) }], false);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', credentials, (err, p) => (err ? reject(err) : resolve(p))));
  origin.address = `127.0.0.1:${port}`;
  origin.stop = () => new Promise<void>((resolve) => {
    server.forceShutdown();
    resolve();
  });
  return origin;
}

function config(origins: readonly GrpcOrigin[], upstreamExtra = ''): string {
  return `
admin: { listen: 127.0.0.1:0 }
logging: { level: info, access_log: true }
listeners:
  - name: grpc
    listen: 127.0.0.1:0
    tls: { certificates: [ { cert: ${edge.certPath}, key: ${edge.keyPath} } ] }
    routes: [ { upstream: backends } ]
upstreams:
  - name: backends
    protocol: http2
    tls: { servername: origin.internal, ca: ${ca.certPath} }
    servers:
${origins.map((o) => `      - { address: ${o.address} }`).join('\n')}
${upstreamExtra}
`;
}

function client(b: TestBallast): EchoClient {
  return new EchoClient(`127.0.0.1:${b.port}`, grpc.credentials.createSsl(Buffer.from(ca.cert)), { 'grpc.ssl_target_name_override': 'grpc.test', 'grpc.default_authority': 'grpc.test' });
}

function unary(c: EchoClient, text: string, deadlineMs = 10_000): Promise<{ value?: Buffer; err?: grpc.ServiceError; trailers?: grpc.Metadata }> {
  return new Promise((resolve) => {
    let trailers: grpc.Metadata | undefined;
    const call = c.unary(Buffer.from(text), new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (err, value) => {
      // The status (with its trailing metadata) comes after the callback; wait for it.
      setImmediate(() => resolve({ ...(value === undefined ? {} : { value }), ...(err === null ? {} : { err }), ...(trailers === undefined ? {} : { trailers }) }));
    });
    call.on('status', (s: grpc.StatusObject) => (trailers = s.metadata));
  });
}

describe('gRPC through Ballast', () => {
  let origins: GrpcOrigin[];
  let b: TestBallast;
  let c: EchoClient;
  beforeAll(async () => {
    origins = [await startGrpcOrigin('alpha'), await startGrpcOrigin('beta')];
    b = await startBallast(config(origins));
    c = client(b);
  });
  afterAll(async () => {
    c.close();
    await b.stop();
    for (const o of origins) await o.stop();
  });

  it('a unary call: message, status and trailing metadata intact, balanced over the servers', async () => {
    const served = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const r = await unary(c, `hello-${i}`);
      expect(r.err).toBeUndefined();
      const [who, text] = r.value!.toString().split(':');
      expect(text).toBe(`hello-${i}`);
      expect(r.trailers!.get('x-served-by')).toEqual([who]);
      served.add(who!);
    }
    expect(served).toEqual(new Set(['alpha', 'beta']));
    // Access lines go out in batches (50 ms at most).
    await waitFor(() => b.logs.some((l) => l.kind === 'access' && l.url === '/test.Echo/Unary'));
    expect(b.logs.find((l) => l.kind === 'access' && l.url === '/test.Echo/Unary')).toMatchObject({ protocol: 'h2', tls: 'TLSv1.3', status: 200 });
  });

  it('an error status from the server reaches the client as it was sent', async () => {
    const r = await unary(c, 'not-found');
    expect(r.err?.code).toBe(grpc.status.NOT_FOUND);
    expect(r.err?.details).toBe('no such thing');
  });

  it('bidirectional streaming: every message echoed in order, then the status and trailers', async () => {
    const call = c.chat();
    const got: string[] = [];
    call.on('data', (m: Buffer) => got.push(m.toString()));
    const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    call.on('error', () => {});
    for (let i = 0; i < 200; i++) call.write(Buffer.from(`m${i}`.padEnd(2000, '.')));
    await waitFor(() => got.length >= 100, { what: () => `echoes while the client still streams (${got.length})` });
    call.end();
    const s = await status;
    expect(s.code).toBe(grpc.status.OK);
    expect(got.length).toBe(200);
    const who = got[0]!.split(':')[0];
    expect(got.map((m) => m.split(':')[1]!.replace(/\.+$/, ''))).toEqual(Array.from({ length: 200 }, (_, i) => `m${i}`));
    expect(s.metadata.get('x-served-by')).toEqual([who]);
  });
});

describe('gRPC and the client timeouts', () => {
  it('a streaming call may last longer than client.request_timeout: its deadline is its own grpc-timeout', async () => {
    const origin = await startGrpcOrigin('long');
    const b = await startBallast(config([origin]).replace('    routes:', '    client: { headers_timeout: 300ms, request_timeout: 300ms }\n    routes:'));
    const c = client(b);
    try {
      const call = c.chat();
      const got: string[] = [];
      call.on('data', (m: Buffer) => got.push(m.toString()));
      const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
      call.on('error', () => {});
      // Eight messages 100 ms apart: the request stays open well past 300 ms.
      for (let i = 0; i < 8; i++) {
        call.write(Buffer.from(`m${i}`));
        await new Promise((r) => setTimeout(r, 100));
      }
      call.end();
      expect((await status).code).toBe(grpc.status.OK);
      expect(got).toHaveLength(8);
    } finally {
      c.close();
      await b.stop();
      await origin.stop();
    }
  });
});

describe('gRPC failures', () => {
  it('a killed origin gives UNAVAILABLE (no retries configured) and the next call goes to another server', async () => {
    const origins = [await startGrpcOrigin('alpha'), await startGrpcOrigin('beta')];
    const b = await startBallast(config(origins, '    retry: { attempts: 1 }'));
    const c = client(b);
    try {
      expect((await unary(c, 'warm')).err).toBeUndefined();
      await origins[0]!.stop();
      const results = [];
      for (let i = 0; i < 4; i++) results.push(await unary(c, `after-${i}`));
      const failed = results.filter((r) => r.err !== undefined);
      expect(failed.length).toBeGreaterThanOrEqual(1);
      for (const f of failed) expect(f.err!.code).toBe(grpc.status.UNAVAILABLE);
      const i = results.findIndex((r) => r.err !== undefined);
      expect(results[i + 1]?.value?.toString()).toMatch(/^beta:/);
    } finally {
      c.close();
      await b.stop();
      await origins[1]!.stop();
    }
  });

  it('with the default retry_on, a call to a killed origin fails over before a byte was sent, and succeeds', async () => {
    const origins = [await startGrpcOrigin('alpha'), await startGrpcOrigin('beta')];
    const b = await startBallast(config(origins));
    const c = client(b);
    try {
      await origins[0]!.stop();
      for (let i = 0; i < 4; i++) expect((await unary(c, `x${i}`)).value?.toString()).toBe(`beta:x${i}`);
    } finally {
      c.close();
      await b.stop();
      await origins[1]!.stop();
    }
  });

  it('grpc-timeout is the deadline: a slow call ends DEADLINE_EXCEEDED from the proxy, and is not replayed', async () => {
    const origin = await startGrpcOrigin('slowpoke');
    const b = await startBallast(config([origin]));
    const session = await h2connect(`https://127.0.0.1:${b.port}`, { ca: ca.cert, servername: 'grpc.test' });
    try {
      // A raw HTTP/2 request, so the answer is the proxy's, not a client library's own deadline.
      const message = Buffer.concat([Buffer.from([0, 0, 0, 0, 4]), Buffer.from('slow')]);
      const started = performance.now();
      const res = await h2request(session, {
        ':method': 'POST', ':path': '/test.Echo/Unary', ':authority': 'grpc.test',
        'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '300m',
      }, message);
      expect(performance.now() - started).toBeLessThan(2500);
      expect(res.status).toBe(200);
      // A trailers-only response: the status is in the head.
      expect(res.headers['grpc-status']).toBe(String(grpc.status.DEADLINE_EXCEEDED));
      expect(res.headers['content-type']).toBe('application/grpc');
      expect(origin.calls).toBe(1);
    } finally {
      session.close();
      await b.stop();
      await origin.stop();
    }
  });

  it('no server available: UNAVAILABLE as a gRPC status, not an HTML or text body', async () => {
    const origin = await startGrpcOrigin('gone');
    const b = await startBallast(config([origin], '    retry: { attempts: 1 }'));
    await origin.stop();
    const c = client(b);
    try {
      const r = await unary(c, 'anyone');
      expect(r.err?.code).toBe(grpc.status.UNAVAILABLE);
      expect(r.err?.details).toMatch(/Upstream/);
    } finally {
      c.close();
      await b.stop();
    }
  });
});
