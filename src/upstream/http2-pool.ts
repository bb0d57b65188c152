/**
 * The connections to one `protocol: http2` server: node:http2 sessions, each carrying many requests at once
 * (RFC 9113 §5), where an `http1` server has an undici Pool.
 *
 * Why not undici's HTTP/2 client (`allowH2`): it starts no non-idempotent request (every gRPC call is a POST) and no
 * request with a streamed body while another stream is open on the same connection (client-h2.js `busy`). So with
 * several streams per connection a gRPC call waits behind a long-lived one, and with one stream per connection (what
 * Ballast did before) every concurrent call takes a connection of its own: `limits.max_connections` long-lived calls
 * exhaust the pool. Here a request takes the first session with room for one more stream, up to the server's
 * SETTINGS_MAX_CONCURRENT_STREAMS and at most MAX_STREAMS; a session is opened only when every one is full, up to
 * `limits.max_connections` sessions; beyond that requests wait in order (Envoy's HTTP/2 connection pool does the same).
 *
 * It keeps undici's dispatch-handler contract (onConnect with an abort, onHeaders with raw headers, onData returning
 * false to pause, onComplete with the trailers, onError; undici's error codes), so an attempt (proxy/http/attempt.ts)
 * drives either pool the same way, and a request is handed to `onConnect` only once a session is ready: a
 * request that fails before it is reports a connect failure, never a request the server may have seen.
 */
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders, type SecureClientSessionOptions } from 'node:http2';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Transport } from './transport.js';

const { NGHTTP2_CANCEL, NGHTTP2_NO_ERROR, NGHTTP2_REFUSED_STREAM } = http2.constants;

/**
 * Streams per session at most, and until the server's SETTINGS say otherwise: RFC 9113 §6.5.2 advises a server
 * allow at least 100, and Node's server allows any number by default. More streams per connection would only put
 * more requests behind one TCP connection's losses.
 */
export const MAX_STREAMS = 100;

/**
 * The session's receive window (RFC 9113 §6.9.2 starts it at 65,535 bytes, shared by every stream): room for each of
 * MAX_STREAMS streams to fill its own default window, so one busy stream does not stall the others. A stream whose
 * client reads slowly still holds at most its own window (64 KiB).
 */
const SESSION_WINDOW = MAX_STREAMS * 65_535;

/** How long a response head waits for its first body bytes before it is handed on alone (Http2Request#onResponse). */
const HEAD_WAIT_MS = 1;

function handOnHead(request: Http2Request): void {
  request.handOnHead();
}

/** What the pool calls, in undici's order: an Attempt (proxy/http/attempt.ts) is one. */
export interface StreamHandler {
  onConnect(abort: (err?: Error) => void): void;
  onHeaders(status: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean;
  onData(chunk: Buffer): boolean;
  onComplete(trailers: IncomingHttpHeaders | null): void;
  onError(err: Error): void;
}

/** undici's dispatch options, and where a request's trailers come from (undici ignores it: it cannot send them). */
export interface PoolDispatchOptions extends Dispatcher.DispatchOptions {
  /** Read when the body has been sent: its `requestTrailers` go as the request's trailers (RFC 9113 §8.1). */
  readonly trailerSource?: { readonly requestTrailers?: Readonly<Record<string, string>> | undefined } | undefined;
}

/** A server's connection pool, whichever the protocol: undici's Pool, or Http2Pool. */
export interface ServerPool {
  dispatch(options: PoolDispatchOptions, handler: Dispatcher.DispatchHandler & StreamHandler): boolean;
  close(): Promise<void>;
  destroy(): Promise<void>;
}

export interface Http2PoolOptions {
  /** Sessions at most (`limits.max_connections`). */
  readonly maxSessions: number;
  readonly connectTimeoutMs: number;
  /** A session without a stream for this long is closed (GOAWAY), as undici retires an idle keep-alive connection. */
  readonly idleTimeoutMs: number;
  /** A session is ready: its first request is the next one handed to `onConnect` (host.ts `takeFreshConnection`). */
  readonly connected: () => void;
}

function codedError(message: string, code: string, cause?: unknown): Error & { code: string } {
  return Object.assign(new Error(message, cause === undefined ? undefined : { cause }), { code });
}

/**
 * A stream the server refused (RST_STREAM REFUSED_STREAM, or beyond the last stream id of its GOAWAY): RFC 9113
 * §8.7 guarantees it was not processed, so it is a connect failure whatever the method, and safe to retry.
 */
export function refusedStream(): Error {
  return Object.assign(codedError('upstream refused the stream (not processed, RFC 9113 §8.7)', 'UND_ERR_SOCKET'), { unprocessed: true });
}

class Session {
  readonly h2: ClientHttp2Session;
  streams = 0;
  /** Connected, and the server's SETTINGS are in (RFC 9113 §3.4): its stream limit is known. */
  ready = false;
  /** Takes no new stream: a GOAWAY came or went, or the session is being closed. */
  closing = false;
  maxStreams = MAX_STREAMS;
  idleSince = performance.now();
  /** Why it failed, for the requests waiting on it. */
  error: (Error & { code: string }) | undefined;
  /** The last stream id of the server's GOAWAY: the streams after it were not processed (RFC 9113 §6.8). */
  lastProcessed: number | undefined;

  constructor(h2: ClientHttp2Session) {
    this.h2 = h2;
  }

  get open(): boolean {
    return this.ready && !this.closing && this.streams < this.maxStreams;
  }
}

export class Http2Pool implements ServerPool {
  readonly #transport: Transport;
  readonly #options: Http2PoolOptions;
  readonly #scheme: string;
  readonly #sessions: Session[] = [];
  /** Requests waiting for a stream, in order. */
  #queue: Http2Request[] = [];
  #streams = 0;
  #sweep: NodeJS.Timeout | undefined;
  #closing = false;
  #whenClosed: (() => void) | undefined;

  constructor(transport: Transport, options: Http2PoolOptions) {
    this.#transport = transport;
    this.#options = options;
    this.#scheme = transport.tls ? 'https' : 'http';
  }

  dispatch(options: PoolDispatchOptions, handler: StreamHandler): boolean {
    if (this.#closing) {
      handler.onError(codedError('the server\'s connection pool is closed', 'UND_ERR_CLOSED'));
      return false;
    }
    const request = new Http2Request(this, options, handler);
    const session = this.#available();
    if (session !== undefined) this.#start(request, session);
    else {
      this.#queue.push(request);
      this.#grow();
    }
    return true;
  }

  /** Finishes what is in flight and queued, then closes every session (undici's Pool.close does the same). */
  close(): Promise<void> {
    this.#closing = true;
    return new Promise((resolve) => {
      this.#whenClosed = resolve;
      this.#closeIfDone();
    });
  }

  /** Fails what waits and resets what is in flight. */
  destroy(): Promise<void> {
    this.#closing = true;
    const err = codedError('the server\'s connection pool was destroyed', 'UND_ERR_DESTROYED');
    for (const request of this.#takeQueue()) request.fail(err);
    const closed = this.#sessions.map((s) => new Promise<void>((resolve) => {
      if (s.h2.closed && s.h2.destroyed) resolve();
      else s.h2.once('close', () => resolve());
      s.h2.destroy(err);
    }));
    return Promise.all(closed).then(() => undefined);
  }

  /** The request headers as node:http2 takes them: the pseudo-header fields (RFC 9113 §8.3.1), `host` as `:authority`. */
  headersOf(options: Dispatcher.DispatchOptions): OutgoingHttpHeaders {
    // No prototype: a field named `constructor` or `__proto__` is a field like any other.
    const out: OutgoingHttpHeaders = Object.create(null) as OutgoingHttpHeaders;
    out[':method'] = options.method;
    out[':scheme'] = this.#scheme;
    out[':path'] = options.path;
    const raw = options.headers as readonly string[];
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i]!.toLowerCase();
      const value = raw[i + 1]!;
      if (name === 'host') {
        out[':authority'] = value;
        continue;
      }
      const previous = out[name];
      out[name] = previous === undefined ? value : Array.isArray(previous) ? [...previous, value] : [String(previous), value];
    }
    return out;
  }

  /** A stream of `session` ended: its room goes to the next request waiting. */
  streamClosed(session: Session): void {
    session.streams--;
    this.#streams--;
    if (session.streams === 0) session.idleSince = performance.now();
    this.#drain();
    this.#closeIfDone();
  }

  #available(): Session | undefined {
    for (const s of this.#sessions) if (s.open) return s;
    return undefined;
  }

  #start(request: Http2Request, session: Session): void {
    session.streams++;
    this.#streams++;
    request.start(session);
  }

  #drain(): void {
    while (this.#queue.length > 0) {
      const session = this.#available();
      if (session === undefined) return this.#grow();
      this.#start(this.#queue.shift()!, session);
    }
  }

  /**
   * Opens a session when what is connecting cannot take every request waiting (also while the pool closes: what was
   * queued is still served). A session draining after a GOAWAY takes no new stream, so it does not count.
   */
  #grow(): void {
    let room = 0;
    let taking = 0;
    for (const s of this.#sessions) {
      if (s.closing) continue;
      taking++;
      if (!s.ready) room += MAX_STREAMS;
    }
    if (this.#queue.length > room && taking < this.#options.maxSessions) this.#open();
  }

  #open(): void {
    const transport = this.#transport;
    const options: SecureClientSessionOptions = {
      ...transport.tlsOptions,
      // RFC 9113 §6.5.2: the server's limit is not known before its SETTINGS; assume the advised floor.
      peerMaxConcurrentStreams: MAX_STREAMS,
      settings: { enablePush: false },
    };
    const h2 = http2.connect(transport.origin, options);
    const session = new Session(h2);
    this.#sessions.push(session);
    const timer = setTimeout(() => h2.destroy(codedError(`connect timeout after ${this.#options.connectTimeoutMs} ms`, 'UND_ERR_CONNECT_TIMEOUT')), this.#options.connectTimeoutMs);
    timer.unref();
    // The process lives by its listeners; a session to an origin keeps nothing alive.
    h2.unref();
    // Ready once the server's SETTINGS arrive, not on connect: a stream sent before them could exceed a limit below
    // MAX_STREAMS, and the server would refuse it. The server sends them first thing (its connection preface).
    h2.on('remoteSettings', (settings) => {
      session.maxStreams = Math.max(1, Math.min(MAX_STREAMS, settings.maxConcurrentStreams ?? MAX_STREAMS));
      if (!session.ready) {
        clearTimeout(timer);
        session.ready = true;
        h2.setLocalWindowSize(SESSION_WINDOW);
        session.idleSince = performance.now();
        this.#options.connected();
        this.#startSweep();
      }
      this.#drain();
    });
    // Node closes the session once its open streams are done (those beyond the GOAWAY's last id are refused).
    h2.on('goaway', (_code: number, lastStreamID: number) => {
      session.closing = true;
      session.lastProcessed = lastStreamID;
      this.#grow();
    });
    h2.on('error', (err: Error & { code?: string }) => {
      session.error = err.code === undefined ? codedError(err.message, 'UND_ERR_SOCKET', err) : (err as Error & { code: string });
    });
    h2.on('close', () => {
      clearTimeout(timer);
      session.closing = true;
      this.#sessions.splice(this.#sessions.indexOf(session), 1);
      // Never ready: every request waiting counted on it, and the server could not be reached. An HTTP/2 protocol
      // error before the server's SETTINGS means it does not speak HTTP/2 there: a connect failure too, not a reset.
      if (!session.ready) {
        const cause = session.error;
        this.#failQueued(cause === undefined || cause.code.startsWith('ERR_HTTP2')
          ? codedError(`no HTTP/2 connection to the server: ${cause?.message ?? 'closed before its SETTINGS'}`, 'UND_ERR_SOCKET', cause)
          : cause);
      }
      this.#drain();
      this.#closeIfDone();
    });
  }

  /**
   * A new connection to the server failed: what waits fails as a connect failure (and may be retried elsewhere), as
   * Envoy fails its pending requests. Waiting on instead would open the next connection at once, and the next.
   */
  #failQueued(err: Error): void {
    for (const request of this.#takeQueue()) request.fail(err);
  }

  #takeQueue(): Http2Request[] {
    const queue = this.#queue;
    this.#queue = [];
    return queue;
  }

  /** Idle sessions are closed by one sweep per pool, not a timer re-armed on every stream. */
  #startSweep(): void {
    if (this.#sweep !== undefined) return;
    const idle = this.#options.idleTimeoutMs;
    this.#sweep = setInterval(() => {
      const now = performance.now();
      for (const s of this.#sessions) {
        if (s.ready && !s.closing && s.streams === 0 && now - s.idleSince >= idle) {
          s.closing = true;
          s.h2.close();
        }
      }
      if (this.#sessions.length === 0) {
        clearInterval(this.#sweep);
        this.#sweep = undefined;
      }
    }, Math.max(100, Math.floor(idle / 4)));
    this.#sweep.unref();
  }

  #closeIfDone(): void {
    if (!this.#closing || this.#streams > 0 || this.#queue.length > 0) return;
    for (const s of this.#sessions) {
      if (!s.closing) {
        s.closing = true;
        s.h2.close();
      }
    }
    if (this.#sessions.length > 0 || this.#whenClosed === undefined) return;
    clearInterval(this.#sweep);
    this.#sweep = undefined;
    const resolve = this.#whenClosed;
    this.#whenClosed = undefined;
    resolve();
  }
}

/** One request on one stream, reported to its handler as undici would. */
class Http2Request {
  readonly #pool: Http2Pool;
  readonly #options: PoolDispatchOptions;
  readonly #handler: StreamHandler;
  #session: Session | undefined;
  #stream: ClientHttp2Stream | undefined;
  /** onComplete or onError was called: nothing more is reported. */
  #done = false;
  #responded = false;
  /** A response head not handed on yet: it waits for the first body bytes (see #onResponse). */
  #head: IncomingHttpHeaders | undefined;
  #headTimer: NodeJS.Timeout | undefined;
  /** The handler holds the response (onHeaders returned false): body bytes and the end wait for `resume`. */
  #held = false;
  #parked: Buffer[] | undefined;
  /** The stream ended (whole response in) while held or parked: complete once the handler has taken it all. */
  #endParked = false;
  #trailers: IncomingHttpHeaders | null = null;
  #error: Error | undefined;
  /** `bodyTimeout`: the longest the server may send nothing once it has answered (0: none). */
  #idleMs = 0;

  constructor(pool: Http2Pool, options: PoolDispatchOptions, handler: StreamHandler) {
    this.#pool = pool;
    this.#options = options;
    this.#handler = handler;
  }

  /** Failed before it had a stream (the server could not be reached, or the pool was destroyed). */
  fail(err: Error): void {
    if (this.#done) return;
    this.#done = true;
    this.#handler.onError(err);
  }

  start(session: Session): void {
    this.#session = session;
    this.#handler.onConnect(this.#abort);
    // Aborted in onConnect (the attempt was given up while it waited): nothing is sent.
    if (this.#done) return this.#release();
    const options = this.#options;
    const body = options.body as Buffer | Readable | null | undefined;
    const hasBody = body !== null && body !== undefined;
    const source = options.trailerSource;
    // A body read whole has its trailers already; a streamed one has them (or not) once it ends, so it waits for them.
    const waitForTrailers = hasBody && source !== undefined && (!Buffer.isBuffer(body) || source.requestTrailers !== undefined);
    let stream: ClientHttp2Stream;
    try {
      stream = session.h2.request(this.#pool.headersOf(options), { endStream: !hasBody, waitForTrailers });
    } catch (err) {
      // A field node:http2 will not send: the request is refused here, and the server is not to blame.
      this.#release();
      return this.fail(codedError(`request not sent over HTTP/2: ${(err as Error).message}`, 'UND_ERR_INVALID_ARG', err));
    }
    this.#stream = stream;
    stream.on('response', this.#onResponse);
    stream.on('trailers', (trailers: IncomingHttpHeaders) => {
      this.#trailers = trailers;
    });
    stream.on('end', this.#onEnd);
    stream.on('error', (err: Error) => {
      this.#error ??= err;
    });
    stream.on('timeout', () => this.#abort(codedError(`upstream sent nothing for ${options.bodyTimeout} ms`, 'UND_ERR_BODY_TIMEOUT')));
    stream.on('close', this.#onClose);
    // No trailers after all: node:http2 then ends the stream with an empty DATA frame.
    if (waitForTrailers) {
      stream.once('wantTrailers', () => {
        try {
          stream.sendTrailers({ ...source!.requestTrailers });
        } catch (err) {
          this.#abort(codedError(`request trailers not sent over HTTP/2: ${(err as Error).message}`, 'UND_ERR_INVALID_ARG', err));
        }
      });
    }
    if (!hasBody) return;
    if (Buffer.isBuffer(body)) stream.end(body);
    // pipe, not pipeline: a stream reset must not destroy the client's own request stream, which still gets its answer.
    else body.pipe(stream);
  }

  /**
   * node:http2 emits a stream's body a loop turn after its head, even when both came in one read; handed on at once,
   * the head would go to an HTTP/1.1 client in a write of its own (http1-downstream.ts flushes a head no body byte
   * followed within the tick). So the head waits for the first body bytes or the end, and at most HEAD_WAIT_MS, so a
   * response whose body is slow (a stream of events) still shows its head at once.
   */
  readonly #onResponse = (headers: IncomingHttpHeaders): void => {
    if (this.#done) return;
    const stream = this.#stream!;
    this.#responded = true;
    const idle = this.#options.bodyTimeout;
    this.#idleMs = idle === undefined || idle === null ? 0 : idle;
    if (this.#idleMs > 0) stream.setTimeout(this.#idleMs);
    this.#head = headers;
    this.#headTimer = setTimeout(handOnHead, HEAD_WAIT_MS, this);
    stream.on('data', this.#onData);
  };

  /** Hands the waiting head on; false when the handler holds the response. */
  handOnHead(): boolean {
    const head = this.#head;
    if (head === undefined || this.#done) return !this.#held;
    this.#head = undefined;
    clearTimeout(this.#headTimer);
    if (this.#handler.onHeaders(Number(head[':status']), rawHeaders(head), this.#resume, '')) return true;
    this.#held = true;
    this.#pause();
    return false;
  }

  /**
   * The handler cannot take more (a slow client, or a held response): the stream stops, and so does its idle timer,
   * which would otherwise blame the server for the client's pace (undici's body timer also waits while paused).
   */
  #pause(): void {
    const stream = this.#stream!;
    stream.pause();
    if (this.#idleMs > 0) stream.setTimeout(0);
  }

  readonly #onData = (chunk: Buffer): void => {
    if (this.#done) return;
    if (this.#held || !this.handOnHead()) {
      (this.#parked ??= []).push(chunk);
      return;
    }
    if (!this.#handler.onData(chunk)) this.#pause();
  };

  /** The handler wants more: what was parked while it held the response first, then the stream. */
  readonly #resume = (): void => {
    this.#held = false;
    const parked = this.#parked;
    this.#parked = undefined;
    if (parked !== undefined) {
      for (let i = 0; i < parked.length; i++) {
        if (this.#done) return;
        if (!this.#handler.onData(parked[i]!)) {
          // Slow again: the rest stays parked, in order, for the next resume.
          this.#held = true;
          this.#parked = parked.slice(i + 1);
          return;
        }
      }
    }
    if (this.#endParked) return this.#complete();
    const stream = this.#stream;
    if (stream === undefined || stream.destroyed) return;
    if (this.#idleMs > 0) stream.setTimeout(this.#idleMs);
    stream.resume();
  };

  readonly #onEnd = (): void => {
    if (this.#done || !this.#responded) return;
    if (this.#held || !this.handOnHead() || this.#parked !== undefined) {
      this.#endParked = true;
      return;
    }
    this.#complete();
  };

  #complete(): void {
    if (this.#done) return;
    this.#done = true;
    this.#detachBody();
    // The whole response came before the request was all sent (RFC 9113 §8.1 lets a server answer early): the rest of
    // the request is not wanted, and the stream must not stay half open, holding its place in the session.
    const stream = this.#stream!;
    if (!stream.closed && !stream.writableFinished) stream.close(NGHTTP2_NO_ERROR);
    this.#handler.onComplete(this.#trailers);
  }

  readonly #onClose = (): void => {
    const lastProcessed = this.#session?.lastProcessed;
    this.#release();
    clearTimeout(this.#headTimer);
    // The whole response is in, held or parked for a handler not ready for it yet: `resume` completes it.
    if (this.#done || this.#endParked) return;
    const stream = this.#stream!;
    // Refused, or past the last stream a GOAWAY said was processed, whatever its error code (RFC 9113 §6.8, §8.7).
    const unprocessed = stream.rstCode === NGHTTP2_REFUSED_STREAM || (lastProcessed !== undefined && (stream.id === undefined || stream.id > lastProcessed));
    const err = !this.#responded && unprocessed
      ? refusedStream()
      : codedError(`upstream closed the stream${stream.rstCode ? ` (RST_STREAM code ${stream.rstCode})` : ''}${this.#error === undefined ? '' : `: ${this.#error.message}`}`, 'UND_ERR_SOCKET', this.#error);
    this.fail(err);
  };

  /** The handler's abort: the stream is cancelled (RST_STREAM CANCEL), and onError says why, as undici does. */
  readonly #abort = (err?: Error): void => {
    if (this.#done) return;
    clearTimeout(this.#headTimer);
    this.#detachBody();
    const stream = this.#stream;
    if (stream !== undefined && !stream.closed) stream.close(NGHTTP2_CANCEL);
    this.fail(err ?? codedError('request aborted', 'UND_ERR_ABORTED'));
  };

  #detachBody(): void {
    const body = this.#options.body;
    if (this.#stream !== undefined && body !== null && body !== undefined && !Buffer.isBuffer(body)) (body as Readable).unpipe(this.#stream);
  }

  /** Gives the stream's room in its session back, once. */
  #release(): void {
    const session = this.#session;
    if (session === undefined) return;
    this.#session = undefined;
    this.#pool.streamClosed(session);
  }
}

/** The response fields as undici hands them to onHeaders: name/value pairs, a repeated field once per value. */
function rawHeaders(headers: IncomingHttpHeaders): Buffer[] {
  const raw: Buffer[] = [];
  for (const name in headers) {
    // Pseudo-header fields (`:status`) are not fields of the response (RFC 9113 §8.3).
    if (name.charCodeAt(0) === 58) continue;
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) raw.push(Buffer.from(name, 'latin1'), Buffer.from(v, 'latin1'));
    else raw.push(Buffer.from(name, 'latin1'), Buffer.from(String(value), 'latin1'));
  }
  return raw;
}
