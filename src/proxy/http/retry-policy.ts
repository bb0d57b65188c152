/**
 * When a failed attempt may be tried again, decided in one place.
 *
 * The safety rules (design.md; NGINX `proxy_next_upstream` never re-sends a non-idempotent request it has sent):
 * - nothing has gone downstream yet (checked by the caller: it only asks before the response starts);
 * - the request body can be sent again (no body, a buffered body, or a stream nobody has read from yet);
 * - either nothing reached the origin (a connect failure), or the method is idempotent (RFC 9110 §9.2.2), or the
 *   request carries an `Idempotency-Key` and the policy trusts it.
 */
import type { RetryConfig } from '../../config/schema.js';
import type { Random } from '../../util/clock.js';
import type { Outcome } from '../../upstream/outcome.js';

/** RFC 9110 §9.2.2. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

export function isIdempotent(method: string): boolean {
  return IDEMPOTENT.has(method);
}

export interface ResendContext {
  readonly method: string;
  /** undici had begun writing the request to a connected socket. */
  readonly reachedUpstream: boolean;
  readonly bodyReplayable: boolean;
  readonly hasIdempotencyKey: boolean;
}

/** Compiled once per route from its `retry` config. */
export class RetryPolicy {
  readonly attempts: number;
  readonly perTryTimeoutMs: number | undefined;
  readonly bufferBodyBytes: number;
  readonly budgetShare: number;
  readonly minRetries: number;
  readonly #onConnectFailure: boolean;
  readonly #onReset: boolean;
  readonly #onTimeout: boolean;
  readonly #statuses: ReadonlySet<number>;
  readonly #trustIdempotencyKey: boolean;
  readonly #backoffBase: number;
  readonly #backoffMax: number;

  constructor(config: RetryConfig) {
    this.attempts = config.attempts;
    this.perTryTimeoutMs = config.per_try_timeout;
    this.bufferBodyBytes = config.buffer_body;
    this.budgetShare = config.budget;
    this.minRetries = config.min_retries;
    this.#trustIdempotencyKey = config.idempotency_key;
    this.#backoffBase = config.backoff.base;
    this.#backoffMax = config.backoff.max;
    const on = new Set(config.retry_on);
    this.#onConnectFailure = on.has('connect-failure');
    this.#onReset = on.has('reset');
    this.#onTimeout = on.has('timeout');
    const statuses = new Set<number>();
    for (const c of on) {
      if (/^\d{3}$/.test(c)) statuses.add(Number(c));
      if (c === 'gateway-error') [502, 503, 504].forEach((s) => statuses.add(s));
      if (c === '5xx') for (let s = 500; s < 600; s++) statuses.add(s);
      if (c === 'retriable-4xx') statuses.add(409);
    }
    this.#statuses = statuses;
  }

  /** The retry reason (a bounded metric label) when `retry_on` covers this outcome, else undefined. */
  reasonFor(outcome: Outcome): string | undefined {
    switch (outcome.kind) {
      case 'connect-failure':
        return this.#onConnectFailure ? 'connect-failure' : undefined;
      case 'reset':
        return this.#onReset ? 'reset' : undefined;
      case 'timeout':
        return this.#onTimeout ? 'timeout' : undefined;
      case 'response':
        return this.#statuses.has(outcome.status) ? String(outcome.status) : undefined;
    }
  }

  retriesStatus(status: number): boolean {
    return this.#statuses.has(status);
  }

  /** The safety rule: may this request be sent (again) to an origin after this failure? */
  maySendAgain(ctx: ResendContext): boolean {
    return this.refusal(ctx) === undefined;
  }

  /**
   * Why the safety rule forbids sending this request again, or undefined when it allows it. A non-idempotent request
   * that reached the origin is `not-idempotent` whatever its body: such a body is never buffered, and a bigger
   * `buffer_body` would change nothing. `body-not-buffered` is a body too big (or chunked) to have been kept.
   */
  refusal(ctx: ResendContext): 'not-idempotent' | 'body-not-buffered' | undefined {
    if (ctx.reachedUpstream && !isIdempotent(ctx.method) && !(this.#trustIdempotencyKey && ctx.hasIdempotencyKey)) return 'not-idempotent';
    return ctx.bodyReplayable ? undefined : 'body-not-buffered';
  }

  /** Whether a body of this method and length is worth buffering so that it can be replayed. */
  shouldBuffer(method: string, contentLength: number | undefined, hasIdempotencyKey: boolean): boolean {
    if (this.attempts < 2 || contentLength === undefined || contentLength > this.bufferBodyBytes) return false;
    return isIdempotent(method) || (this.#trustIdempotencyKey && hasIdempotencyKey);
  }

  /** Full-jitter exponential backoff (AWS Architecture Blog, "Exponential Backoff And Jitter"). */
  backoffMs(retryIndex: number, random: Random): number {
    const cap = Math.min(this.#backoffMax, this.#backoffBase * 2 ** retryIndex);
    return Math.floor(random() * cap);
  }
}
