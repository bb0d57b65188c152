/**
 * Per-upstream circuit breaking and the retry budget, the data path's own accounting (Envoy circuit breakers:
 * `max_requests`, `max_pending_requests`, `max_retries`; the retry budget of Finagle and Envoy
 * `retry_budget.budget_percent` / `min_retry_concurrency`). Per-server connections are capped by each server's
 * undici Pool (`limits.max_connections`).
 *
 * Over a limit the request is refused at once with 503 and `x-ballast-overflow: <limit>`, instead of queueing
 * behind a server that is already drowning.
 */
import type { Upstream } from '../../upstream/upstream.js';

export type Limit = 'max_requests' | 'max_pending_requests' | 'max_retries';

export class CircuitBreaker {
  /** Attempts dispatched and still waiting for a connection from their server's pool. */
  pending = 0;
  /** Retries in flight. */
  retries = 0;
  readonly #upstream: Upstream;

  constructor(upstream: Upstream) {
    this.#upstream = upstream;
  }

  /** The limit a new request would break, or undefined. */
  admitRequest(): Limit | undefined {
    const u = this.#upstream;
    const limits = u.config.limits;
    if (u.active >= limits.max_requests) return 'max_requests';
    if (this.pending >= limits.max_pending_requests) return 'max_pending_requests';
    return undefined;
  }

  /**
   * Whether one more retry may start: under the fixed `max_retries` cap when one is set, else within the budget —
   * a share of the requests in flight, with a floor so a quiet pool can still retry (Envoy `retry_budget`).
   */
  admitRetry(budgetShare: number, minRetries: number, own = 0): boolean {
    const u = this.#upstream;
    // `own`: the asking request's own retry still in flight (a retry whose answer is being judged) is not a rival.
    const retries = this.retries - own;
    const cap = u.config.limits.max_retries;
    if (cap !== undefined) return retries < cap;
    return retries < Math.max(minRetries, Math.floor(budgetShare * u.active));
  }
}

const breakers = new WeakMap<Upstream, CircuitBreaker>();

/** One breaker per upstream, shared by every listener and route that sends to it. */
export function circuitBreakerFor(upstream: Upstream): CircuitBreaker {
  let b = breakers.get(upstream);
  if (b === undefined) {
    b = new CircuitBreaker(upstream);
    breakers.set(upstream, b);
  }
  return b;
}
