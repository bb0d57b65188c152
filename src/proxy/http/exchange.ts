/**
 * One request's life, from the client's head to its access line, as one sequence:
 *
 *   start → body → loop { lease → dispatch → decide } → respond → finish
 *
 * `run` reads top to bottom. The attempt (attempt.ts), undici's callback-shaped handler, streams the response; all
 * else is decided here, in order. The client side is a Downstream (downstream.ts): a node:http request, a WebSocket
 * handshake and (later) an HTTP/2 stream go through the same loop. Counting lives elsewhere, once: the circuit
 * breaker admits (upstream/circuit-breaker.ts), each attempt holds a lease (upstream/lease.ts) and gives it back with
 * its outcome, and the retry policy (proxy/retry-policy.ts) alone decides whether a failed attempt is tried again.
 */
import type { Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { PoolDispatchOptions } from '../../upstream/http2-request.js';
import { headTimerMs } from '../../upstream/host.js';
import type { Lease } from '../../upstream/lease.js';
import type { Limit } from '../../upstream/circuit-breaker.js';
import { RESET, type Outcome } from '../../upstream/outcome.js';
import { noServerDetail } from '../../upstream/no-server-detail.js';
import type { RetryStep } from '../retry-policy.js';
import { Attempt, type AttemptEnd, type AttemptOwner } from './attempt.js';
import type { Downstream } from './downstream.js';
import { classifyUpstreamError, FAILURES, type Failure } from './failures.js';
import type { CompiledRoute, ExchangeSite } from './forwarder-config.js';
import { RequestBody } from './request-body.js';
import { Tries } from './tries.js';
import { delay } from '../../util/clock.js';
import { bodiless, forwardRequestHeaders, forwardResponseHeaders, isLengthMismatch, retryAfterMillis, upgradeToken } from './headers.js';
import { relayHead } from './respond.js';
import { exchangeFields } from './access-record.js';

/** Lease options of an HTTP attempt: counted pending until a connection picks it up (`max_pending_requests`). */
const PENDING = Object.freeze({ pending: true });

export class Exchange implements AttemptOwner {
  readonly down: Downstream;
  readonly #forwarder: ExchangeSite;
  readonly #route: CompiledRoute;
  readonly #startedAt = performance.now();
  /** Set when the first attempt starts: the body a request brings is read before it counts (client time is not upstream time). */
  #deadline = 0;
  #headers: string[] = [];
  #requestId = '';
  #hashKey: string | undefined;
  /** Undefined for a request without a body. */
  #body: RequestBody | undefined;
  readonly #tries = new Tries();
  #current: Attempt | undefined;
  /** The lease of the attempt in flight (or of the open tunnel), until it is given back. */
  #leased: Lease | undefined;
  /** Ends a wait (for the body, or a backoff) early, when the client leaves. */
  #wake: (() => void) | undefined;
  #gone = false;
  /** Why the client is to blame for the end of the exchange (too slow, too large): answered so, never retried. */
  #clientFault: { failure: Failure; detail: string } | undefined;
  /** The one free retry for a keep-alive race has been used. */
  #raceRetried = false;
  /** The request metric is recorded once: at the end, or when a tunnel opens (its lifetime is not a request duration). */
  #recorded = false;
  #finished = false;

  constructor(forwarder: ExchangeSite, route: CompiledRoute, down: Downstream) {
    this.#forwarder = forwarder;
    this.#route = route;
    this.down = down;
  }

  /** Runs the exchange. It never rejects; should a bug make it, the forwarder logs it (one handler, bound once). */
  start(): void {
    this.run().catch(this.#forwarder.failed);
  }

  async run(): Promise<void> {
    this.#forwarder.started();
    const breaker = this.#route.upstream.breaker;
    let admitted = false;
    try {
      this.#begin();
      const limit = breaker.admit();
      if (limit !== undefined) return this.#overflow(limit, false);
      admitted = true;
      if (this.down.body === null || (await this.#readBody())) await this.#forward();
    } catch (err) {
      // Nothing above should throw; if it does, the request is still answered and logged, its server given back.
      this.#forwarder.deps.log.error({ requestId: this.#requestId, err }, 'exchange failed');
      this.#current?.cancel();
      this.#leased?.release();
      this.#fail(FAILURES.internal, undefined);
    } finally {
      if (admitted) breaker.leave();
      this.#finishGone();
    }
  }

  /** The request head as it goes upstream: forwarding headers, request id, hash key. */
  #begin(): void {
    const { down } = this;
    down.onGone(this.#onGone);
    const sendTimeout = this.#route.client.sendTimeoutMs;
    if (sendTimeout > 0) down.watchSend(sendTimeout, this.#onStall);
    const deps = this.#forwarder.deps;
    const clientIp = down.clientIp;
    const trusted = deps.trustedProxies !== undefined && deps.trustedProxies.check(clientIp, clientIp.includes(':') ? 'ipv6' : 'ipv4');
    const teTrailers = this.#route.upstream.config.protocol === 'http2';
    const forwarded = forwardRequestHeaders(down.rawHeaders, { clientIp, trusted, httpVersion: down.httpVersion, teTrailers, secure: down.tls !== undefined });
    this.#headers = forwarded.headers;
    this.#requestId = forwarded.requestId;
    // The same affinity for WebSocket handshakes as for plain requests: a user's sockets land where their requests do.
    if (this.#route.hashKey !== undefined) this.#hashKey = this.#route.hashKey({ headers: down.headers, url: down.url, clientIp });
  }

  /**
   * The body: refused when it declares more than `max_body_size`, read whole when it must be replayable (it fits in
   * `buffer_body`), else streamed from the client by the first attempt. False when the exchange is over already.
   * A client is given `body_timeout` between two reads of it; the upstream timeouts wait until it is all here
   * (Envoy does the same): a client too slow to send its request is its own fault, never the origin's.
   */
  async #readBody(): Promise<boolean> {
    const down = this.down;
    const limits = this.#route.client;
    const body = RequestBody.open(down, limits, {
      complete: () => {
        // The request is complete: the upstream deadline starts now for a body streamed while an attempt waited.
        const now = performance.now();
        if (this.#deadline !== 0) this.#deadline = now + this.#requestTimeout();
        this.#current?.bodySent(this.#tryTimeout(now));
      },
      slow: () => this.#blameClient(FAILURES.clientTimeout, 'client too slow to send its request body'),
      late: () => this.#blameClient(FAILURES.clientTimeout, 'client.request_timeout'),
      tooLarge: () => this.#blameClient(FAILURES.bodyTooLarge, `body over max_body_size ${limits.maxBodySize}`),
    });
    if (typeof body === 'string') {
      this.#fail(FAILURES.bodyTooLarge, body);
      return false;
    }
    this.#body = body;
    if (!this.#route.policy.shouldBuffer(down.method, body.length, down.headers['idempotency-key'] !== undefined)) return true;
    const read = await body.readWhole((stop) => (this.#wake = stop));
    this.#wake = undefined;
    if (read === 'short') this.#fail(FAILURES.badRequest, 'body length differs from Content-Length');
    return read === 'whole' && !this.#gone;
  }

  /** Whether the request waits on the client, still sending its body (not on the upstream, not reading it). */
  get uploading(): boolean {
    return this.#body?.waitingForClient ?? false;
  }

  /** The upstream's `timeouts.request`, or the shorter deadline the client set (a gRPC call's `grpc-timeout`). */
  #requestTimeout(): number {
    const own = this.#route.upstream.config.timeouts.request;
    return this.down.timeoutMs === undefined ? own : Math.min(own, this.down.timeoutMs);
  }

  /**
   * How long an attempt may wait for its response head from now: the per-try timeout within the deadline. In whole
   * milliseconds: Node keeps one timer list per distinct duration, and a fraction would make one per request.
   */
  #tryTimeout(now: number): number {
    return Math.ceil(Math.min(this.#route.policy.perTryTimeoutMs ?? Infinity, Math.max(1, this.#deadline - now)));
  }

  /** The loop: lease a server, send the request, and let the retry policy decide what a failure leads to. */
  async #forward(): Promise<void> {
    const upstream = this.#route.upstream;
    const sticky = this.#route.sticky;
    for (;;) {
      if (this.#gone) return;
      const preferred = this.#tries.count === 0 ? sticky?.hostFor(this.down.headers, upstream.now()) : undefined;
      const lease = upstream.lease(this.#hashKey, this.#tries.hosts, preferred === undefined ? PENDING : { preferred, pending: true });
      if (lease === undefined) {
        // The client hears that nothing is available; the access line says why (how many servers, in which state).
        return this.#fail(FAILURES.noServer, 'no available server', undefined, noServerDetail(upstream.hosts, upstream.now()));
      }
      const attempt = this.#dispatch(lease);
      let end = await attempt.ended;
      this.#current = undefined;
      if (end.kind === 'held') {
        const outcome: Outcome = { kind: 'response', status: end.status, latencyMs: performance.now() - attempt.startedAt };
        // RFC 9110 §10.2.3: a 503 or 429 may say when to come back.
        const retryAfterMs = end.status === 503 || end.status === 429 ? retryAfterMillis(end.rawHeaders) : undefined;
        const step = this.#gone ? undefined : this.#decide(outcome, attempt, retryAfterMs);
        if (step === undefined || step.kind === 'retry') {
          attempt.discard();
          this.#settle(lease, step === undefined ? undefined : outcome);
          if (step === undefined || !(await this.#backoff(step))) return;
          continue;
        }
        this.#current = attempt;
        end = await attempt.relay(end);
        this.#current = undefined;
      }
      if (end.kind === 'upgraded') return this.#tunnel(attempt, end.rawHeaders, end.socket);
      if (end.kind !== 'failed') return this.#respond(attempt, end);
      const failed = this.#failure(attempt, end.err);
      if (failed === undefined) return;
      if (failed.step.kind !== 'retry') return this.#fail(failed.failure, end.err.message);
      // Not retried after all: the client left (finished as gone), or the budget refused it (answered).
      if (!(await this.#backoff(failed.step))) return;
    }
  }

  #dispatch(lease: Lease): Attempt {
    const upstream = this.#route.upstream;
    this.#tries.add(lease.host);
    // One clock read for the deadline, the attempt's timer and its start (each read costs about 70 ns).
    const now = performance.now();
    if (this.#deadline === 0) this.#deadline = now + this.#requestTimeout();
    const tryTimeout = this.#tryTimeout(now);
    const attempt = new Attempt(this, lease, tryTimeout, now);
    this.#leased = lease;
    this.#current = attempt;
    const down = this.down;
    const servername = lease.host.transport.dispatchServername;
    const timeouts = upstream.config.timeouts;
    // With a body, undici's head timer keeps the attempt's length: refreshed by each body write, it is what ends an
    // attempt whose origin stops reading the body, once the attempt's own timer has deferred to the upload
    // (attempt.ts `timedOut`). Without one (nearly every request), the attempt's timer alone bounds the head.
    const headersTimeout = this.#body === undefined ? headTimerMs(timeouts) : tryTimeout;
    // forwardRequestHeaders dropped Upgrade and the fields Connection named: a WebSocket handshake asks for the
    // upgrade itself (undici writes it), any other upgrade request goes as the plain request it also is.
    const options: PoolDispatchOptions & { servername: string } = down.websocket
      ? { path: down.url, method: 'GET', headers: this.#headers, upgrade: 'websocket', headersTimeout, servername }
      : {
          servername,
          path: down.url,
          method: down.method as Dispatcher.HttpMethod,
          headers: this.#headers,
          body: this.#body?.payload ?? null,
          headersTimeout,
          bodyTimeout: timeouts.idle,
          trailerSource: this.#body === undefined ? undefined : down,
        };
    attempt.dispatch(options);
    return attempt;
  }

  /** Whether a response with this status is held until the retry policy has judged it. */
  holds(status: number): boolean {
    return this.#route.policy.retriesStatus(status) && this.#tries.count < this.#route.policy.attempts && !this.#gone;
  }

  /** Writes a relayed response head downstream; the error when the response cannot be relayed. */
  respond(attempt: Attempt, status: number, rawHeaders: Buffer[], statusText: string): Error | undefined {
    return relayHead(this.down, status, rawHeaders, statusText, this.#requestId, this.#route.sticky, attempt.host);
  }

  /** An attempt that got past its head: relayed whole, or cut short. */
  #respond(attempt: Attempt, end: Exclude<AttemptEnd, { kind: 'held' | 'failed' | 'upgraded' }>): void {
    const lease = attempt.lease;
    const status = attempt.status;
    if (end.kind === 'cut' && this.#gone) return this.#settle(lease, undefined);
    // A 304 may carry the Content-Length of the body it stands for (RFC 9110 §8.6), and neither it nor a 204 has a
    // body (RFC 9112 §6.3); undici still counts the bytes that never come. The response is complete.
    if (end.kind === 'complete' || (bodiless(status) && isLengthMismatch(end.err))) {
      const now = performance.now();
      this.#settle(lease, { kind: 'response', status, latencyMs: now - attempt.startedAt });
      this.down.end(end.kind === 'complete' ? end.trailers : undefined);
      return this.#finish(status, undefined, now);
    }
    // Bytes already went downstream: the only honest signal left is an unclean close, so the client can tell the
    // body is truncated. undici has discarded the upstream socket.
    const { failure, outcome } = classifyUpstreamError(end.err, true);
    this.#settle(lease, outcome);
    this.#forwarder.deps.log.warn({ requestId: this.#requestId, server: attempt.host.address, err: end.err.message }, 'upstream failed mid-response');
    this.down.reset();
    this.#finish(failure.status);
  }

  /** A 101: the request is answered (and counted) now; the lease and the admission are held until the tunnel closes. */
  async #tunnel(attempt: Attempt, rawHeaders: Buffer[], socket: Duplex): Promise<void> {
    const lease = attempt.lease;
    // RFC 6455 §4.1: the client fails a 101 whose Upgrade is not websocket. Ballast writes the 101 head itself, so
    // an origin that switched to anything else must not be passed off as having switched to WebSocket.
    if (upgradeToken(rawHeaders) !== 'websocket') {
      socket.destroy();
      this.#settle(lease, RESET);
      return this.#fail(FAILURES.invalidResponse, undefined);
    }
    const outcome: Outcome = { kind: 'response', status: 101, latencyMs: performance.now() - attempt.startedAt };
    lease.report(outcome);
    this.#tries.note(outcome);
    if (this.#gone) {
      socket.destroy();
      return this.#settle(lease, undefined);
    }
    this.#record(101);
    // A 101 has no body, so no transfer coding to refuse.
    await this.down.tunnel(forwardResponseHeaders(rawHeaders) ?? [], socket, this.#route.upstream.config.timeouts.idle);
    this.#settle(lease, undefined);
    this.#finish(101);
  }

  /**
   * An attempt that failed before a byte went downstream: the failure to answer with, and the policy's step;
   * undefined when the client left (the exchange ends as gone).
   */
  #failure(attempt: Attempt, err: Error): { failure: Failure; step: RetryStep } | undefined {
    if (this.#gone) {
      this.#settle(attempt.lease, undefined);
      return undefined;
    }
    // Timed out before undici wrote a byte (still queued for a busy server's connection): the server is not to
    // blame, and nothing reached it.
    const { failure, outcome } = attempt.reachedUpstream || !attempt.timedOutLocally
      ? classifyUpstreamError(err, attempt.reachedUpstream)
      : { failure: FAILURES.timeout, outcome: undefined };
    const step = this.#decide(outcome, attempt, undefined, attempt.mayHaveLostRace(err));
    this.#settle(attempt.lease, outcome);
    return { failure, step };
  }

  #decide(outcome: Outcome | undefined, attempt: Attempt, retryAfterMs: number | undefined, lostRace = false): RetryStep {
    const down = this.down;
    return this.#route.policy.decide(outcome, {
      method: down.method,
      hasIdempotencyKey: down.headers['idempotency-key'] !== undefined,
      bodyReplayable: this.#body?.replayable ?? true,
      reachedUpstream: attempt.reachedUpstream,
      attempts: this.#tries.count,
      wasRetry: attempt.lease.isRetry,
      deadline: this.#deadline,
      now: performance.now(),
      retryAfterMs,
      lostRace: lostRace && !this.#raceRetried,
    });
  }

  /** Waits out a retry's backoff; false when the exchange is over instead (the client left, or the budget is spent). */
  async #backoff(step: { reason: string; delayMs: number }): Promise<boolean> {
    this.#tries.retried(step.reason);
    if (step.reason === 'keepalive-race') this.#raceRetried = true;
    if (step.delayMs > 0) {
      await delay(step.delayMs, (wake) => (this.#wake = wake));
      this.#wake = undefined;
      if (this.#gone) return false;
    }
    if (this.#route.policy.admitAfterBackoff(step.reason)) return true;
    this.#overflow('max_retries', true);
    return false;
  }

  /** Give an attempt's server back with what it did (unless it reported already), noted for the access line. */
  #settle(lease: Lease, outcome: Outcome | undefined): void {
    this.#tries.note(outcome);
    lease.release(outcome);
    if (this.#leased === lease) this.#leased = undefined;
  }

  /** Answer `failure` with `detail`; the access line says `logDetail`, which may tell more than a client is told. */
  #fail(failure: Failure, detail: string | undefined, extra?: Record<string, string>, logDetail = detail): void {
    if (this.#finished) return;
    this.down.fail(failure, this.#requestId, detail, extra);
    this.#finish(failure.status, logDetail);
  }

  /** Over a circuit-breaker limit: 503 at once. `counted`: the retry policy counted this overflow already. */
  #overflow(limit: Limit, counted: boolean): void {
    if (!counted) this.#forwarder.deps.metrics.overflows.inc({ upstream: this.#route.upstream.name, limit });
    this.#fail(FAILURES.overflow, limit, { 'x-ballast-overflow': limit });
  }

  readonly #onGone = (): void => {
    if (this.#finished || this.#gone) return;
    this.#gone = true;
    this.#current?.cancel();
    this.#wake?.();
  };

  readonly #onStall = (): void => this.#blameClient(FAILURES.clientTimeout, 'client too slow to read its response');

  /** End the exchange as the client's fault: the upstream request is aborted, reported as nobody's failure. */
  #blameClient(failure: Failure, detail: string): void {
    // Over already (the origin answered early): a client still trickling its body must not hold the connection.
    if (this.#finished) return this.down.reset();
    if (this.#gone) return;
    this.#clientFault = { failure, detail };
    this.#onGone();
  }

  /**
   * When the loop ended because of the client: it was too slow or sent too much (answered, or reset if the response
   * had begun), node:http timed its request out (408), it left (499), or shutdown cut it at the drain deadline (503).
   */
  #finishGone(): void {
    if (this.#finished) return;
    const fault = this.#clientFault;
    if (fault !== undefined) {
      this.down.fail(fault.failure, this.#requestId, fault.detail);
      this.#finish(fault.failure.status, fault.detail);
    } else if (this.#forwarder.cutting) this.#finish(503, 'cut at the drain deadline');
    else if (this.down.timedOut) this.#finish(FAILURES.clientTimeout.status, 'client.request_timeout');
    else this.#finish(FAILURES.clientGone.status);
  }

  #record(status: number, now = performance.now()): void {
    if (!this.#recorded) this.#route.metrics.request(status, (now - this.#startedAt) / 1000);
    this.#recorded = true;
  }

  /** `now`: the caller's clock read, when it has just made one. */
  #finish(status: number, detail?: string, now = performance.now()): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#record(status, now);
    const deps = this.#forwarder.deps;
    deps.accessLog?.writeFields(exchangeFields(deps.listener, this.#requestId, this.down, this.#route.upstream.name, this.#tries, status, now - this.#startedAt, detail));
    // The connection's next pipelined request starts (and is counted) before this one stops counting, so a drain
    // waiting for the last exchange does not mistake the gap between them for the end.
    this.down.done();
    this.#forwarder.finished();
  }
}
