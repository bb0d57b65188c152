/**
 * Per-upstream circuit breaking, the data path's own accounting (Envoy circuit breakers: `max_requests`,
 * `max_pending_requests`, `max_retries`). Per-server connections are capped by each server's undici Pool
 * (`limits.max_connections`).
 *
 * Over a limit a request is refused at once with 503 and `x-ballast-overflow: <limit>`, instead of queueing behind a
 * server that is already drowning. The counters live here and only here: a request is admitted and left once
 * (`admit`/`leave`), an attempt is counted pending and as a retry by its lease (lease.ts). The retry budget reads
 * them, but is applied by the retry policy alone (proxy/http/retry-policy.ts).
 */
import type { UpstreamConfig } from '../config/schema.js';

type LimitsConfig = UpstreamConfig['limits'];

export type Limit = 'max_requests' | 'max_pending_requests' | 'max_retries';

export class CircuitBreaker {
  /** Requests (and open WebSocket tunnels) in flight across the whole upstream: `max_requests`. */
  active = 0;
  /** Attempts dispatched and still waiting for a connection from their server's pool: `max_pending_requests`. */
  pending = 0;
  /** Retries in flight: what the retry budget and `max_retries` bound. */
  retries = 0;
  readonly #limits: LimitsConfig;

  constructor(limits: LimitsConfig) {
    this.#limits = limits;
  }

  /** Admit a new request, counting it in `active`; or the limit it would break, counting nothing. */
  admit(): Limit | undefined {
    if (this.active >= this.#limits.max_requests) return 'max_requests';
    if (this.pending >= this.#limits.max_pending_requests) return 'max_pending_requests';
    this.active++;
    return undefined;
  }

  /** An admitted request is over. */
  leave(): void {
    this.active--;
  }

  /** The fixed `max_retries` cap, when the config sets one instead of a budget. */
  get maxRetries(): number | undefined {
    return this.#limits.max_retries;
  }
}
