/**
 * The HTTP forwarder of one listener: takes each request node:http parsed (and each upgrade request), refuses
 * ambiguous framing, routes it, and hands it to an Exchange (exchange.ts) through the Downstream that fits.
 * It also counts the exchanges in flight, so shutdown can wait for them.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { ServerHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import { clientAddress } from '../../util/client-address.js';
import { Exchange } from './exchange.js';
import { FAILURES, type Failure } from './failures.js';
import type { CompiledRoute, ExchangeSite, ForwarderDeps } from './forwarder-config.js';
import { framingProblem, http2Problem } from './framing.js';
import { Http1Downstream } from './http1-downstream.js';
import { Http2Downstream, http1Fields } from './http2-downstream.js';
import type { Http2Connection } from './http2-front.js';
import { admit, busy } from './pipeline.js';
import { sendFailure, writeFailure } from './respond.js';
import { UpgradeDownstream } from './upgrade-downstream.js';

const noop = (): void => {};

/** `OPTIONS *` (RFC 9112 §3.2.4), answered here. */
const ASTERISK = Symbol('OPTIONS *');

/** The methods Ballast forwards: what `OPTIONS *` answers, and the `Allow` of CONNECT's 405 (listener.ts). */
export const ALLOWED_METHODS = 'GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, TRACE';

/** What admission reads of a request, whichever protocol brought it. */
export interface RequestHead {
  readonly method?: string | undefined;
  readonly url?: string | undefined;
  readonly headers: IncomingHttpHeaders;
  readonly socket: { readonly remoteAddress?: string | undefined } | null;
}

/** The id of a request answered here: the client's own `X-Request-Id`, or a new one (headers.ts does the same). */
function requestIdOf(req: RequestHead): string {
  const own = req.headers['x-request-id'];
  return typeof own === 'string' && own !== '' ? own : randomUUID();
}

/** A request answered here, without an upstream. */
class Refusal {
  constructor(
    readonly failure: Failure,
    readonly detail: string,
  ) {}
}

export class HttpForwarder implements ExchangeSite {
  /** Replaced whole on reload; an exchange keeps the route it started with. */
  deps: ForwarderDeps;
  /** Exchanges in flight, for graceful shutdown. */
  exchanges = 0;
  /** Shutdown reached its drain deadline and is closing the connections of the exchanges still in flight. */
  cutting = false;
  #idleWaiters: (() => void)[] = [];

  constructor(deps: ForwarderDeps) {
    this.deps = deps;
  }

  readonly failed = (err: unknown): void => this.deps.log.error({ err }, 'exchange failed');

  /** A connection closed for pipelining too deep (pipeline.ts): its waiting requests are dropped, counted once. */
  readonly #pipelineOverflow = (dropped: number, closed: boolean): void => {
    const deps = this.deps;
    deps.metrics.badRequests.inc({ listener: deps.listener, reason: 'pipeline-overflow' }, dropped);
    if (closed) deps.log.warn({ listener: deps.listener, dropped }, 'connection closed: too many pipelined requests waiting');
  };

  /** The `request` listener of the node:http server. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    req.on('error', noop);
    res.on('error', noop);
    const route = this.#admit(req, framingProblem(req, false), false);
    if (route === ASTERISK) {
      // RFC 9110 §9.3.7: `OPTIONS *` asks what the server supports; the proxy answers for itself.
      res.writeHead(200, { allow: ALLOWED_METHODS, 'content-length': 0, 'x-request-id': requestIdOf(req) });
      res.end();
      return;
    }
    if (route instanceof Refusal) {
      // A malformed request gets its connection closed (RFC 9112 §2.2), and says what was wrong.
      const malformed = route.failure === FAILURES.badRequest;
      sendFailure(res, route.failure, requestIdOf(req), malformed, malformed ? route.detail : undefined);
      return;
    }
    const wait = this.#rateLimited(req, route);
    if (wait > 0) {
      sendFailure(res, FAILURES.rateLimited, requestIdOf(req), false, undefined, { 'retry-after': String(Math.ceil(wait / 1000)) });
      return;
    }
    admit(req.socket, new Exchange(this, route, new Http1Downstream(req, res)), this.#pipelineOverflow);
  };

  /** The `upgrade` listener of the node:http server (RFC 9110 §7.8). */
  readonly handleUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', noop);
    // Pipelined behind a request still in flight: a 101 would overtake its answer (RFC 9112 §9.3.2 keeps answers in
    // order), and the socket would turn into a tunnel under it. No client does this; the connection is closed.
    if (busy(req.socket)) {
      socket.destroy();
      return;
    }
    const websocket = (req.headers.upgrade ?? '').trim().toLowerCase() === 'websocket';
    const route = this.#admit(req, framingProblem(req, true), websocket);
    if (route === ASTERISK) return writeFailure(socket, FAILURES.badRequest, 'asterisk-form request target in an upgrade');
    if (route instanceof Refusal) {
      writeFailure(socket, route.failure, route.failure === FAILURES.badRequest ? route.detail : undefined, requestIdOf(req));
      return;
    }
    const wait = this.#rateLimited(req, route);
    if (wait > 0) {
      writeFailure(socket, FAILURES.rateLimited, undefined, requestIdOf(req), { 'retry-after': String(Math.ceil(wait / 1000)) });
      return;
    }
    new Exchange(this, route, new UpgradeDownstream(req, socket, head, websocket)).start();
  };

  /** The `stream` handler of the listener's HTTP/2 sessions (http2-front.ts): one exchange per stream. */
  readonly handleStream = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, endStream: boolean, raw: readonly string[], connection: Http2Connection): void => {
    // RFC 9113 §8.3.1: `:authority` is what HTTP/1.1 calls Host; routing, hash keys and the origin see it as Host.
    const authority = headers[':authority'];
    if (typeof authority === 'string' && headers.host === undefined) headers.host = authority;
    const down = new Http2Downstream(stream, headers, http1Fields(raw), endStream, connection);
    const head: RequestHead = { method: down.method, url: down.url, headers, socket: connection.socket ?? null };
    const route = this.#admit(head, http2Problem(headers), false);
    if (route === ASTERISK) {
      stream.respond({ ':status': 200, allow: ALLOWED_METHODS, 'content-length': 0, 'x-request-id': requestIdOf(head) }, { endStream: true });
      return;
    }
    if (route instanceof Refusal) {
      down.fail(route.failure, requestIdOf(head), route.failure === FAILURES.badRequest ? route.detail : undefined);
      return;
    }
    const wait = this.#rateLimited(head, route);
    if (wait > 0) {
      down.fail(FAILURES.rateLimited, requestIdOf(head), undefined, { 'retry-after': String(Math.ceil(wait / 1000)) });
      return;
    }
    new Exchange(this, route, down).start();
  };

  /** The route of a request, or why it is answered here without an upstream (malformed, or no route): counted and logged. */
  #admit(req: RequestHead, problem: string | undefined, websocket: boolean): CompiledRoute | Refusal | typeof ASTERISK {
    const deps = this.deps;
    let refusal: Refusal;
    if (problem === undefined && req.url === '*') {
      this.#answeredHere(req, 200, 'OPTIONS *');
      return ASTERISK;
    }
    if (problem !== undefined) {
      deps.metrics.badRequests.inc({ listener: deps.listener, reason: 'framing' });
      deps.log.debug({ listener: deps.listener, reason: problem }, 'refused malformed request');
      refusal = new Refusal(FAILURES.badRequest, problem);
    } else if (websocket && req.method !== 'GET') {
      // RFC 6455 §4.1: the opening handshake is a GET; anything else would reach the origin rewritten as one.
      refusal = new Refusal(FAILURES.unsupportedUpgrade, FAILURES.unsupportedUpgrade.message);
    } else {
      const route = deps.router.match(req.headers.host ?? '', req.url ?? '/');
      const compiled = route === undefined ? undefined : deps.routes.get(route)!;
      if (compiled === undefined) refusal = new Refusal(FAILURES.noRoute, 'no route');
      else if (websocket && compiled.upstream.config.protocol === 'http2') refusal = new Refusal(FAILURES.websocketToHttp2, FAILURES.websocketToHttp2.message);
      else return compiled;
    }
    this.#answeredHere(req, refusal.failure.status, refusal.detail);
    return refusal;
  }

  /**
   * Milliseconds until the request's key may send again when it is over the route's `client.rate_limit` (429, counted
   * and logged here); 0 when it may go on.
   */
  #rateLimited(req: RequestHead, route: CompiledRoute): number {
    const limit = route.rateLimit;
    if (limit === undefined) return 0;
    const key = limit.keyOf(req);
    const wait = key === undefined ? 0 : limit.limiter.take(key);
    if (wait === 0) return 0;
    limit.refused.pending++;
    route.metrics.request(FAILURES.rateLimited.status, 0);
    this.deps.accessLog?.write({
      listener: this.deps.listener,
      client: clientAddress(req.socket?.remoteAddress),
      method: req.method,
      url: req.url,
      upstream: route.upstream.name,
      status: FAILURES.rateLimited.status,
      durationMs: 0,
      bytes: 0,
      detail: 'rate limited',
    });
    return wait;
  }

  /** A request answered without an upstream is still a request: counted, and given its access line. */
  #answeredHere(req: RequestHead, status: number, detail: string): void {
    this.deps.unrouted.request(status, 0);
    this.deps.accessLog?.write({
      listener: this.deps.listener,
      client: clientAddress(req.socket?.remoteAddress),
      method: req.method,
      url: req.url,
      status,
      durationMs: 0,
      bytes: 0,
      detail,
    });
  }

  started(): void {
    this.exchanges++;
  }

  finished(): void {
    this.exchanges--;
    if (this.exchanges === 0 && this.#idleWaiters.length > 0) {
      for (const w of this.#idleWaiters.splice(0)) w();
    }
  }

  /** Resolves when no exchange is in flight. */
  idle(): Promise<void> {
    if (this.exchanges === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }
}
