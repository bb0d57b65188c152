/**
 * One HTTP listener: a node:http server with limits against slow and abusive clients, the forwarder for requests,
 * the tunnel for upgrades, and a clean answer (400/408/431 then close) for what the parser refuses.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Server as NetServer, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { HttpListenerConfig } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import { compileForwarder, type HttpListenerDeps } from './forwarder-config.js';
import type { RateLimiters } from './route-rate-limit.js';
import { ALLOWED_METHODS, HttpForwarder } from './forward.js';
import { timedOut } from './http1-downstream.js';
import { listenProxy } from '../../util/listen.js';
import { createAcceptor, type Acceptor } from './acceptor.js';
import { Http2Front } from './http2-front.js';


export type { HttpListenerDeps };

export class HttpListener {
  readonly name: string;
  config: HttpListenerConfig;
  /** The HTTP/1 server: it listens itself in clear text, and is handed HTTP/1 connections under TLS (acceptor.ts). */
  readonly server: Server;
  /** The HTTP/2 sessions, when the listener offers HTTP/2 (ALPN h2, or `http2.cleartext`). */
  readonly http2: Http2Front | undefined;
  readonly acceptor: Acceptor;
  readonly forwarder: HttpForwarder;
  readonly #log: Logger;
  readonly #connections = new Set<Socket>();
  #untrack: (() => void) | undefined;
  readonly #maxHeaderSize: number;
  /** Rate-limit buckets, kept across reloads that keep a limit. */
  readonly #rateLimiters: RateLimiters = new Map();

  constructor(config: HttpListenerConfig, deps: HttpListenerDeps) {
    this.name = config.name;
    this.config = config;
    this.#log = deps.log;
    this.#maxHeaderSize = config.client.max_header_size;
    this.forwarder = new HttpForwarder(compileForwarder(config, deps, this.#rateLimiters));

    const client = config.client;
    this.server = createServer({
      headersTimeout: client.headers_timeout,
      requestTimeout: client.request_timeout,
      keepAliveTimeout: client.keep_alive_timeout,
      maxHeaderSize: client.max_header_size,
      // Never: the lenient parser is what request smuggling feeds on.
      insecureHTTPParser: false,
      // framing.ts refuses a missing Host itself, with the error code and request id every answer carries.
      requireHostHeader: false,
      noDelay: true,
      // How often Node enforces headers_timeout/request_timeout (default 30 s): a stalled request line is cut
      // within a second of its deadline, not half a minute later.
      connectionsCheckingInterval: Math.min(1000, client.headers_timeout),
    });
    this.server.on('request', this.forwarder.handle);
    // `Expect: 100-continue`: the 100 is sent once the request is admitted (routed, under its limits), not by
    // node:http up front, so a request that will be refused is answered before its body is sent (RFC 9110 §10.1.1).
    this.server.on('checkContinue', this.forwarder.handle);
    this.server.on('upgrade', this.forwarder.handleUpgrade);
    this.server.on('clientError', onClientError);
    // A reverse proxy is not a forward proxy: CONNECT tunnels are refused (RFC 9110 §9.3.6 lets a server decline).
    this.server.on('connect', (_req, socket: Duplex) => {
      socket.on('error', () => {});
      socket.end(`HTTP/1.1 405 Method Not Allowed\r\nallow: ${ALLOWED_METHODS}\r\nconnection: close\r\ncontent-length: 0\r\nx-request-id: ${randomUUID()}\r\n\r\n`);
    });
    this.server.on('error', (err) => this.#log.error({ listener: this.name, err }, 'listener error'));
    const offersH2 = config.tls !== undefined ? config.tls.alpn.includes('h2') : config.http2.cleartext;
    this.http2 = offersH2 ? new Http2Front(config, this.forwarder.handleStream, deps.metrics.edge.http2(config.name), deps.log) : undefined;
    this.acceptor = createAcceptor(config, this.server, this.http2, deps.metrics.edge.tls(config.name));
    const certificates = this.acceptor.certificates;
    if (certificates !== undefined) {
      deps.metrics.edge.trackCertificates(config.name, certificates);
      this.#untrack = () => deps.metrics.edge.untrackCertificates(config.name, certificates);
    }
    const accepting = this.acceptor.server;
    if (accepting !== this.server) accepting.on('error', (err) => this.#log.error({ listener: this.name, err }, 'listener error'));
    // Per connection: a Set entry and a count the scrape reads (a prom-client gauge child would turn its labels into
    // a key on every inc and dec). A socket closes once, so `on` (`once` allocates a wrapper per connection).
    const open = deps.metrics.openConnections(config.name);
    const connections = this.#connections;
    const onClose = function (this: Socket): void {
      connections.delete(this);
      open.value--;
    };
    // Counted where they are accepted: before the TLS handshake, whatever protocol they then speak.
    if (client.max_connections !== undefined) accepting.maxConnections = client.max_connections;
    accepting.on('connection', (socket: Socket) => {
      connections.add(socket);
      open.value++;
      socket.on('close', onClose);
    });
  }

  /** The socket that listens: the node:http server itself, or the TLS (or preface-sniffing) server before it. */
  get #accepting(): NetServer {
    return this.acceptor.server;
  }

  /**
   * Reload: requests that arrive from now on are routed by the new config; requests in flight finish with the
   * routes they started with. The port stays bound, so no connection is refused during a reload.
   */
  update(config: HttpListenerConfig, deps: HttpListenerDeps): void {
    this.config = config;
    this.forwarder.deps = compileForwarder(config, deps, this.#rateLimiters);
    const client = config.client;
    this.server.headersTimeout = client.headers_timeout;
    this.server.requestTimeout = client.request_timeout;
    this.server.keepAliveTimeout = client.keep_alive_timeout;
    this.#accepting.maxConnections = client.max_connections ?? Infinity;
    this.acceptor.update(config);
    this.http2?.update(config);
    // node:http fixes the header size limit when the server is created.
    if (client.max_header_size !== this.#maxHeaderSize) deps.log.warn({ listener: this.name }, 'client.max_header_size changes take effect at the next restart');
  }

  listen(): Promise<AddressInfo> {
    return listenProxy(this.#accepting, this.config.listen.host, this.config.listen.port);
  }

  get port(): number {
    return (this.#accepting.address() as AddressInfo).port;
  }

  /** Stop accepting, let in-flight requests finish until the deadline, then close every connection. */
  async close(drainMs: number): Promise<void> {
    this.#untrack?.();
    const accepting = this.#accepting;
    const closed = new Promise<void>((resolve) => accepting.close(() => resolve()));
    if (accepting !== this.server) this.server.close(() => {});
    this.server.closeIdleConnections();
    // HTTP/2 sessions get GOAWAY: their streams in flight finish, no new one starts (RFC 9113 §6.8).
    this.http2?.drain();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, drainMs);
    });
    await Promise.race([this.forwarder.idle(), deadline]);
    clearTimeout(timer);
    this.forwarder.cutting = this.forwarder.exchanges > 0;
    this.server.closeAllConnections();
    this.http2?.destroy();
    for (const socket of this.#connections) socket.destroy();
    await closed;
    // The exchanges just cut end once undici has aborted their upstream requests, a tick or two later; wait (briefly)
    // so their access lines are written before the log is flushed for the last time.
    if (this.forwarder.exchanges > 0) {
      await Promise.race([this.forwarder.idle(), new Promise((resolve) => setTimeout(resolve, CUT_GRACE_MS).unref())]);
    }
  }
}

/** How long a stopping listener waits for the exchanges it cut at the drain deadline to report their end. */
const CUT_GRACE_MS = 1000;

/**
 * What llhttp refused: answer once, plainly, and close (RFC 9112 §2.2: a server may close after a 400).
 * As Node's own default does, a status is written whenever no response head has gone out on this socket yet, even
 * with a request pending (a chunked body found malformed after its head was parsed): only a response already under
 * way cannot take one, and is cut short instead.
 */
function onClientError(err: Error & { code?: string; bytesParsed?: number; rawPacket?: Buffer }, socket: Duplex): void {
  const pending = (socket as Socket & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  // RFC 9112 §9.6: after a request with `close` (or HTTP/1.0 without keep-alive) llhttp refuses whatever follows.
  // The request that asked to close is still answered, and its response closes the connection; the rest is ignored.
  if (err.code === 'HPE_CLOSED_CONNECTION' && pending != null) return;
  if (!socket.writable || (pending != null && pending.headersSent !== false)) {
    socket.destroy();
    return;
  }
  let status = '400 Bad Request';
  if (err.code === 'HPE_HEADER_OVERFLOW') status = overflowInRequestLine(err) ? '414 URI Too Long' : '431 Request Header Fields Too Large';
  else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    status = '408 Request Timeout';
    // The exchange of that request sees its client go, and logs it as this 408, not as a client that left.
    if (pending != null) timedOut.add(pending as ServerResponse);
  }
  // Every response carries a request id, these too (there is no request to take one from).
  const response = `HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\nx-request-id: ${randomUUID()}\r\n\r\n`;
  // A pending request is cancelled as soon as the answer is flushed (the socket's close aborts its upstream attempt),
  // rather than waiting for the client to close its side.
  if (pending != null) socket.end(response, () => socket.destroy());
  else socket.end(response);
}

/**
 * Whether the size limit was hit before the request line ended (RFC 9112 §3: a request-target too long to parse
 * MUST get 414). Only knowable when the packet that overflowed starts with the request line; otherwise 431.
 */
function overflowInRequestLine(err: { bytesParsed?: number; rawPacket?: Buffer }): boolean {
  const packet = err.rawPacket;
  if (packet === undefined || !Buffer.isBuffer(packet)) return false;
  const parsed = packet.subarray(0, err.bytesParsed ?? packet.length);
  return parsed.indexOf(10 /* LF */) === -1 && /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+ /.test(parsed.subarray(0, 32).toString('latin1'));
}
