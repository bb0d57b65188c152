/**
 * WebSocket upgrades (RFC 6455 §4, RFC 9110 §7.8). The request is sent upstream through the server's undici Pool
 * with `upgrade: 'websocket'`; only when the origin answers 101 does the client socket become a tunnel. Any other
 * answer is relayed as an ordinary response and the connection closed. The two sockets live and die together.
 *
 * Any other upgrade (`h2c`, which `curl --http2` asks for on http:// URLs) is served as the ordinary request it also
 * is, the Upgrade ignored (RFC 9110 §7.8 lets a server do that), and the connection closed after the response:
 * node:http has handed the socket over, and Ballast does not parse what the client sends next on it.
 */
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Host } from '../../upstream/host.js';
import { outcomeLabel, RESET, type Outcome } from '../../upstream/outcome.js';
import { classifyUpstreamError, FAILURES, type Failure } from './failures.js';
import { bodiless, dropContentLength, forwardRequestHeaders, forwardResponseHeaders, isLengthMismatch } from './headers.js';
import { framingProblem } from './framing.js';
import type { CompiledRoute, HttpForwarder } from './forward.js';
import { clientAddress } from '../../util/client-address.js';

const noop = (): void => {};

/** The Upgrade token of a response, lower-cased; undefined without one. */
function upgradeToken(raw: readonly Buffer[]): string | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 7 && raw[i]!.toString('latin1').toLowerCase() === 'upgrade') return raw[i + 1]!.toString('latin1').trim().toLowerCase();
  }
  return undefined;
}

/** Bytes read from a client before its handshake is answered, beyond which it is paused (see Tunnel.start). */
const EARLY_LIMIT = 64 * 1024;

/** A reason phrase that can be written into a raw head as it is (visible ASCII, spaces and tabs). */
const PRINTABLE_REASON = /^[\t\x20-\x7e]*$/;

/** The `upgrade` listener of the node:http server. */
export function handleUpgrade(forwarder: HttpForwarder, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  socket.on('error', noop);
  const deps = forwarder.deps;
  const problem = framingProblem(req, true);
  if (problem !== undefined) {
    deps.metrics.badRequests.inc({ listener: deps.listener, reason: 'framing' });
    writeFailure(socket, FAILURES.badRequest, problem);
    forwarder.answeredHere(req, FAILURES.badRequest.status, problem);
    return;
  }
  const websocket = (req.headers.upgrade ?? '').trim().toLowerCase() === 'websocket';
  // RFC 6455 §4.1: the opening handshake is a GET; anything else would reach the origin rewritten as one.
  if (websocket && req.method !== 'GET') {
    writeFailure(socket, FAILURES.unsupportedUpgrade);
    forwarder.answeredHere(req, FAILURES.unsupportedUpgrade.status, FAILURES.unsupportedUpgrade.message);
    return;
  }
  const route = deps.router.match(req.headers.host ?? '', req.url ?? '/');
  if (route === undefined) {
    writeFailure(socket, FAILURES.noRoute);
    forwarder.answeredHere(req, FAILURES.noRoute.status, 'no route');
    return;
  }
  new Tunnel(forwarder, deps.routes.get(route)!, req, socket, head, websocket).start();
}

class Tunnel implements Dispatcher.DispatchHandler {
  readonly #forwarder: HttpForwarder;
  readonly #route: CompiledRoute;
  readonly #req: IncomingMessage;
  readonly #client: Duplex;
  readonly #head: Buffer;
  #headers: string[] = [];
  #host: Host | undefined;
  #tried: Host[] = [];
  #startedAt = performance.now();
  #reachedUpstream = false;
  #responseStarted = false;
  /** The current host's in-flight count includes this tunnel. */
  #leased = false;
  #abort: ((err?: Error) => void) | undefined;
  #resume: (() => void) | undefined;
  /** Timer bounding the wait for the origin's answer, queue time included (undici's starts on the socket). */
  #timer: NodeJS.Timeout | undefined;
  /** Given up while still queued in undici: later callbacks only clean up. */
  #abandoned = false;
  #status = 0;
  #hashKey: string | undefined;
  #sticky: Host | undefined;
  #clientIp = '';
  /** Counted in `upstream.active` (the circuit breaker's max_requests). */
  #counted = false;
  /** The request metric is recorded once, when the handshake is answered, not when the tunnel closes. */
  #recorded = false;
  readonly #arrivedAt = performance.now();
  /** A WebSocket handshake; otherwise an upgrade Ballast ignores, served as a plain request. */
  readonly #websocket: boolean;
  /** What the client sent after its handshake, before the origin answered: forwarded once the tunnel opens. */
  #early: Buffer[] = [];
  #earlyBytes = 0;

  constructor(forwarder: HttpForwarder, route: CompiledRoute, req: IncomingMessage, client: Duplex, head: Buffer, websocket: boolean) {
    this.#forwarder = forwarder;
    this.#route = route;
    this.#req = req;
    this.#client = client;
    this.#head = head;
    this.#websocket = websocket;
  }

  start(): void {
    this.#forwarder.started();
    // A tunnel is a request in flight for the circuit breaker too, for as long as it is open.
    const limit = this.#route.breaker.admitRequest();
    if (limit !== undefined) {
      this.#forwarder.deps.metrics.overflows.inc({ upstream: this.#route.upstream.name, limit });
      this.#end(FAILURES.overflow);
      return;
    }
    this.#route.upstream.active++;
    this.#counted = true;
    const clientIp = clientAddress(this.#req.socket.remoteAddress);
    this.#clientIp = clientIp;
    const trusted = this.#forwarder.deps.trustedProxies?.check(clientIp, clientIp.includes(':') ? 'ipv6' : 'ipv4') ?? false;
    this.#headers = forwardRequestHeaders(this.#req.rawHeaders, { clientIp, trusted, httpVersion: this.#req.httpVersion }).headers;
    // The same affinity as plain requests: a user's sockets land where their requests do.
    this.#hashKey = this.#route.hashKey?.({ headers: this.#req.headers, url: this.#req.url ?? '/', clientIp });
    this.#sticky = this.#route.sticky?.hostFor(this.#req, this.#route.upstream.now());
    this.#client.once('close', this.#onClientClose);
    if (this.#websocket) {
      // Read while the handshake is pending, or a client that leaves with a FIN (not a reset) goes unnoticed until
      // the timeout, holding its lease and blaming the origin for the wait. A WebSocket client sends nothing before
      // the 101 (RFC 6455 §4.1), so this is a few bytes at most; past EARLY_LIMIT the client is paused.
      this.#client.on('data', this.#onEarlyData);
      this.#client.once('end', this.#onEarlyEnd);
    }
    this.#try();
  }

  readonly #onEarlyData = (chunk: Buffer): void => {
    this.#early.push(chunk);
    this.#earlyBytes += chunk.length;
    if (this.#earlyBytes > EARLY_LIMIT) this.#client.pause();
  };

  /** The client half-closed before the origin answered: it is gone (its 'close' then aborts the attempt). */
  readonly #onEarlyEnd = (): void => {
    this.#client.destroy();
  };

  #try(): void {
    const host = (this.#tried.length === 0 ? this.#sticky : undefined) ?? this.#route.upstream.pick(this.#hashKey, this.#tried);
    if (host === undefined) {
      this.#end(FAILURES.noServer);
      return;
    }
    this.#tried.push(host);
    this.#host = host;
    host.inflight++;
    this.#leased = true;
    this.#reachedUpstream = false;
    this.#startedAt = performance.now();
    const timeout = this.#route.policy.perTryTimeoutMs ?? this.#route.upstream.config.timeouts.request;
    this.#abort = undefined;
    this.#timer = setTimeout(this.#onTimeout, timeout);
    this.#timer.unref();
    try {
      const path = this.#req.url ?? '/';
      // forwardRequestHeaders dropped Upgrade and the fields Connection named (HTTP2-Settings): a plain request.
      const options: Dispatcher.DispatchOptions = this.#websocket
        ? { path, method: 'GET', headers: this.#headers, upgrade: 'websocket', headersTimeout: timeout }
        : { path, method: this.#req.method as Dispatcher.HttpMethod, headers: this.#headers, headersTimeout: timeout };
      host.pool.dispatch(options, this);
    } catch (err) {
      this.onError(err as Error);
    }
  }

  readonly #onTimeout = (): void => {
    this.#timer = undefined;
    const err = Object.assign(new Error('upstream did not answer the upgrade in time'), { code: 'UND_ERR_HEADERS_TIMEOUT' });
    if (this.#abort !== undefined) this.#abort(err);
    else this.#abandon(FAILURES.timeout);
  };

  readonly #onClientClose = (): void => {
    if (this.#abort !== undefined) this.#abort(new Error('client closed'));
    else if (this.#host !== undefined && !this.#finished) this.#abandon(undefined);
  };

  /** Still queued for a connection: nothing was sent, so stop waiting now; onConnect aborts the request later. */
  #abandon(failure: Failure | undefined): void {
    if (this.#abandoned) return;
    this.#abandoned = true;
    this.#clearTimer();
    this.#release();
    if (failure === undefined) this.#done(this.#gone());
    else this.#end(failure);
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }

  onConnect(abort: (err?: Error) => void): void {
    this.#abort = abort;
    // Not a plain request's to judge a keep-alive race by (forward.ts): taken so that none reads it wrongly.
    this.#host?.takeFreshConnection();
    if (this.#abandoned || this.#client.destroyed) {
      abort(new Error('upgrade no longer wanted'));
      return;
    }
    this.#reachedUpstream = true;
  }

  onUpgrade(statusCode: number, rawHeaders: Buffer[] | string[] | null, upstream: Duplex): void {
    this.#clearTimer();
    upstream.on('error', noop);
    const raw = (rawHeaders ?? []).map((h) => (typeof h === 'string' ? Buffer.from(h, 'latin1') : h));
    // RFC 6455 §4.1: the client fails a 101 whose Upgrade is not websocket. Ballast writes the 101 head itself, so an
    // origin that switched to anything else must not be passed off as having switched to WebSocket.
    if (upgradeToken(raw) !== 'websocket') {
      upstream.destroy();
      this.#release();
      this.#report(RESET);
      this.#end(FAILURES.invalidResponse);
      return;
    }
    this.#status = statusCode;
    this.#report({ kind: 'response', status: statusCode, latencyMs: performance.now() - this.#startedAt });
    if (this.#client.destroyed) {
      upstream.destroy();
      this.#release();
      this.#done(499);
      return;
    }
    this.#record(101);
    // A 101 has no body, so no transfer coding to refuse.
    const headers = forwardResponseHeaders(raw) ?? [];
    let head = 'HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: websocket\r\n';
    for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
    this.#client.write(`${head}\r\n`);
    if (this.#head.length > 0) upstream.write(this.#head);
    this.#client.off('data', this.#onEarlyData);
    this.#client.off('end', this.#onEarlyEnd);
    for (const chunk of this.#early) upstream.write(chunk);
    this.#early = [];
    // Either side closing or failing tears down both: a half-open tunnel is a leaked socket.
    // The lease on the server is held while the tunnel is open, so least-request sees long-lived sockets.
    const teardown = (): void => {
      this.#client.destroy();
      upstream.destroy();
      this.#release();
      this.#done(101);
    };
    this.#client.once('close', teardown);
    upstream.once('close', teardown);
    // A tunnel silent for `timeouts.idle` both ways is closed (NGINX proxy_read_timeout, HAProxy timeout tunnel): every
    // relayed byte is a read or a write on the client socket, and a tunnel stalled by backpressure is silent too.
    const idle = this.#route.upstream.config.timeouts.idle;
    if (idle > 0) (this.#client as Partial<Socket> & Duplex).setTimeout?.(idle, teardown);
    this.#client.pipe(upstream);
    upstream.pipe(this.#client);
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true;
    this.#clearTimer();
    this.#resume = resume;
    // Not 101: relay it as an ordinary response, then close; the client must not treat the socket as upgraded.
    const headers = forwardResponseHeaders(rawHeaders);
    if (headers === undefined) {
      const err = Object.assign(new Error('upstream sent a transfer coding other than chunked'), { code: 'HPE_INVALID_TRANSFER_ENCODING' });
      this.onError(err);
      // undici reports the abort below to onError too: by then there is nothing left to do.
      this.#abandoned = true;
      this.#abort?.(err);
      return false;
    }
    this.#status = statusCode;
    this.#responseStarted = true;
    if (statusCode === 204) dropContentLength(headers);
    const reason = statusText !== '' && PRINTABLE_REASON.test(statusText) ? statusText : (STATUS_CODES[statusCode] ?? 'Unknown');
    let head = `HTTP/1.1 ${statusCode} ${reason}\r\nconnection: close\r\n`;
    for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
    this.#client.write(`${head}\r\n`);
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.#client.write(chunk)) return true;
    // Backpressure: undici pauses until the client drains.
    this.#client.once('drain', this.#resume!);
    return false;
  }

  onComplete(): void {
    this.#release();
    this.#report({ kind: 'response', status: this.#status, latencyMs: performance.now() - this.#startedAt });
    this.#client.end();
    this.#done(this.#status);
  }

  onError(err: Error): void {
    this.#clearTimer();
    if (this.#abandoned) return;
    this.#release();
    if (this.#client.destroyed) {
      this.#done(this.#gone());
      return;
    }
    if (this.#responseStarted && bodiless(this.#status) && isLengthMismatch(err)) {
      // A 304 with the Content-Length of the body it stands for, or a 204: complete (see forward.ts).
      this.#report({ kind: 'response', status: this.#status, latencyMs: performance.now() - this.#startedAt });
      this.#client.end();
      this.#done(this.#status);
      return;
    }
    const { failure, outcome } = classifyUpstreamError(err, this.#reachedUpstream);
    if (outcome !== undefined) this.#report(outcome);
    if (this.#responseStarted) {
      // The body ends with the connection here: only a reset tells the client it was cut short (a FIN would not).
      const client = this.#client as Partial<Socket> & Duplex;
      if (typeof client.resetAndDestroy === 'function') client.resetAndDestroy();
      else client.destroy();
      this.#done(failure.status);
      return;
    }
    // An upgrade request carries no body, so a connect failure can always go to the next server.
    if (outcome?.kind === 'connect-failure' && this.#tried.length < this.#route.policy.attempts) {
      this.#forwarder.deps.metrics.retries.inc({ upstream: this.#route.upstream.name, reason: 'connect-failure' });
      this.#try();
      return;
    }
    this.#end(failure);
  }

  #report(outcome: Outcome): void {
    const host = this.#host!;
    if (outcome.kind === 'response') host.latency.observe(outcome.latencyMs);
    else host.latency.observeFailure();
    this.#route.upstream.observe(host, outcome);
    this.#forwarder.deps.metrics.attempts.inc({ upstream: this.#route.upstream.name, server: host.address, outcome: outcomeLabel(outcome) });
  }

  #release(): void {
    if (this.#leased) {
      this.#host!.inflight--;
      this.#leased = false;
    }
  }

  #end(failure: Failure): void {
    writeFailure(this.#client, failure);
    this.#done(failure.status);
  }

  #finished = false;

  /** The client connection closed first: the client left (499), or shutdown cut it at the drain deadline (503). */
  #gone(): number {
    return this.#forwarder.cutting ? 503 : 499;
  }

  /** Request metrics describe the handshake: a tunnel's lifetime is not a request duration. */
  #record(status: number): void {
    if (this.#recorded) return;
    this.#recorded = true;
    this.#route.metrics.request(status, (performance.now() - this.#arrivedAt) / 1000);
  }

  #done(status: number): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#record(status);
    if (this.#counted) this.#route.upstream.active--;
    const access = this.#forwarder.deps.accessLog;
    if (access !== undefined) {
      access.write({
        listener: this.#forwarder.deps.listener,
        client: this.#clientIp,
        method: this.#req.method,
        url: this.#req.url,
        upgrade: this.#websocket ? 'websocket' : undefined,
        upstream: this.#route.upstream.name,
        server: this.#host?.address,
        attempts: this.#tried.length,
        status,
        durationMs: Math.round((performance.now() - this.#arrivedAt) * 1000) / 1000,
      });
    }
    this.#forwarder.finished();
  }
}

/** A proxy-generated response on a raw socket (no ServerResponse exists for an upgrade request), then close. */
export function writeFailure(socket: Duplex, failure: Failure, detail?: string): void {
  if (socket.destroyed) return;
  const body = detail === undefined ? `${failure.message}\n` : `${failure.message}: ${detail}\n`;
  let head = `HTTP/1.1 ${failure.status} ${failure.message}\r\nconnection: close\r\ncontent-type: text/plain; charset=utf-8\r\n`;
  head += `content-length: ${Buffer.byteLength(body)}\r\nx-ballast-error: ${failure.code}\r\n`;
  if (failure.retryAfter !== undefined) head += `retry-after: ${failure.retryAfter}\r\n`;
  socket.end(`${head}\r\n${body}`);
}
