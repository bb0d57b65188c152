/**
 * HTTP/2 towards clients (RFC 9113): a node:http2 server that never listens itself, handed the connections a
 * listener has already accepted (a TLS connection that chose `h2` by ALPN, or a clear-text one that opened with the
 * HTTP/2 preface). Each stream goes to the forwarder as one exchange.
 *
 * Protections beyond what node:http2 does on its own: node (nghttp2) bounds concurrent streams by SETTINGS, the
 * header list by SETTINGS_MAX_HEADER_LIST_SIZE, refused streams, invalid frames and the rate of RST_STREAM frames it
 * receives (1,000 at once, then 33 a second). That last bound still lets a client start a thousand upstream
 * requests at once and cancel them (CVE-2023-44487, "rapid reset"): what reaches the origin is the cost. So each
 * session counts the streams the client cancels before their response has begun, and once at least
 * PREMATURE_RESET_MIN of them make up half its streams, it is sent GOAWAY (ENHANCE_YOUR_CALM) and closed, as Envoy's
 * premature-reset guard does. The other sessions never notice.
 */
import { constants, createServer, type Http2Server, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { HttpListenerConfig } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import { clientAddress } from '../../util/client-address.js';

/** Streams cancelled early before a session can be judged (Envoy's premature_reset_total_stream_count is 500). */
export const PREMATURE_RESET_MIN = 100;

/** How long a session cut off for rapid reset has to send its GOAWAY before its connection is closed. */
const GOAWAY_FLUSH_MS = 50;

/** What every stream of one client connection shares, worked out once per connection rather than per stream. */
export interface Http2Connection {
  /** The TLS version of the connection, '' in clear text. */
  readonly tls: string;
  /** The connection itself (node:http2's `session.socket` is a Proxy in front of it). */
  readonly socket: Socket | undefined;
  readonly clientIp: string;
}

export interface Http2Handler {
  (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, endStream: boolean, rawHeaders: readonly string[], connection: Http2Connection): void;
}

export interface Http2Counters {
  /** A session cut off for rapid reset. */
  rapidReset(): void;
}

interface SessionState extends Http2Connection {
  /** A stream of the session was cancelled before its response began. */
  readonly cancelledEarly: () => void;
  streams: number;
  premature: number;
  open: number;
  /** When the last open stream closed (or the session began), on the performance.now() clock. */
  idleSince: number;
}

const states = new WeakMap<ServerHttp2Session, SessionState>();

/** Each stream's session state, for the listeners below: one function for every stream, not a closure each. */
const kState = Symbol('ballast.http2.session');

/** Who hears of the stream closing before its exchange is done (the client reset it, or the session went). */
const kGone = Symbol('ballast.http2.gone');

interface TrackedStream extends ServerHttp2Stream {
  [kState]?: SessionState;
  [kGone]?: (() => void) | undefined;
}

/**
 * Call `listener` when the stream closes, until `unwatchClose`: through the one 'close' listener every stream has
 * here, not one added and removed per exchange.
 */
export function watchClose(stream: ServerHttp2Stream, listener: () => void): void {
  (stream as TrackedStream)[kGone] = listener;
}

export function unwatchClose(stream: ServerHttp2Stream): void {
  (stream as TrackedStream)[kGone] = undefined;
}

function noop(): void {}

/** A stream closed (it emits 'close' once): counted out of its session, and judged for rapid reset. */
function onStreamClose(this: TrackedStream): void {
  const state = this[kState]!;
  if (--state.open === 0) state.idleSince = performance.now();
  // Cancelled by the client before any response came (RST_STREAM from the peer).
  if (this.rstCode === constants.NGHTTP2_CANCEL && !this.headersSent && state.streams > 0) state.cancelledEarly();
  const gone = this[kGone];
  this[kGone] = undefined;
  gone?.();
}

export class Http2Front {
  readonly server: Http2Server;
  readonly #sessions = new Set<ServerHttp2Session>();
  readonly #log: Logger;
  readonly #listener: string;
  readonly #counters: Http2Counters;
  #keepAliveMs: number;
  /** Closes the sessions idle for keep_alive_timeout; runs while there are sessions. */
  #sweep: NodeJS.Timeout | undefined;

  constructor(config: HttpListenerConfig, handler: Http2Handler, counters: Http2Counters, log: Logger) {
    this.#log = log;
    this.#counters = counters;
    this.#listener = config.name;
    this.#keepAliveMs = config.client.keep_alive_timeout;
    this.server = createServer({
      settings: {
        maxConcurrentStreams: config.http2.max_concurrent_streams,
        maxHeaderListSize: config.http2.max_header_list_size ?? config.client.max_header_size,
        // RFC 8441 extended CONNECT (WebSocket over HTTP/2) is not offered: the tunnel path is HTTP/1.1's.
        enableConnectProtocol: false,
      },
      maxSessionMemory: 10,
    });
    this.server.on('session', (session: ServerHttp2Session) => {
      this.#sessions.add(session);
      const socket = this.#acceptingSocket;
      const state: SessionState = {
        cancelledEarly: () => this.#premature(session, state),
        streams: 0,
        premature: 0,
        open: 0,
        idleSince: performance.now(),
        tls: this.#acceptingTls,
        socket,
        clientIp: clientAddress(socket?.remoteAddress),
      };
      states.set(session, state);
      session.on('error', () => {});
      session.on('close', () => {
        this.#sessions.delete(session);
        if (this.#sessions.size === 0) this.#stopSweep();
      });
      this.#startSweep();
    });
    this.server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, rawHeaders?: string[]) => {
      stream.on('error', noop);
      const state = states.get(stream.session as ServerHttp2Session)!;
      state.streams++;
      state.open++;
      (stream as TrackedStream)[kState] = state;
      (stream as TrackedStream)[kGone] = undefined;
      stream.on('close', onStreamClose);
      // Node 20 passes the fields as received; older code paths may not: rebuild them from the object then.
      const raw = rawHeaders ?? flatten(headers);
      handler(stream, headers, (flags & constants.NGHTTP2_FLAG_END_STREAM) !== 0, raw, state);
    });
    this.server.on('sessionError', () => {});
    this.server.on('error', (err) => this.#log.error({ listener: this.#listener, err }, 'http2 error'));
  }

  update(config: HttpListenerConfig): void {
    if (this.#keepAliveMs === config.client.keep_alive_timeout) return;
    this.#keepAliveMs = config.client.keep_alive_timeout;
    this.#stopSweep();
    if (this.#sessions.size > 0) this.#startSweep();
  }

  /**
   * An idle session (no stream open) is closed after keep_alive_timeout, as NGINX's keepalive_timeout does for HTTP/2;
   * a session busy with a long response is not. One sweep for all sessions, at a tenth of the timeout (at most a
   * second late), rather than node:http2's session timeout: that one is re-armed on every frame read or written.
   */
  #startSweep(): void {
    const keepAliveMs = this.#keepAliveMs;
    if (this.#sweep !== undefined || keepAliveMs <= 0) return;
    this.#sweep = setInterval(() => {
      const now = performance.now();
      for (const session of this.#sessions) {
        const state = states.get(session);
        if (state !== undefined && state.open === 0 && now - state.idleSince >= keepAliveMs && !session.closed) session.close();
      }
    }, Math.min(1000, Math.max(10, keepAliveMs / 10)));
    this.#sweep.unref();
  }

  #stopSweep(): void {
    clearInterval(this.#sweep);
    this.#sweep = undefined;
  }

  /** A connection the listener accepted and found to speak HTTP/2; `tls`: its TLS version, '' in clear text. */
  accept(socket: Socket, tls: string): void {
    // node:http2 makes the session (and emits 'session') within this emit.
    this.#acceptingTls = tls;
    this.#acceptingSocket = socket;
    this.server.emit('connection', socket);
    this.#acceptingTls = '';
    this.#acceptingSocket = undefined;
  }

  #acceptingTls = '';
  #acceptingSocket: Socket | undefined;

  #premature(session: ServerHttp2Session, state: SessionState): void {
    state.premature++;
    if (state.premature < PREMATURE_RESET_MIN || state.premature * 2 < state.streams || session.destroyed) return;
    this.#log.warn({ listener: this.#listener, streams: state.streams, cancelled: state.premature }, 'http2 session cut off: streams cancelled as fast as they were opened (rapid reset)');
    this.#counters.rapidReset();
    state.streams = 0;
    // GOAWAY first, so the client is told why; nghttp2 refuses any stream it opens after it. The connection goes a
    // moment later, once the frame is out (destroy() at once would drop it unsent).
    session.goaway(constants.NGHTTP2_ENHANCE_YOUR_CALM);
    setTimeout(() => {
      session.destroy(undefined, constants.NGHTTP2_ENHANCE_YOUR_CALM);
      // The connection itself too: a session's destroy waits for its last write, which a client that does not read
      // would hold up forever.
      state.socket?.destroy();
    }, GOAWAY_FLUSH_MS).unref();
  }

  /** Open sessions: their streams finish, no new one starts (GOAWAY, RFC 9113 §6.8). */
  drain(): void {
    for (const session of this.#sessions) if (!session.closed) session.close();
  }

  /** Past the drain deadline: every session goes, its streams with it. */
  destroy(): void {
    this.#stopSweep();
    for (const session of this.#sessions) session.destroy();
  }
}

function flatten(headers: IncomingHttpHeaders): string[] {
  const out: string[] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) out.push(name, v);
    else out.push(name, String(value));
  }
  return out;
}
