/**
 * #15: `ballast demo --tls` serves HTTP/2 and HTTP/1.1 over TLS with a throw-away certificate it makes itself, and
 * the demo serves gRPC as grpcurl uses it: the service is found by server reflection (no .proto file), then
 * called through Ballast over h2c on the clear-text listener and over TLS on the --tls one, unary and bidirectional,
 * balanced over the two gRPC origins. The client is @grpc/grpc-js with the service definition reflection gave it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { DEMO_PORTS, isFree, startDemo, type RunningDemo } from '../../src/demo.js';
import { decodeMessage, encodeMessage } from '../../src/demo-protobuf.js';
import { reflect } from '../../src/demo-grpc.js';
import { freePort } from '../helpers/ballast.js';
import { h2connect, h2request } from '../helpers/h2.js';

const PROTO = join(import.meta.dirname, '..', '..', 'config', 'demo-echo.proto');
const raw = { serialize: (b: Buffer) => b, deserialize: (b: Buffer) => b };
const REFLECTION = {
  info: { path: '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo', requestStream: true, responseStream: true, requestSerialize: raw.serialize, requestDeserialize: raw.deserialize, responseSerialize: raw.serialize, responseDeserialize: raw.deserialize },
} satisfies grpc.ServiceDefinition;

interface ReflectionClient extends grpc.Client {
  info(): grpc.ClientDuplexStream<Buffer, Buffer>;
}

interface EchoReply {
  message: string;
  origin: string;
}
interface EchoClient extends grpc.Client {
  Say(request: { message: string }, callback: (err: grpc.ServiceError | null, reply?: EchoReply) => void): grpc.ClientUnaryCall;
  Chat(): grpc.ClientDuplexStream<{ message: string }, EchoReply>;
}

let demo: RunningDemo;
let certificate: Buffer;

beforeAll(async () => {
  demo = await startDemo({ tls: true, env: { BALLAST_DEMO_PORT: String(await freePort()) }, say: () => {} });
  const listener = demo.ballast.config.listeners.find((l) => l.name === 'web-tls')!;
  certificate = readFileSync(listener.protocol === 'http' ? listener.tls!.certificates[0]!.cert.path : '');
});
afterAll(() => demo?.stop());

/** One ServerReflectionInfo exchange: each request in turn, each answer decoded to its fields. */
async function reflectOver(address: string, credentials: grpc.ChannelCredentials, requests: Buffer[]): Promise<Map<number, Buffer>[]> {
  const Client = grpc.makeGenericClientConstructor(REFLECTION, 'ServerReflection') as unknown as new (a: string, c: grpc.ChannelCredentials) => ReflectionClient;
  const client = new Client(address, credentials);
  try {
    const call = client.info();
    const answers: Map<number, Buffer>[] = [];
    const done = new Promise<void>((resolve, reject) => {
      call.on('data', (m: Buffer) => answers.push(decodeMessage(m)));
      call.on('error', reject);
      call.on('end', resolve);
    });
    for (const r of requests) call.write(r);
    call.end();
    await done;
    return answers;
  } finally {
    client.close();
  }
}

/** The Echo client a reflection answer describes, as grpcurl builds its stub from it. */
function clientFromDescriptor(file: Buffer, address: string, credentials: grpc.ChannelCredentials): EchoClient {
  // A FileDescriptorSet is its files as field 1.
  const definition = protoLoader.loadFileDescriptorSetFromBuffer(encodeMessage([[1, file]]), { keepCase: true, defaults: true });
  const Echo = (grpc.loadPackageDefinition(definition) as unknown as { ballast: { demo: { Echo: new (a: string, c: grpc.ChannelCredentials) => EchoClient } } }).ballast.demo.Echo;
  return new Echo(address, credentials);
}

function say(client: EchoClient, message: string): Promise<EchoReply> {
  return new Promise((resolve, reject) => client.Say({ message }, (err, reply) => (err ? reject(err) : resolve(reply!))));
}

describe('the demo\'s gRPC service', () => {
  it('is listed and described by reflection, and the description is config/demo-echo.proto', async () => {
    const address = `127.0.0.1:${demo.ports.proxy}`;
    const answers = await reflectOver(address, grpc.credentials.createInsecure(), [
      encodeMessage([[7, '*']]),
      encodeMessage([[4, 'ballast.demo.Echo']]),
      encodeMessage([[4, 'no.such.Service']]),
    ]);
    expect(answers).toHaveLength(3);
    // A ListServiceResponse repeats its field, of which decodeMessage keeps the last: the names are read from the bytes.
    const listed = answers[0]!.get(6)!.toString('latin1');
    for (const name of ['ballast.demo.Echo', 'grpc.reflection.v1.ServerReflection', 'grpc.reflection.v1alpha.ServerReflection']) expect(listed).toContain(name);
    const file = decodeMessage(answers[1]!.get(4)!).get(1)!;
    const fromReflection = protoLoader.loadFileDescriptorSetFromBuffer(encodeMessage([[1, file]]), { keepCase: true });
    const fromProto = protoLoader.loadSync(PROTO, { keepCase: true });
    for (const name of ['ballast.demo.Echo', 'ballast.demo.EchoRequest', 'ballast.demo.EchoReply']) {
      expect(Object.keys(fromReflection)).toContain(name);
    }
    const shape = (def: protoLoader.PackageDefinition) => {
      const service = def['ballast.demo.Echo'] as protoLoader.ServiceDefinition;
      const reply = def['ballast.demo.EchoReply'] as { type: { field: { name: string; number: number; type: string }[] } };
      const typeName = (t: { type: object }) => (t.type as { name: string }).name;
      return {
        methods: Object.fromEntries(Object.entries(service).map(([k, m]) => [k, [m.path, m.requestStream, m.responseStream, typeName(m.requestType), typeName(m.responseType)]])),
        reply: reply.type.field.map((f) => [f.name, f.number, f.type]),
      };
    };
    expect(shape(fromReflection)).toEqual(shape(fromProto));
    // An unknown symbol is NOT_FOUND (5) in an ErrorResponse.
    expect(decodeMessage(answers[2]!.get(7)!).get(2)?.toString()).toContain('not found');
  });

  it('answers unary and bidirectional calls through Ballast over h2c, balanced over both gRPC origins', async () => {
    const address = `127.0.0.1:${demo.ports.proxy}`;
    const [described] = await reflectOver(address, grpc.credentials.createInsecure(), [encodeMessage([[4, 'ballast.demo.Echo']])]);
    const client = clientFromDescriptor(decodeMessage(described!.get(4)!).get(1)!, address, grpc.credentials.createInsecure());
    try {
      const replies = await Promise.all(Array.from({ length: 6 }, (_, i) => say(client, `hi ${i}`)));
      expect(replies.map((r) => r.message)).toEqual(['hi 0', 'hi 1', 'hi 2', 'hi 3', 'hi 4', 'hi 5']);
      expect(new Set(replies.map((r) => r.origin))).toEqual(new Set(['grpc-1', 'grpc-2']));

      // Each message is echoed while the client still streams: the next is written only once the last came back.
      const chat = client.Chat();
      const echoed: string[] = [];
      const ended = new Promise<void>((resolve, reject) => {
        chat.on('end', resolve);
        chat.on('error', reject);
      });
      for (let i = 0; i < 20; i++) {
        const next = new Promise<EchoReply>((resolve) => chat.once('data', resolve));
        chat.write({ message: `m${i}` });
        echoed.push((await next).message);
      }
      chat.end();
      await ended;
      expect(echoed).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`));
    } finally {
      client.close();
    }
  });

  it('answers over TLS on the --tls listener, and an unknown method is UNIMPLEMENTED', async () => {
    const address = `localhost:${demo.ports.tls}`;
    // The demo's throw-away certificate, trusted as `grpcurl -insecure` would; it names localhost.
    const credentials = grpc.credentials.createSsl(certificate);
    const [described] = await reflectOver(address, credentials, [encodeMessage([[4, 'ballast.demo.Echo.Say']])]);
    const client = clientFromDescriptor(decodeMessage(described!.get(4)!).get(1)!, address, credentials);
    try {
      expect(await say(client, 'over tls')).toMatchObject({ message: 'over tls' });
    } finally {
      client.close();
    }
    const Generic = grpc.makeGenericClientConstructor({
      nope: { ...REFLECTION.info, path: '/ballast.demo.Echo/Nope', requestStream: false, responseStream: false },
    }, 'Nope') as unknown as new (a: string, c: grpc.ChannelCredentials) => grpc.Client & { nope(m: Buffer, cb: (err: grpc.ServiceError | null) => void): void };
    const nope = new Generic(address, credentials);
    const err = await new Promise<grpc.ServiceError | null>((resolve) => nope.nope(Buffer.alloc(0), resolve));
    nope.close();
    expect(err?.code).toBe(grpc.status.UNIMPLEMENTED);
  });
});

describe('demo reflection answers', () => {
  it('say NOT_FOUND for a file the demo does not have, and name the type asked for extensions', () => {
    const missing = decodeMessage(reflect(encodeMessage([[1, 'h'], [3, 'other.proto']])));
    expect(missing.get(1)?.toString()).toBe('h');
    expect(decodeMessage(missing.get(7)!).get(2)?.toString()).toContain('not found');
    const extensions = decodeMessage(reflect(encodeMessage([[6, 'ballast.demo.EchoRequest']])));
    expect(decodeMessage(extensions.get(5)!).get(1)?.toString()).toBe('ballast.demo.EchoRequest');
    expect(() => reflect(Buffer.from([0x0a, 0x05, 0x61]))).toThrow(/truncated/);
  });
});

// Files run in parallel: one file starts the demos with TLS, so two never race for port 8443.
describe('ballast demo --tls', () => {
  it('serves HTTP/2 over TLS beside the clear-text listener, and removes its certificate when it stops', async () => {
    const said: string[] = [];
    const demo = await startDemo({ tls: true, env: { BALLAST_DEMO_PORT: String(await freePort()) }, say: (l) => said.push(l) });
    const tlsPort = demo.ports.tls!;
    const listener = demo.ballast.config.listeners.find((l) => l.name === 'web-tls')!;
    const certPath = listener.protocol === 'http' ? listener.tls!.certificates[0]!.cert.path : '';
    try {
      expect(existsSync(certPath)).toBe(true);
      // A self-signed certificate: the client is told to trust it, as `curl -k` is.
      const session = await h2connect(`https://localhost:${tlsPort}`, { rejectUnauthorized: false });
      expect(session.alpnProtocol).toBe('h2');
      const res = await h2request(session, { ':path': '/hello' });
      session.close();
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body)).toMatchObject({ url: '/hello' });
      const plain = await fetch(`http://127.0.0.1:${demo.ports.proxy}/hello`);
      expect(plain.status).toBe(200);
    } finally {
      await demo.stop();
    }
    expect(existsSync(certPath)).toBe(false);
  });

  it('moves a default port that another program takes between its probe and its bind, and says so', async () => {
    // Another program holds 8443 (the demo this file started first may hold it already: it is just as busy). The
    // probe is told it is free the first time, as when the other program binds right after the probe.
    const other = createServer();
    const held = await new Promise<Server | undefined>((resolve) => {
      other.once('error', () => resolve(undefined));
      other.listen(DEMO_PORTS.tls, '127.0.0.1', () => resolve(other));
    });
    const probed: number[] = [];
    const probe = async (port: number): Promise<boolean> => {
      probed.push(port);
      return (port === DEMO_PORTS.tls && probed.filter((p) => p === port).length === 1) || isFree(port);
    };
    const said: string[] = [];
    const demo = await startDemo({ tls: true, env: { BALLAST_DEMO_PORT: String(await freePort()) }, say: (l) => said.push(l), probe });
    try {
      expect(probed.filter((p) => p === DEMO_PORTS.tls)).toHaveLength(2);
      expect(demo.ports.tls).not.toBe(DEMO_PORTS.tls);
      expect(said).toContain(`port ${DEMO_PORTS.tls} is in use: the TLS listener listens on 127.0.0.1:${demo.ports.tls} instead`);
      const session = await h2connect(`https://localhost:${demo.ports.tls}`, { rejectUnauthorized: false });
      const res = await h2request(session, { ':path': '/hello' });
      session.close();
      expect(res.status).toBe(200);
    } finally {
      await demo.stop();
      await new Promise<void>((resolve) => (held === undefined ? resolve() : held.close(() => resolve())));
    }
  });
});
