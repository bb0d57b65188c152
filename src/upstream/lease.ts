/**
 * A lease on one server for one attempt: the only place that counts requests in flight per server and reports what
 * an attempt did. HTTP requests, WebSocket tunnels and TCP connections all take one from `Upstream.lease`, and give
 * it back once: `release` decrements what taking it incremented, whatever path the attempt ended by.
 *
 * Reporting an outcome feeds, in one go, the server's latency estimate (peak-EWMA), the upstream's outcome sink
 * (passive outlier detection subscribes there) and `ballast_upstream_attempts_total`. A tunnel or a TCP connection
 * reports when it opens and releases when it closes: its server is busy for as long as it lasts, which is what
 * least-request and the connection cap must see.
 */
import type { CircuitBreaker } from './circuit-breaker.js';
import type { Host } from './host.js';
import { outcomeLabel, type Outcome } from './outcome.js';

/** Where a lease reports to: the upstream's outcome sink and its per-server attempt counters. */
export interface LeaseSink {
  readonly breaker: CircuitBreaker;
  observe(host: Host, outcome: Outcome): void;
  countAttempt(host: Host, label: string): void;
}

export class Lease {
  readonly host: Host;
  /** Not the request's first attempt: counted in the breaker's `retries` (the retry budget) until it reports. */
  readonly isRetry: boolean;
  readonly #sink: LeaseSink;
  /** Counted in the breaker's `pending` until a connection picks the attempt up (HTTP only). */
  #pending: boolean;
  #reported = false;
  #released = false;
  /** Still counted in the breaker's `retries`: a retry is in flight until it has its answer. */
  #countedRetry: boolean;

  constructor(sink: LeaseSink, host: Host, isRetry: boolean, pending: boolean) {
    this.#sink = sink;
    this.host = host;
    this.isRetry = isRetry;
    this.#pending = pending;
    this.#countedRetry = isRetry;
    host.inflight++;
    if (isRetry) sink.breaker.retries++;
    if (pending) sink.breaker.pending++;
  }

  /** A connection picked the attempt up: it no longer waits in its server's queue (`max_pending_requests`). */
  connected(): void {
    if (this.#pending) {
      this.#pending = false;
      this.#sink.breaker.pending--;
    }
  }

  /**
   * What the attempt did, once (later reports are ignored). `undefined`: given up because the client left or the
   * proxy refused it; the server is not to blame and learns nothing from it (counted as `cancelled`).
   */
  report(outcome: Outcome | undefined): void {
    if (this.#reported) return;
    this.#reported = true;
    // The retry has its answer: a tunnel or a TCP connection that lasts hours must not hold the retry budget.
    if (this.#countedRetry) {
      this.#countedRetry = false;
      this.#sink.breaker.retries--;
    }
    const host = this.host;
    if (outcome !== undefined) {
      if (outcome.kind === 'response' || outcome.kind === 'connected') host.latency.observe(outcome.latencyMs);
      else host.latency.observeFailure();
      this.#sink.observe(host, outcome);
    }
    this.#sink.countAttempt(host, outcomeLabel(outcome));
  }

  /** Give the server back, reporting `outcome` first unless the attempt has reported already. Idempotent. */
  release(outcome?: Outcome): void {
    if (this.#released) return;
    this.#released = true;
    this.report(outcome);
    this.connected();
    this.host.inflight--;
  }
}
