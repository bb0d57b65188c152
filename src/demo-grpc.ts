/**
 * The demo's gRPC origins (#15): `ballast.demo.Echo` (config/demo-echo.proto) on a clear-text HTTP/2 server (h2c,
 * prior knowledge), which Ballast reaches as a `protocol: http2` upstream. They also answer gRPC server reflection
 * (v1 and v1alpha, what grpcurl asks), so `grpcurl -plaintext 127.0.0.1:8080 list` works without the .proto file,
 * and GET /healthz for Ballast's health checks.
 *
 * gRPC over HTTP/2 (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md): a POST with content-type
 * application/grpc; each message is a 5-byte prefix (compressed flag, big-endian length) and the protobuf bytes; the
 * status comes in the trailers (`grpc-status`, `grpc-message`), or in the head alone (Trailers-Only) for a call that
 * fails before any message.
 */
import { constants, createServer, type Http2Server, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { decodeMessage, encodeMessage, stringField, type Field } from './demo-protobuf.js';

const { HTTP2_HEADER_STATUS, HTTP2_HEADER_PATH, HTTP2_HEADER_METHOD, HTTP2_HEADER_CONTENT_TYPE } = constants;

/** gRPC status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html) the demo answers with. */
const STATUS = { OK: 0, INVALID_ARGUMENT: 3, NOT_FOUND: 5, RESOURCE_EXHAUSTED: 8, UNIMPLEMENTED: 12, INTERNAL: 13 } as const;

/** A message bigger than this is refused (gRPC's own default receive limit is 4 MiB; the demo needs far less). */
const MAX_MESSAGE = 64 * 1024;

export const ECHO_SERVICE = 'ballast.demo.Echo';
const REFLECTION_SERVICES = ['grpc.reflection.v1.ServerReflection', 'grpc.reflection.v1alpha.ServerReflection'];

/** One call's error: ends it with this status. */
class CallError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** config/demo-echo.proto as a FileDescriptorProto (google/protobuf/descriptor.proto), what reflection serves. */
function echoFileDescriptor(): Buffer {
  const LABEL_OPTIONAL = 1;
  const TYPE_STRING = 9;
  const stringFieldOf = (name: string, number: number): Buffer => encodeMessage([[1, name], [3, number], [4, LABEL_OPTIONAL], [5, TYPE_STRING], [10, name]]);
  const message = (name: string, fields: Buffer[]): Buffer => encodeMessage([[1, name], ...fields.map((f): Field => [2, f])]);
  const method = (name: string, streaming: boolean): Buffer =>
    encodeMessage([[1, name], [2, '.ballast.demo.EchoRequest'], [3, '.ballast.demo.EchoReply'], [5, streaming || undefined], [6, streaming || undefined]]);
  return encodeMessage([
    [1, 'demo-echo.proto'],
    [2, 'ballast.demo'],
    [4, message('EchoRequest', [stringFieldOf('message', 1)])],
    [4, message('EchoReply', [stringFieldOf('message', 1), stringFieldOf('origin', 2)])],
    [6, encodeMessage([[1, 'Echo'], [2, method('Say', false)], [2, method('Chat', true)]])],
    [12, 'proto3'],
  ]);
}

const ECHO_FILE = echoFileDescriptor();

/**
 * An answer to one ServerReflectionRequest (grpc/reflection/v1/reflection.proto): the services, or the file that
 * defines a symbol of the Echo service. Anything else is NOT_FOUND in an ErrorResponse, as a reflection server says.
 */
export function reflect(request: Buffer): Buffer {
  const fields = decodeMessage(request);
  const host = stringField(fields, 1);
  let answer: Field;
  const symbol = fields.has(4) ? stringField(fields, 4) : undefined;
  if (fields.has(7)) {
    const services = [ECHO_SERVICE, ...REFLECTION_SERVICES].map((name): Field => [1, encodeMessage([[1, name]])]);
    answer = [6, encodeMessage(services)];
  } else if ((fields.has(3) && stringField(fields, 3) === 'demo-echo.proto') || (symbol !== undefined && (symbol === 'ballast.demo' || symbol.startsWith('ballast.demo.')))) {
    answer = [4, encodeMessage([[1, ECHO_FILE]])];
  } else if (fields.has(6)) {
    // No type of the demo has extensions.
    answer = [5, encodeMessage([[1, stringField(fields, 6)]])];
  } else {
    answer = [7, encodeMessage([[1, STATUS.NOT_FOUND], [2, 'not found in the demo\'s descriptors']])];
  }
  return encodeMessage([[1, host], [2, request], answer]);
}

/** What a method does with each request message: the reply message. */
type Method = { readonly streaming: boolean; readonly handle: (message: Buffer) => Buffer };

function methods(origin: string): Map<string, Method> {
  const echo = (message: Buffer): Buffer => encodeMessage([[1, stringField(decodeMessage(message), 1)], [2, origin]]);
  const table = new Map<string, Method>([
    [`/${ECHO_SERVICE}/Say`, { streaming: false, handle: echo }],
    [`/${ECHO_SERVICE}/Chat`, { streaming: true, handle: echo }],
  ]);
  for (const service of REFLECTION_SERVICES) table.set(`/${service}/ServerReflectionInfo`, { streaming: true, handle: reflect });
  return table;
}

/** A gRPC message with its 5-byte prefix, uncompressed. */
function frame(message: Buffer): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

/** A call that fails before any message: the status in the one HEADERS frame (Trailers-Only). */
function refuse(stream: ServerHttp2Stream, code: number, message: string): void {
  stream.respond({ [HTTP2_HEADER_STATUS]: 200, [HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc', 'grpc-status': String(code), 'grpc-message': encodeURIComponent(message) }, { endStream: true });
}

/** Runs one call: reads the request messages as they come, writes each reply, ends with the status in trailers. */
function serveCall(stream: ServerHttp2Stream, method: Method): void {
  let status: { code: number; message: string } = { code: STATUS.OK, message: '' };
  let pending: Buffer = Buffer.alloc(0);
  let received = 0;
  stream.respond({ [HTTP2_HEADER_STATUS]: 200, [HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc' }, { waitForTrailers: true });
  stream.on('wantTrailers', () => {
    const trailers: Record<string, string> = { 'grpc-status': String(status.code) };
    if (status.message !== '') trailers['grpc-message'] = encodeURIComponent(status.message);
    stream.sendTrailers(trailers);
  });
  const fail = (err: CallError): void => {
    status = { code: err.code, message: err.message };
    stream.off('data', onData);
    stream.resume();
    stream.end();
  };
  const onData = (chunk: Buffer): void => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    try {
      while (pending.length >= 5) {
        if (pending[0] !== 0) throw new CallError(STATUS.UNIMPLEMENTED, 'compressed messages are not supported (no grpc-encoding is offered)');
        const length = pending.readUInt32BE(1);
        if (length > MAX_MESSAGE) throw new CallError(STATUS.RESOURCE_EXHAUSTED, `message of ${length} bytes over ${MAX_MESSAGE}`);
        if (pending.length < 5 + length) break;
        const message = pending.subarray(5, 5 + length);
        pending = pending.subarray(5 + length);
        if (++received > 1 && !method.streaming) throw new CallError(STATUS.INVALID_ARGUMENT, 'a unary call takes one message');
        let reply: Buffer;
        try {
          reply = method.handle(message);
        } catch (err) {
          throw new CallError(STATUS.INVALID_ARGUMENT, `undecodable message: ${(err as Error).message}`);
        }
        // Backpressure: a client that does not read its replies stops being read (one drain wait, however many
        // replies one chunk of requests asked for).
        if (!stream.write(frame(reply)) && !stream.isPaused()) {
          stream.pause();
          stream.once('drain', () => stream.resume());
        }
      }
    } catch (err) {
      if (err instanceof CallError) fail(err);
      else throw err;
    }
  };
  stream.on('data', onData);
  stream.on('end', () => {
    if (status.code !== STATUS.OK) return;
    if (pending.length > 0) status = { code: STATUS.INTERNAL, message: 'the request ended inside a message' };
    else if (received === 0 && !method.streaming) status = { code: STATUS.INVALID_ARGUMENT, message: 'a unary call takes one message' };
    stream.end();
  });
}

/** A gRPC origin named `origin` (it says so in each reply), not yet listening. */
export function grpcOriginServer(origin: string): Http2Server {
  const table = methods(origin);
  const server = createServer();
  server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    stream.on('error', () => {});
    const path = String(headers[HTTP2_HEADER_PATH] ?? '');
    if (path === '/healthz') {
      stream.respond({ [HTTP2_HEADER_STATUS]: 200, [HTTP2_HEADER_CONTENT_TYPE]: 'text/plain' });
      stream.end('ok\n');
      return;
    }
    const type = String(headers[HTTP2_HEADER_CONTENT_TYPE] ?? '');
    if (headers[HTTP2_HEADER_METHOD] !== 'POST' || !/^application\/grpc(\+proto)?(;|$)/.test(type)) {
      // Not a gRPC call (PROTOCOL-HTTP2.md: 415 for a content-type that is not gRPC's).
      stream.respond({ [HTTP2_HEADER_STATUS]: 415, [HTTP2_HEADER_CONTENT_TYPE]: 'text/plain' });
      stream.end('this origin speaks gRPC: POST with content-type application/grpc\n');
      return;
    }
    const method = table.get(path);
    if (method === undefined) {
      stream.resume();
      refuse(stream, STATUS.UNIMPLEMENTED, `unknown method ${path}`);
      return;
    }
    serveCall(stream, method);
  });
  server.on('sessionError', () => {});
  server.on('session', (session) => session.on('error', () => {}));
  return server;
}
