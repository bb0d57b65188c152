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

/** Streams cancelled early before a session can be judged (Envoy's premature_reset_total_stream_count is 500). */
export const PREMATURE_RESET_MIN = 100;

/** How long a session cut off for rapid reset has to send its GOAWAY before its connection is closed. */
const GOAWAY_FLUSH_MS = 50;

export interface Http2Handler {
  (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, endStream: boolean, rawHeaders: readonly string[], tls: string): void;
}

export interface Http2Counters {
  /** A session cut off for rapid reset. */
  rapidReset(): void;
}

interface SessionState {
  streams: number;
  premature: number;
  open: number;
  /** The TLS version of the connection, '' in clear text. */
  tls: string;
  socket: Socket | undefined;
}

const states = new WeakMap<ServerHttp2Session, SessionState>();

export class Http2Front {
  readonly server: Http2Server;
  readonly #sessions = new Set<ServerHttp2Session>();
  readonly #log: Logger;
  readonly #listener: string;
  readonly #counters: Http2Counters;
  #keepAliveMs: number;

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
      states.set(session, { streams: 0, premature: 0, open: 0, tls: this.#acceptingTls, socket: this.#acceptingSocket });
      session.on('error', () => {});
      session.on('close', () => this.#sessions.delete(session));
      // An idle session (no stream open) is closed after keep_alive_timeout, as NGINX's keepalive_timeout does for
      // HTTP/2; a session busy with a long response is not.
      if (this.#keepAliveMs > 0) {
        session.setTimeout(this.#keepAliveMs, () => {
          if (states.get(session)!.open === 0) session.close();
        });
      }
    });
    this.server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, rawHeaders?: string[]) => {
      stream.on('error', () => {});
      const session = stream.session as ServerHttp2Session;
      const state = states.get(session)!;
      state.streams++;
      state.open++;
      stream.once('close', () => {
        state.open--;
        // Cancelled by the client before any response came (RST_STREAM from the peer).
        if (stream.rstCode === constants.NGHTTP2_CANCEL && !stream.headersSent && state.streams > 0) this.#premature(session, state);
      });
      // Node 20 passes the fields as received; older code paths may not: rebuild them from the object then.
      const raw = rawHeaders ?? flatten(headers);
      handler(stream, headers, (flags & constants.NGHTTP2_FLAG_END_STREAM) !== 0, raw, state.tls);
    });
    this.server.on('sessionError', () => {});
    this.server.on('error', (err) => this.#log.error({ listener: this.#listener, err }, 'http2 error'));
  }

  update(config: HttpListenerConfig): void {
    this.#keepAliveMs = config.client.keep_alive_timeout;
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
