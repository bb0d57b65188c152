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
 * A request on a stream is an Http2Request (http2-request.ts), which keeps undici's dispatch-handler contract, so an
 * attempt (proxy/http/attempt.ts) drives either pool the same way. A request is handed to `onConnect` only once a
 * session is ready: one that fails before that reports a connect failure, never a request the server may have seen.
 */
import http2, { type ClientHttp2Session, type OutgoingHttpHeaders, type SecureClientSessionOptions } from 'node:http2';
import type { Dispatcher } from 'undici';
import type { Transport } from './transport.js';
import { codedError, Http2Request, type PoolDispatchOptions, type StreamHandler, type StreamSlot } from './http2-request.js';

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

class Session implements StreamSlot {
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
    this.#failQueued(err);
    // A session leaves #sessions when it emits 'close', so every one here has yet to.
    const closed = this.#sessions.map((s) => new Promise<void>((resolve) => {
      s.h2.once('close', () => resolve());
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

  /** A stream of `slot` (one of this pool's sessions) ended: its room goes to the next request waiting. */
  streamClosed(slot: StreamSlot): void {
    const session = slot as Session;
    session.streams--;
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
    const queue = this.#queue;
    this.#queue = [];
    for (const request of queue) request.fail(err);
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
    // A session's streams all close before it does, so what is in flight is on the sessions still listed.
    if (!this.#closing || this.#queue.length > 0 || this.#sessions.some((s) => s.streams > 0)) return;
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

