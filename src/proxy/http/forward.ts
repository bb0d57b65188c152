/**
 * The HTTP forwarding path: one Exchange per client request, one Attempt per try at a server.
 *
 * An Attempt is the undici dispatch handler itself (the legacy raw-header callbacks, so no header object is built):
 * it streams the response straight into the client's `res`, pausing undici when `res.write` reports backpressure
 * and resuming on `drain`. The request body is streamed from `req` the same way, unless it is small enough to buffer
 * for replay. When an attempt fails before any response byte went downstream, the retry policy decides whether the
 * next candidate server gets the request.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { BlockList } from 'node:net';
import type { Dispatcher } from 'undici';
import type { Random } from '../../util/clock.js';
import type { HashKeyReader } from '../../balancer/hash-key.js';
import type { AccessLog } from '../../access-log.js';
import type { Logger } from '../../log.js';
import type { HotCell, Metrics, RouteMetrics } from '../../admin/metrics.js';
import type { Host } from '../../upstream/host.js';
import type { Upstream } from '../../upstream/upstream.js';
import { outcomeLabel, type Outcome } from '../../upstream/outcome.js';
import { classifyUpstreamError, FAILURES, type Failure } from './failures.js';
import { bodiless, dropContentLength, forwardRequestHeaders, forwardResponseHeaders, isLengthMismatch } from './headers.js';
import { framingProblem, hasRequestBody } from './framing.js';
import type { Route, Router } from './router.js';
import type { RetryPolicy } from './retry-policy.js';
import { clientAddress } from '../../util/client-address.js';
import type { CircuitBreaker, Limit } from './circuit-breaker.js';
import type { StickySessions } from './sticky-sessions.js';

/** Per-route state computed once per config, never per request. */
export interface CompiledRoute {
  readonly route: Route;
  readonly upstream: Upstream;
  readonly policy: RetryPolicy;
  readonly metrics: RouteMetrics;
  readonly hashKey: HashKeyReader | undefined;
  readonly breaker: CircuitBreaker;
  readonly sticky: StickySessions | undefined;
}

export interface ForwarderDeps {
  readonly listener: string;
  readonly router: Router;
  readonly routes: ReadonlyMap<Route, CompiledRoute>;
  readonly trustedProxies: BlockList | undefined;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Where access lines go, or undefined when the access log is off. */
  readonly accessLog: AccessLog | undefined;
  readonly random: Random;
  /** `ballast_requests_total` for requests answered before an upstream was chosen (400, 404): `upstream=""`. */
  readonly unrouted: RouteMetrics;
}

const noop = (): void => {};

/** Per host: outcome label → its metrics cell, so a finished attempt costs a Map lookup and `++`. */
const attemptCells = new WeakMap<Host, Map<string, HotCell>>();

function attemptCell(metrics: Metrics, upstream: string, host: Host, outcome: string): HotCell {
  let cells = attemptCells.get(host);
  if (cells === undefined) attemptCells.set(host, (cells = new Map()));
  let cell = cells.get(outcome);
  if (cell === undefined) cells.set(outcome, (cell = metrics.attemptCell(upstream, host.address, outcome)));
  return cell;
}

function onAttemptTimeout(attempt: Attempt): void {
  attempt.timedOut();
}

export class HttpForwarder {
  /** Replaced whole on reload; an exchange keeps the route it started with. */
  deps: ForwarderDeps;
  /** Exchanges in flight, for graceful shutdown. */
  inflight = 0;
  /** Shutdown reached its drain deadline and is closing the connections of the exchanges still in flight. */
  cutting = false;
  #idleWaiters: (() => void)[] = [];

  constructor(deps: ForwarderDeps) {
    this.deps = deps;
  }

  /** The `request` listener of the node:http server. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    req.on('error', noop);
    res.on('error', noop);
    const problem = framingProblem(req, false);
    if (problem !== undefined) {
      this.deps.metrics.badRequests.inc({ listener: this.deps.listener, reason: 'framing' });
      this.deps.log.debug({ listener: this.deps.listener, reason: problem }, 'refused malformed request');
      sendFailure(res, FAILURES.badRequest, undefined, true, problem);
      this.answeredHere(req, FAILURES.badRequest.status, problem);
      return;
    }
    const route = this.deps.router.match(req.headers.host ?? '', req.url ?? '/');
    if (route === undefined) {
      sendFailure(res, FAILURES.noRoute, undefined, false);
      this.answeredHere(req, FAILURES.noRoute.status, 'no route');
      return;
    }
    new Exchange(this, this.deps.routes.get(route)!, req, res).start();
  };

  /** A request answered without an upstream is still a request: counted, and given its access line. */
  answeredHere(req: IncomingMessage, status: number, detail: string): void {
    this.deps.unrouted.request(status, 0);
    this.deps.accessLog?.write({
      listener: this.deps.listener,
      client: clientAddress(req.socket.remoteAddress),
      method: req.method,
      url: req.url,
      status,
      durationMs: 0,
      bytes: 0,
      detail,
    });
  }

  started(): void {
    this.inflight++;
  }

  finished(): void {
    this.inflight--;
    if (this.inflight === 0 && this.#idleWaiters.length > 0) {
      for (const w of this.#idleWaiters.splice(0)) w();
    }
  }

  /** Resolves when no exchange is in flight. */
  idle(): Promise<void> {
    if (this.inflight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }
}

interface AttemptRecord {
  readonly server: string;
  outcome: string;
  retryReason?: string;
}

class Exchange {
  readonly #forwarder: HttpForwarder;
  readonly #route: CompiledRoute;
  readonly breaker: CircuitBreaker;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly #startedAt = performance.now();
  /** Set when the first attempt starts: the body a request brings is read before it counts (client time is not upstream time). */
  #deadline = 0;
  #headers: string[] = [];
  #requestId = '';
  #clientIp = '';
  #hashKey: string | undefined;
  #body: IncomingMessage | Buffer | null = null;
  #tried: Host[] = [];
  #records: AttemptRecord[] = [];
  #current: Attempt | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #leasedUpstream = false;
  /** A response status line has been written downstream: from here on nothing can be retried. */
  responseStarted = false;
  #finished = false;
  #clientGone = false;
  /** The one free retry for a keep-alive race has been used. */
  #raceRetried = false;
  /** The reason of a retry waiting out its backoff. */
  #pendingRetry: string | undefined;
  bytesSent = 0;

  constructor(forwarder: HttpForwarder, route: CompiledRoute, req: IncomingMessage, res: ServerResponse) {
    this.#forwarder = forwarder;
    this.#route = route;
    this.breaker = route.breaker;
    this.req = req;
    this.res = res;
  }

  start(): void {
    const { req } = this;
    const deps = this.#forwarder.deps;
    this.#forwarder.started();
    // RFC 9112 §6.1: no Transfer-Encoding to an HTTP/1.0 client. Node chunks for one that sent `TE: chunked`; the
    // body is then delimited by the close instead.
    if (req.httpVersionMinor === 0) this.res.useChunkedEncodingByDefault = false;
    // `on`, not `once`: the response lives for one request, and `once` allocates a wrapper each time.
    this.res.on('close', this.#onClientClose);
    this.#clientIp = clientAddress(req.socket.remoteAddress);
    const trusted = deps.trustedProxies !== undefined && deps.trustedProxies.check(this.#clientIp, this.#clientIp.includes(':') ? 'ipv6' : 'ipv4');
    const forwarded = forwardRequestHeaders(req.rawHeaders, { clientIp: this.#clientIp, trusted, httpVersion: req.httpVersion });
    this.#headers = forwarded.headers;
    this.#requestId = forwarded.requestId;
    if (this.#route.hashKey !== undefined) {
      this.#hashKey = this.#route.hashKey({ headers: req.headers, url: req.url ?? '/', clientIp: this.#clientIp });
    }

    const upstream = this.#route.upstream;
    const limit = this.#route.breaker.admitRequest();
    if (limit !== undefined) {
      this.#overflow(limit);
      return;
    }
    upstream.active++;
    this.#leasedUpstream = true;

    if (!hasRequestBody(req)) {
      this.#body = null;
      this.#attempt();
      return;
    }
    const cl = req.headers['content-length'];
    const length = cl === undefined ? undefined : Number(cl);
    if (this.#route.policy.shouldBuffer(req.method ?? 'GET', length, req.headers['idempotency-key'] !== undefined)) {
      this.#bufferBody(length!);
    } else {
      this.#body = req;
      this.#attempt();
    }
  }

  /** Reads a body known to fit in `buffer_body`, so a retry can send it again. */
  #bufferBody(length: number): void {
    const chunks: Buffer[] = [];
    let size = 0;
    this.req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      chunks.push(chunk);
    });
    this.req.once('end', () => {
      if (this.#finished) return;
      this.#body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
      if (size !== length) {
        this.#fail(FAILURES.badRequest, 'body length differs from Content-Length');
        return;
      }
      this.#attempt();
    });
  }

  #bodyReplayable(): boolean {
    const body = this.#body;
    // A stream that no attempt has read from can still be handed to the next one whole.
    return body === null || Buffer.isBuffer(body) || !body.readableDidRead;
  }

  #attempt(isRetry = false): void {
    if (this.#finished) return;
    const upstream = this.#route.upstream;
    const sticky = this.#route.sticky;
    const host = (this.#tried.length === 0 ? sticky?.hostFor(this.req, upstream.now()) : undefined) ?? upstream.pick(this.#hashKey, this.#tried);
    if (host === undefined) {
      this.#fail(FAILURES.noServer, 'no available server');
      return;
    }
    this.#tried.push(host);
    host.inflight++;
    if (this.#deadline === 0) this.#deadline = performance.now() + upstream.config.timeouts.request;
    const attempt = new Attempt(this, host, isRetry);
    if (isRetry) this.#route.breaker.retries++;
    this.#route.breaker.pending++;
    this.#current = attempt;
    this.#records.push({ server: host.address, outcome: 'pending' });
    const remaining = Math.max(1, this.#deadline - performance.now());
    const perTry = this.#route.policy.perTryTimeoutMs;
    const headersTimeout = perTry === undefined ? remaining : Math.min(perTry, remaining);
    // Our own timer, always: undici's headers timer ticks once a second, and starts only once the request is on a
    // socket, so it would not bound the time spent queued for a busy server's connection.
    attempt.armTimeout(headersTimeout);
    const req = this.req;
    const opts: Dispatcher.DispatchOptions = {
      path: req.url ?? '/',
      method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
      headers: this.#headers,
      body: this.#body,
      headersTimeout,
      bodyTimeout: upstream.config.timeouts.idle,
    };
    try {
      host.pool.dispatch(opts, attempt);
    } catch (err) {
      attempt.onError(err as Error);
    }
  }

  /** An attempt got its response head. Returns false to pause undici. */
  onAttemptHeaders(attempt: Attempt, status: number, rawHeaders: Buffer[], statusText: string): boolean {
    const policy = this.#route.policy;
    if (policy.retriesStatus(status) && this.#records.length < policy.attempts && !this.#clientGone) {
      const outcome: Outcome = { kind: 'response', status, latencyMs: performance.now() - attempt.startedAt };
      // RFC 9110 §10.2.3: a 503 or 429 may say when to come back; wait that long if the deadline allows.
      const retryAfterMs = status === 503 || status === 429 ? retryAfterMillis(rawHeaders) : undefined;
      const reason = this.#retryReason(outcome, true, retryAfterMs, attempt.isRetry ? 1 : 0);
      if (reason !== undefined) {
        // Drop this response (its connection too: the body is not worth reading) and try another server.
        attempt.discard();
        this.#settle(attempt, outcome);
        this.#retry(reason, retryAfterMs);
        return false;
      }
    }
    const headers = forwardResponseHeaders(rawHeaders);
    if (headers === undefined) {
      attempt.fail(Object.assign(new Error('upstream sent a transfer coding other than chunked'), { code: 'HPE_INVALID_TRANSFER_ENCODING' }));
      return false;
    }
    this.responseStarted = true;
    // RFC 9110 §8.6: no Content-Length in a 204 (Node would pass the origin's on).
    if (status === 204) dropContentLength(headers);
    this.#route.sticky?.remember(this.req, attempt.host, headers);
    // The reason phrase means nothing (RFC 9112 §4) and one Node will not write would throw here: use the standard.
    if (statusText !== '' && VALID_REASON.test(statusText)) this.res.writeHead(status, statusText, headers);
    else this.res.writeHead(status, headers);
    // Node holds the head until the first body write. When no body byte came with it (the origin streams, or is
    // slow), send the head on its own once undici is done with this read, so the client sees it now.
    process.nextTick(flushHead, this);
    return true;
  }

  onAttemptData(attempt: Attempt, chunk: Buffer): boolean {
    this.bytesSent += chunk.length;
    if (this.res.write(chunk)) return true;
    this.res.once('drain', attempt.resume!);
    return false;
  }

  onAttemptComplete(attempt: Attempt): void {
    this.#settle(attempt, { kind: 'response', status: this.res.statusCode, latencyMs: performance.now() - attempt.startedAt });
    this.res.end();
    this.#finish(this.res.statusCode);
  }

  onAttemptError(attempt: Attempt, err: Error): void {
    if (this.#clientGone) {
      this.#settle(attempt, undefined);
      this.#finishGone();
      return;
    }
    // Timed out before undici wrote a byte (still queued for a busy server's connection): the server is not to
    // blame, and nothing reached it.
    const { failure, outcome } = attempt.reachedUpstream || !attempt.timedOutLocally
      ? classifyUpstreamError(err, attempt.reachedUpstream)
      : { failure: FAILURES.timeout, outcome: undefined };
    if (this.responseStarted && bodiless(this.res.statusCode) && isLengthMismatch(err)) {
      // A 304 may carry the Content-Length of the body it stands for (RFC 9110 §8.6), and neither it nor a 204 has
      // a body (RFC 9112 §6.3); undici still counts the bytes that never come. The response is complete.
      this.onAttemptComplete(attempt);
      return;
    }
    this.#settle(attempt, outcome);
    if (this.responseStarted) {
      // Bytes already went downstream: the only honest signal left is an unclean close, so the client can tell the
      // body is truncated. A reset, not a FIN: a body delimited by the close (an HTTP/1.0 client's) would look
      // complete after a FIN. undici has discarded the upstream socket.
      this.#forwarder.deps.log.warn({ requestId: this.#requestId, server: attempt.host.address, err: err.message }, 'upstream failed mid-response');
      const socket = this.res.socket;
      if (socket !== null && !socket.destroyed) socket.resetAndDestroy();
      else this.res.destroy();
      this.#finish(failure.status);
      return;
    }
    if (outcome !== undefined && this.#records.length < this.#route.policy.attempts) {
      const reason = this.#retryReason(outcome, attempt.reachedUpstream, undefined, 0);
      if (reason !== undefined) {
        this.#retry(reason, undefined);
        return;
      }
    }
    if (outcome?.kind === 'reset' && !this.#raceRetried && mayHaveLostRace(attempt, err) && this.#mayRetryRace()) {
      // A pooled keep-alive connection the origin closed just as it was reused (RFC 9112 §9.3.1 allows the
      // retry of an idempotent request on a new connection): retry once, whatever the policy says.
      this.#raceRetried = true;
      this.#retry('keepalive-race', undefined);
      return;
    }
    this.#fail(failure, err.message);
  }

  #mayRetryRace(): boolean {
    const method = this.req.method ?? 'GET';
    return this.#route.policy.maySendAgain({ method, reachedUpstream: true, bodyReplayable: this.#bodyReplayable(), hasIdempotencyKey: false })
      && performance.now() < this.#deadline;
  }

  /** The retry reason when the policy covers this outcome and the safety rules allow sending the request again. */
  #retryReason(outcome: Outcome, reachedUpstream: boolean, retryAfterMs: number | undefined, own: number): string | undefined {
    const policy = this.#route.policy;
    const reason = policy.reasonFor(outcome);
    if (reason === undefined) return undefined;
    const upstream = this.#route.upstream;
    const method = this.req.method ?? 'GET';
    const bodyReplayable = this.#bodyReplayable();
    const refusal = policy.refusal({ method, reachedUpstream, bodyReplayable, hasIdempotencyKey: this.req.headers['idempotency-key'] !== undefined });
    if (refusal !== undefined) {
      this.#forwarder.deps.metrics.retriesSkipped.inc({ upstream: upstream.name, reason: refusal });
      return undefined;
    }
    if (performance.now() + (retryAfterMs ?? 0) >= this.#deadline) {
      this.#forwarder.deps.metrics.retriesSkipped.inc({ upstream: upstream.name, reason: 'deadline' });
      return undefined;
    }
    // A refused connection reached nothing and costs the pool nothing, so it does not draw from the budget.
    if (outcome.kind !== 'connect-failure' && !this.#route.breaker.admitRetry(policy.budgetShare, policy.minRetries, own)) {
      this.#forwarder.deps.metrics.retriesSkipped.inc({ upstream: upstream.name, reason: 'budget' });
      this.#forwarder.deps.metrics.overflows.inc({ upstream: upstream.name, limit: 'max_retries' });
      return undefined;
    }
    return reason;
  }

  #retry(reason: string, retryAfterMs: number | undefined): void {
    const upstream = this.#route.upstream;
    this.#records[this.#records.length - 1]!.retryReason = reason;
    this.#forwarder.deps.metrics.retries.inc({ upstream: upstream.name, reason });
    this.#pendingRetry = reason;
    const backoff = this.#route.policy.backoffMs(this.#records.length - 1, this.#forwarder.deps.random);
    const delay = Math.max(backoff, retryAfterMs ?? 0);
    if (delay <= 0) {
      this.#startRetry();
      return;
    }
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#startRetry();
    }, delay);
  }

  /**
   * The budget is checked again when the backoff ends: retries admitted together must not all start past it
   * (max_retries: 1 must mean one retry in flight). The jittered backoff spreads a burst of failures, so retries
   * count from when they are sent. Refused connects and the keep-alive race are exempt, as at admission.
   */
  #startRetry(): void {
    const reason = this.#pendingRetry;
    this.#pendingRetry = undefined;
    const policy = this.#route.policy;
    if (reason !== 'connect-failure' && reason !== 'keepalive-race' && !this.#route.breaker.admitRetry(policy.budgetShare, policy.minRetries)) {
      this.#forwarder.deps.metrics.retriesSkipped.inc({ upstream: this.#route.upstream.name, reason: 'budget' });
      this.#overflow('max_retries');
      return;
    }
    this.#attempt(true);
  }

  /** Release the server an attempt leased and report what it did. */
  #settle(attempt: Attempt, outcome: Outcome | undefined): void {
    if (attempt.settled) return;
    attempt.settled = true;
    if (this.#current === attempt) this.#current = undefined;
    attempt.leavePending();
    if (attempt.isRetry) this.#route.breaker.retries--;
    const host = attempt.host;
    host.inflight--;
    const record = this.#records[this.#records.length - 1]!;
    const upstream = this.#route.upstream;
    if (outcome === undefined) {
      record.outcome = 'cancelled';
    } else {
      record.outcome = outcomeLabel(outcome);
      if (outcome.kind === 'response') host.latency.observe(outcome.latencyMs);
      else host.latency.observeFailure();
      upstream.observe(host, outcome);
    }
    attemptCell(this.#forwarder.deps.metrics, upstream.name, host, record.outcome).pending++;
  }

  #fail(failure: Failure, detail: string): void {
    if (this.#finished) return;
    sendFailure(this.res, failure, this.#requestId, false, undefined);
    this.#finish(failure.status, detail);
  }

  #overflow(limit: Limit): void {
    this.#forwarder.deps.metrics.overflows.inc({ upstream: this.#route.upstream.name, limit });
    sendFailure(this.res, FAILURES.overflow, this.#requestId, false, limit, { 'x-ballast-overflow': limit });
    this.#finish(FAILURES.overflow.status, limit);
  }

  readonly #onClientClose = (): void => {
    if (this.res.writableFinished) return;
    this.#clientGone = true;
    if (this.#retryTimer !== undefined) {
      clearTimeout(this.#retryTimer);
      this.#retryTimer = undefined;
    }
    const current = this.#current;
    if (current !== undefined) current.cancel();
    else this.#finishGone();
  };

  /** The client connection closed first: the client left (499), or shutdown cut it at the drain deadline (503). */
  #finishGone(): void {
    if (this.#forwarder.cutting) this.#finish(503, 'cut at the drain deadline');
    else this.#finish(FAILURES.clientGone.status);
  }

  #finish(status: number, detail?: string): void {
    if (this.#finished) return;
    this.#finished = true;
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
    const upstream = this.#route.upstream;
    if (this.#leasedUpstream) upstream.active--;
    const seconds = (performance.now() - this.#startedAt) / 1000;
    this.#route.metrics.request(status, seconds);
    const access = this.#forwarder.deps.accessLog;
    if (access !== undefined) {
      const records = this.#records;
      access.write({
        listener: this.#forwarder.deps.listener,
        requestId: this.#requestId,
        client: this.#clientIp,
        method: this.req.method,
        url: this.req.url,
        upstream: upstream.name,
        server: records[records.length - 1]?.server,
        attempts: records.length,
        // Every try with its outcome and why it was retried; one try is told by server and status already.
        tries: records.length > 1 ? records : undefined,
        status,
        durationMs: Math.round(seconds * 1e6) / 1000,
        bytes: this.bytesSent,
        detail,
      });
    }
    this.#forwarder.finished();
  }
}

/** One try at one server; the undici dispatch handler. */
class Attempt implements Dispatcher.DispatchHandler {
  readonly exchange: Exchange;
  readonly host: Host;
  readonly startedAt = performance.now();
  /** Not the request's first attempt: counts against the retry budget while in flight. */
  readonly isRetry: boolean;
  reachedUpstream = false;
  settled = false;
  /** Counted in the breaker's `pending` until a connection picks it up. */
  #pending = true;
  resume: (() => void) | undefined;
  #abort: ((err?: Error) => void) | undefined;
  /** Set when this attempt's response is no longer wanted: its callbacks are ignored. */
  #dropped = false;
  /** Set when the client went away: the attempt is aborted as soon as undici lets us. */
  #cancelled = false;
  #timer: NodeJS.Timeout | undefined;
  /** Ballast's own per-try timer fired (not undici's). */
  timedOutLocally = false;
  /** Written on a connection opened for it, which cannot have been closed by the origin as idle. */
  onFreshConnection = false;
  /** An interim (1xx) response arrived: the origin answered this request. */
  sawInterim = false;

  constructor(exchange: Exchange, host: Host, isRetry: boolean) {
    this.exchange = exchange;
    this.host = host;
    this.isRetry = isRetry;
  }

  leavePending(): void {
    if (this.#pending) {
      this.#pending = false;
      this.exchange.breaker.pending--;
    }
  }

  armTimeout(ms: number): void {
    this.#timer = setTimeout(onAttemptTimeout, ms, this);
    this.#timer.unref();
  }

  /** The per-try (or request) timer fired before response headers: abort as a headers timeout. */
  timedOut(): void {
    this.#timer = undefined;
    this.timedOutLocally = true;
    const err = Object.assign(new Error('upstream did not answer within the per-try timeout'), { code: 'UND_ERR_HEADERS_TIMEOUT' });
    if (this.#abort !== undefined) this.#abort(err);
    else this.#giveUpQueued(err);
  }

  /**
   * Still queued in undici (no connection free yet), so nothing was written: stop waiting now rather than when a
   * connection frees up, and let `onConnect` abort it silently later.
   */
  #giveUpQueued(err: Error): void {
    if (this.#dropped) return;
    this.#dropped = true;
    this.#clearTimer();
    this.exchange.onAttemptError(this, err);
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }

  discard(): void {
    this.#dropped = true;
    this.#abort?.(new Error('response discarded for a retry'));
  }

  cancel(): void {
    this.#cancelled = true;
    const err = new Error('client closed the request');
    if (this.#abort !== undefined) this.#abort(err);
    else this.#giveUpQueued(err);
  }

  onConnect(abort: (err?: Error) => void): void {
    this.#abort = abort;
    this.leavePending();
    // Whatever becomes of this attempt, it is the one written on the connection just opened, if one was.
    this.onFreshConnection = this.host.takeFreshConnection();
    // Aborted before a byte is written: it never reached the origin, and reports nothing about it.
    if (this.#dropped || this.#cancelled) {
      abort(new Error('attempt no longer wanted'));
      return;
    }
    this.reachedUpstream = true;
  }

  /** The response cannot be relayed: stop it here and report `err` as its failure. */
  fail(err: Error): void {
    if (this.#dropped) return;
    this.#dropped = true;
    this.#clearTimer();
    this.#abort?.(err);
    this.exchange.onAttemptError(this, err);
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (this.#dropped) return false;
    // 1xx interim responses (RFC 9110 §15.2) are not relayed; Node sends its own 100 Continue.
    if (statusCode < 200) {
      this.sawInterim = true;
      return true;
    }
    this.#clearTimer();
    this.resume = resume;
    return this.exchange.onAttemptHeaders(this, statusCode, rawHeaders, statusText);
  }

  onData(chunk: Buffer): boolean {
    if (this.#dropped) return false;
    return this.exchange.onAttemptData(this, chunk);
  }

  onComplete(): void {
    this.#clearTimer();
    if (this.#dropped) return;
    this.exchange.onAttemptComplete(this);
  }

  onError(err: Error): void {
    this.#clearTimer();
    if (this.#dropped) return;
    this.#dropped = true;
    this.exchange.onAttemptError(this, err);
  }
}

/** Writes a proxy-generated error response, once, if the response has not started. */
export function sendFailure(
  res: ServerResponse,
  failure: Failure,
  requestId: string | undefined,
  close: boolean,
  detail?: string,
  extra?: Record<string, string>,
): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const body = detail === undefined ? `${failure.message}\n` : `${failure.message}: ${detail}\n`;
  const headers: Record<string, string | number> = {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'x-ballast-error': failure.code,
  };
  if (requestId !== undefined) headers['x-request-id'] = requestId;
  if (failure.retryAfter !== undefined) headers['retry-after'] = failure.retryAfter;
  if (close) headers.connection = 'close';
  if (extra !== undefined) Object.assign(headers, extra);
  res.writeHead(failure.status, headers);
  res.end(body);
}

/** `Retry-After` in milliseconds, from delay-seconds or an HTTP-date (RFC 9110 §10.2.3); undefined if absent or bad. */
export function retryAfterMillis(rawHeaders: readonly Buffer[]): number | undefined {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length !== 11 || name.toString('latin1').toLowerCase() !== 'retry-after') continue;
    const value = rawHeaders[i + 1]!.toString('latin1').trim();
    if (/^\d+$/.test(value)) return Number(value) * 1000;
    const at = Date.parse(value);
    return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
  }
  return undefined;
}

/**
 * Whether an attempt may have lost the keep-alive race: written on a pooled connection that had already carried
 * responses (undici's SocketError reports the socket's byte counts), not on one opened for it, and answered with
 * nothing, not even a 1xx. A connection opened for this request that fails after some bytes came back is the
 * origin failing this request, not a race; with `attempts: 1` it must not be sent twice.
 */
function mayHaveLostRace(attempt: Attempt, err: Error): boolean {
  if (attempt.onFreshConnection || attempt.sawInterim) return false;
  const socket = (err as Error & { socket?: { bytesRead?: number } }).socket;
  return socket?.bytesRead !== undefined && socket.bytesRead > 0;
}

/** A reason phrase Node will write (RFC 9112 §4: HTAB, SP, VCHAR, obs-text). */
const VALID_REASON = /^[\t\x20-\x7e\x80-\xff]*$/;

/** Sends a response head that is still held back because no body byte followed it (see onAttemptHeaders). */
function flushHead(exchange: Exchange): void {
  const res = exchange.res;
  if (exchange.bytesSent === 0 && !res.writableEnded && !res.destroyed) res.flushHeaders();
}
