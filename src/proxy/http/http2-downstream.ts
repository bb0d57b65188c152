/**
 * The Downstream of an HTTP/2 stream (RFC 9113): one request of a client's HTTP/2 connection, through the same
 * exchange loop as an HTTP/1 request. The request is translated into HTTP/1.1 terms on the way in (§8.3.1: `Host`
 * from `:authority`; §8.2.3: cookies joined), and the relayed response out of them (§8.2.2: no connection-specific
 * fields). A gRPC call's trailers go through; a response the proxy makes for a gRPC call is a gRPC status.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { constants, sensitiveHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { PassThrough, type Readable } from 'node:stream';
import type { Downstream } from './downstream.js';
import type { Failure } from './failures.js';
import { grpcMessage, grpcStatusFor, grpcTimeoutMs, isGrpc } from './grpc.js';
import { trailerFields } from './trailers.js';
import { unwatchClose, watchClose, type Http2Connection } from './http2-front.js';

const { HTTP2_HEADER_STATUS, NGHTTP2_CANCEL, NGHTTP2_INTERNAL_ERROR } = constants;

/** RFC 9113 §8.2.2: fields an HTTP/2 message must not carry (node:http2 throws on them). */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'host', 'http2-settings']);

/**
 * Fields HPACK is told never to index (RFC 7541 §7.1.3). A request id is new in every response: entered in the
 * connection's dynamic table, it would only push out the fields that do repeat (content-type, server), on both sides.
 */
const NEVER_INDEXED: readonly string[] = ['x-request-id'];

/** The options of a gRPC response head (node:http2 copies them: one object each will do). */
const TRAILERS_ONLY = Object.freeze({ endStream: true });
const AWAIT_TRAILERS = Object.freeze({ waitForTrailers: true });

export class Http2Downstream implements Downstream {
  readonly stream: ServerHttp2Stream;
  readonly method: string;
  readonly url: string;
  readonly rawHeaders: readonly string[];
  readonly headers: IncomingHttpHeaders;
  readonly clientIp: string;
  readonly body: Readable | null;
  /** The TLS version of the connection (undefined in clear text), for the access log. */
  readonly tls: string | undefined;
  readonly grpc: boolean;
  /** The deadline a gRPC call brought (`grpc-timeout`), in milliseconds. */
  readonly timeoutMs: number | undefined;
  bytesSent = 0;
  requestTrailers: Readonly<Record<string, string>> | undefined;
  #trailers: OutgoingHttpHeaders | undefined;
  #awaitsTrailers = false;
  #trailersOnly = false;
  #sendTimeoutMs = 0;
  #onStall: (() => void) | undefined;
  #stallTimer: NodeJS.Timeout | undefined;
  #requestTimer: NodeJS.Timeout | undefined;

  constructor(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, rawHeaders: readonly string[], endStream: boolean, connection: Http2Connection) {
    this.stream = stream;
    this.method = headers[':method'] as string;
    this.url = headers[':path'] as string;
    this.headers = headers;
    this.rawHeaders = rawHeaders;
    this.clientIp = connection.clientIp;
    const tls = connection.tls;
    // Not the stream itself: undici destroys a body stream once it has sent it, and destroying an HTTP/2 stream
    // resets it, response and all.
    this.body = endStream ? null : stream.pipe(new PassThrough());
    if (!endStream) stream.once('trailers', (trailers: IncomingHttpHeaders) => (this.requestTrailers = trailerFields(trailers)));
    this.tls = tls === '' ? undefined : tls;
    this.grpc = isGrpc(headers);
    this.timeoutMs = this.grpc ? grpcTimeoutMs(headers['grpc-timeout']) : undefined;
  }

  get httpVersion(): string {
    // RFC 9110 §7.6.3: `Via: 2 ballast`.
    return '2';
  }

  get websocket(): boolean {
    return false;
  }

  get timedOut(): boolean {
    return false;
  }

  continue(): void {
    const expect = this.headers.expect;
    if (expect !== undefined && expect.toLowerCase() === '100-continue' && !this.stream.headersSent && !this.stream.destroyed) {
      this.stream.additionalHeaders({ [HTTP2_HEADER_STATUS]: 100 });
    }
  }

  respond(status: number, _reason: string, headers: string[]): void {
    if (this.stream.destroyed) return;
    // ':status' as a literal key: a computed one ([HTTP2_HEADER_STATUS]) sends V8 down its slow path for the literal.
    const out: OutgoingHttpHeaders = { ':status': status };
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!.toLowerCase();
      if (CONNECTION_SPECIFIC.has(name)) continue;
      const value = headers[i + 1]!;
      const had = out[name];
      if (had === undefined) out[name] = value;
      else if (Array.isArray(had)) had.push(value);
      else out[name] = [String(had), value];
    }
    (out as Record<symbol, readonly string[]>)[sensitiveHeaders] = NEVER_INDEXED;
    if (this.grpc) {
      // A gRPC response ends in trailers (grpc-status), which the stream then waits for; unless it is trailers-only,
      // its status already in this head.
      this.#awaitsTrailers = out['grpc-status'] === undefined;
      // A gRPC head that carries the status is a Trailers-Only response (PROTOCOL-HTTP2.md): no body follows, and a
      // client reads the status only from a HEADERS frame that ends the stream.
      this.#trailersOnly = !this.#awaitsTrailers;
    }
    try {
      this.stream.respond(out, this.#trailersOnly ? TRAILERS_ONLY : this.#awaitsTrailers ? AWAIT_TRAILERS : undefined);
    } catch {
      // A field node:http2 will not send (a value with a character HTTP/2 forbids): the client learns the response
      // failed, as an HTTP/1.1 client would from a reset.
      this.reset();
    }
  }

  write(chunk: Buffer, resume: () => void): boolean {
    // A stream already reset (the exchange hears of it by onGone), or ended by a Trailers-Only head: nothing to send.
    if (this.stream.destroyed || this.#trailersOnly) return true;
    this.bytesSent += chunk.length;
    if (this.stream.write(chunk)) return true;
    if (this.#sendTimeoutMs > 0) {
      this.#stallTimer = setTimeout(this.#onStall!, this.#sendTimeoutMs);
      this.stream.once('drain', () => {
        clearTimeout(this.#stallTimer);
        resume();
      });
    } else this.stream.once('drain', resume);
    return false;
  }

  watchSend(ms: number, onStall: () => void): void {
    this.#sendTimeoutMs = ms;
    this.#onStall = onStall;
  }

  end(trailers?: Record<string, string>): void {
    if (this.stream.destroyed || this.#trailersOnly) return;
    if (this.#awaitsTrailers) {
      this.#trailers = trailers ?? {};
      this.stream.once('wantTrailers', this.#sendTrailers);
    }
    this.stream.end();
  }

  readonly #sendTrailers = (): void => {
    const trailers: OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(this.#trailers ?? {})) {
      if (!CONNECTION_SPECIFIC.has(name) && !name.startsWith(':')) trailers[name] = value;
    }
    // An origin that ended a gRPC response without a status broke the protocol: the client is told so.
    if (trailers['grpc-status'] === undefined) trailers['grpc-status'] = String(grpcStatusFor(502));
    this.stream.sendTrailers(trailers);
  };

  reset(): void {
    // RST_STREAM, so the client can tell the response is cut short (RFC 9113 §8.1).
    if (!this.stream.destroyed) this.stream.close(NGHTTP2_INTERNAL_ERROR);
  }

  fail(failure: Failure, requestId: string | undefined, detail?: string, extra?: Record<string, string>): void {
    const stream = this.stream;
    if (stream.destroyed) return;
    if (stream.headersSent) return this.reset();
    const common: OutgoingHttpHeaders = { 'x-ballast-error': failure.code };
    if (requestId !== undefined) {
      common['x-request-id'] = requestId;
      (common as Record<symbol, readonly string[]>)[sensitiveHeaders] = NEVER_INDEXED;
    }
    if (extra !== undefined) Object.assign(common, extra);
    if (this.grpc) {
      // A trailers-only response (PROTOCOL-HTTP2.md): HTTP 200, the gRPC status in the one HEADERS frame.
      const message = detail === undefined ? failure.message : `${failure.message}: ${detail}`;
      stream.respond({
        ...common,
        [HTTP2_HEADER_STATUS]: 200,
        'content-type': 'application/grpc',
        'grpc-status': String(grpcStatusFor(failure.status)),
        'grpc-message': grpcMessage(message),
      }, { endStream: true });
    } else {
      const body = detail === undefined ? `${failure.message}\n` : `${failure.message}: ${detail}\n`;
      if (failure.retryAfter !== undefined) common['retry-after'] = String(failure.retryAfter);
      stream.respond({ ...common, [HTTP2_HEADER_STATUS]: failure.status, 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
      stream.end(body);
    }
    // The rest of a request body that will not be read is refused (RFC 9113 §8.1: RST_STREAM NO_ERROR after a
    // complete response), so the client stops sending it.
    if (failure.close === true && !stream.readableEnded) stream.once('finish', () => stream.close(constants.NGHTTP2_NO_ERROR));
  }

  watchBody(ms: number, onSlow: () => void): void {
    const stream = this.stream;
    // The stream's own timer: any frame read resets it (the piped copy does not see the frames).
    stream.setTimeout(ms, onSlow);
    stream.once('end', () => stream.setTimeout(0));
  }

  /**
   * `client.request_timeout` for a stream with a body: node:http2 has no such limit (node:http does, for HTTP/1.1).
   * Not for a gRPC call: its deadline is its own `grpc-timeout`, and a streaming call may rightly send for as long as
   * it lasts (Envoy's advice is to turn its request timeout off for gRPC streams).
   */
  watchRequest(ms: number, onLate: () => void): void {
    if (this.grpc) return;
    const timer = setTimeout(onLate, ms);
    timer.unref();
    this.#requestTimer = timer;
    this.stream.once('end', () => clearTimeout(timer));
  }

  onGone(listener: () => void): void {
    const stream = this.stream;
    if (stream.destroyed || stream.closed) {
      listener();
      return;
    }
    // 'close' also follows a complete response; the exchange ignores it then, and done() clears it first.
    watchClose(stream, listener);
  }

  done(): void {
    clearTimeout(this.#stallTimer);
    clearTimeout(this.#requestTimer);
    unwatchClose(this.stream);
  }

  tunnel(): Promise<void> {
    throw new Error('an HTTP/2 stream cannot become a tunnel here (RFC 8441 extended CONNECT is not offered)');
  }
}

/** A stream the client no longer wants answered, cancelled (shutdown past its deadline, a session cut off). */
export function cancelStream(stream: ServerHttp2Stream): void {
  if (!stream.destroyed) stream.close(NGHTTP2_CANCEL);
}

/**
 * The request's fields as HTTP/1.1 has them, names and values alternating: pseudo-fields left out, `Host` from
 * `:authority` first (RFC 9113 §8.3.1), and cookie fields, which HTTP/2 may split, joined with `; ` (§8.2.3).
 */
export function http1Fields(raw: readonly string[]): string[] {
  const out: string[] = [];
  let authority: string | undefined;
  let cookie: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    if (name.charCodeAt(0) === 58 /* ':' */) {
      if (name === ':authority') authority = value;
      continue;
    }
    if (name === 'cookie') {
      cookie = cookie === undefined ? value : `${cookie}; ${value}`;
      continue;
    }
    if (name === 'host') {
      authority ??= value;
      continue;
    }
    out.push(name, value);
  }
  if (cookie !== undefined) out.push('cookie', cookie);
  return authority === undefined ? out : ['host', authority, ...out];
}
