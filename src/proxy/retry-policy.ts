/**
 * Whether a failed attempt is tried again, decided here and only here, for HTTP requests, WebSocket handshakes and
 * TCP connects alike: `decide(outcome, context)` weighs the rules of `retry_on`, the attempts left, the safety rules,
 * the deadline, the budget and the keep-alive race, and answers retry (why, after how long), refuse (why; counted
 * in `ballast_retries_skipped_total`) or done (nothing to retry).
 *
 * The safety rules (design.md; NGINX `proxy_next_upstream` never re-sends a non-idempotent request it has sent):
 * - nothing has gone downstream yet (the caller only asks before the response starts);
 * - the request body can be sent again (no body, a buffered body, or a stream nobody has read from yet);
 * - either nothing reached the origin (a connect failure), or the method is idempotent (RFC 9110 §9.2.2), or the
 *   request carries an `Idempotency-Key` and the policy trusts it.
 *
 * The budget (Finagle, Envoy `retry_budget`): retries in flight stay under a share of the requests in flight, with a
 * floor, or under a fixed `limits.max_retries`. Two kinds of retry are exempt, since they cost the pool nothing:
 * a refused connect (nothing reached a server) and the one retry of a keep-alive race (RFC 9112 §9.3.1: a pooled
 * connection the origin closed just as it was reused; the request never reached an application).
 */
import type { RetryConfig } from '../config/schema.js';
import type { Random } from '../util/clock.js';
import type { CircuitBreaker } from '../upstream/circuit-breaker.js';
import type { Outcome } from '../upstream/outcome.js';

/** RFC 9110 §9.2.2. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

export function isIdempotent(method: string): boolean {
  return IDEMPOTENT.has(method);
}

/** What a decision needs to know of the request and of the attempt that failed. */
export interface RetryContext {
  readonly method: string;
  readonly hasIdempotencyKey: boolean;
  /** The body can be sent again: none, buffered, or a stream nobody has read from. */
  readonly bodyReplayable: boolean;
  /** undici had begun writing the request to a connected socket. */
  readonly reachedUpstream: boolean;
  /** Attempts made so far, the failed one included. */
  readonly attempts: number;
  /** The failed attempt was itself a retry, still counted in the budget: not a rival of the retry it asks for. */
  readonly wasRetry: boolean;
  /** The request's deadline and the time now (ms, monotonic); `Infinity` for none. */
  readonly deadline: number;
  readonly now: number;
  /** How long the origin asked to wait (`Retry-After` of a 503 or 429). */
  readonly retryAfterMs?: number | undefined;
  /** The attempt may have lost a keep-alive race, and this request has not had its one free retry for that yet. */
  readonly lostRace?: boolean;
}

export type RetryRefusal = 'not-idempotent' | 'body-not-buffered' | 'deadline' | 'budget';

export type RetryStep =
  | { readonly kind: 'retry'; readonly reason: string; readonly delayMs: number }
  | { readonly kind: 'refuse'; readonly why: RetryRefusal }
  | { readonly kind: 'done' };

const DONE: RetryStep = Object.freeze({ kind: 'done' });

/** Where decisions are counted: `ballast_retries_total`, `ballast_retries_skipped_total`, `ballast_circuit_overflows_total`. */
export interface RetryCounters {
  retried(reason: string): void;
  skipped(why: RetryRefusal): void;
  /** A retry refused by the budget is also a `max_retries` overflow of the circuit breaker. */
  overflowed(): void;
}

export interface RetryDeps {
  readonly breaker: CircuitBreaker;
  readonly random: Random;
  readonly counters: RetryCounters;
}

/** Budget-exempt reasons (see the file comment). */
const FREE_REASONS: ReadonlySet<string> = new Set(['connect-failure', 'keepalive-race']);

/** Compiled once per route (and per TCP listener) from its `retry` config. */
export class RetryPolicy {
  readonly attempts: number;
  readonly perTryTimeoutMs: number | undefined;
  readonly #bufferBodyBytes: number;
  readonly #budgetShare: number;
  readonly #minRetries: number;
  readonly #onConnectFailure: boolean;
  readonly #onReset: boolean;
  readonly #onTimeout: boolean;
  readonly #statuses: ReadonlySet<number>;
  readonly #trustIdempotencyKey: boolean;
  readonly #backoffBase: number;
  readonly #backoffMax: number;
  readonly #deps: RetryDeps;

  constructor(config: RetryConfig, deps: RetryDeps) {
    this.#deps = deps;
    this.attempts = config.attempts;
    this.perTryTimeoutMs = config.per_try_timeout;
    this.#bufferBodyBytes = config.buffer_body;
    this.#budgetShare = config.budget;
    this.#minRetries = config.min_retries;
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

  /**
   * A layer-4 listener's failover (HAProxy `retries` with `option redispatch`): up to `attempts` connects in all, on
   * connect failures only, at once, with no deadline; a connect that never opened reached nothing, so it is safe.
   */
  static connectFailover(attempts: number, deps: Omit<RetryDeps, 'random'>): RetryPolicy {
    return new RetryPolicy(
      {
        attempts,
        retry_on: ['connect-failure'],
        per_try_timeout: undefined,
        backoff: { base: 0, max: 0 },
        budget: 0,
        min_retries: 0,
        buffer_body: 0,
        idempotency_key: false,
      },
      // No backoff, so nothing to draw.
      { ...deps, random: () => 0 },
    );
  }

  /** Whether a response with this status could be retried: the caller holds its head back until `decide` says. */
  retriesStatus(status: number): boolean {
    return this.#statuses.has(status);
  }

  /** Whether a body of this method and length is worth buffering so that it can be replayed. */
  shouldBuffer(method: string, contentLength: number | undefined, hasIdempotencyKey: boolean): boolean {
    if (this.attempts < 2 || contentLength === undefined || contentLength > this.#bufferBodyBytes) return false;
    return isIdempotent(method) || (this.#trustIdempotencyKey && hasIdempotencyKey);
  }

  /**
   * The one retry decision. `outcome` undefined: the server is not to blame (the request was refused before it was
   * sent, or the client left), and there is nothing to retry. A retry and a refusal are counted here.
   */
  decide(outcome: Outcome | undefined, ctx: RetryContext): RetryStep {
    if (outcome === undefined) return DONE;
    const reason = this.#reasonFor(outcome);
    if (reason !== undefined && ctx.attempts < this.attempts) {
      const why = this.#refusal(ctx, reason, ctx.retryAfterMs ?? 0);
      if (why === undefined) return this.#retry(reason, ctx);
      this.#refuse(why);
      // A budget refusal leaves room for the free retry of a keep-alive race below; the safety rules do not.
    }
    if (outcome.kind === 'reset' && ctx.lostRace === true && this.#refusal({ ...ctx, reachedUpstream: true, hasIdempotencyKey: false }, 'keepalive-race', 0) === undefined) {
      return this.#retry('keepalive-race', ctx);
    }
    return DONE;
  }

  /**
   * The budget again, when a retry's backoff ends: retries admitted together must not all start past it
   * (`max_retries: 1` must mean one retry in flight). The jittered backoff spreads a burst of failures, so retries
   * count from when they are sent. A refusal is counted, and is a `max_retries` overflow.
   */
  admitAfterBackoff(reason: string): boolean {
    if (FREE_REASONS.has(reason) || this.#withinBudget(0)) return true;
    this.#deps.counters.skipped('budget');
    this.#deps.counters.overflowed();
    return false;
  }

  /** The retry reason (a bounded metric label) when `retry_on` covers this outcome, else undefined. */
  #reasonFor(outcome: Outcome): string | undefined {
    switch (outcome.kind) {
      case 'connect-failure':
        return this.#onConnectFailure ? 'connect-failure' : undefined;
      case 'reset':
        return this.#onReset ? 'reset' : undefined;
      case 'timeout':
        return this.#onTimeout ? 'timeout' : undefined;
      case 'response':
        return this.#statuses.has(outcome.status) ? String(outcome.status) : undefined;
      case 'connected':
        return undefined;
    }
  }

  /**
   * Why this request may not be sent again now, or undefined. A non-idempotent request that reached the origin is
   * `not-idempotent` whatever its body: such a body is never buffered, and a bigger `buffer_body` would change
   * nothing. `body-not-buffered` is a body too big (or chunked) to have been kept.
   */
  #refusal(ctx: RetryContext, reason: string, waitMs: number): RetryRefusal | undefined {
    if (ctx.reachedUpstream && !isIdempotent(ctx.method) && !(this.#trustIdempotencyKey && ctx.hasIdempotencyKey)) return 'not-idempotent';
    if (!ctx.bodyReplayable) return 'body-not-buffered';
    if (ctx.now + waitMs >= ctx.deadline) return 'deadline';
    if (!FREE_REASONS.has(reason) && !this.#withinBudget(ctx.wasRetry ? 1 : 0)) return 'budget';
    return undefined;
  }

  #refuse(why: RetryRefusal): void {
    this.#deps.counters.skipped(why);
    if (why === 'budget') this.#deps.counters.overflowed();
  }

  #retry(reason: string, ctx: RetryContext): RetryStep {
    this.#deps.counters.retried(reason);
    // RFC 9110 §10.2.3: a 503 or 429 may say when to come back; wait that long (the deadline allowed it above).
    const delayMs = Math.max(this.#backoffMs(ctx.attempts - 1), ctx.retryAfterMs ?? 0);
    return { kind: 'retry', reason, delayMs };
  }

  /**
   * Whether one more retry may start: under the fixed `max_retries` cap when one is set, else within the budget —
   * a share of the requests in flight, with a floor so a quiet pool can still retry (Envoy `retry_budget`).
   * `own`: the asking request's own retry still in flight is not a rival.
   */
  #withinBudget(own: number): boolean {
    const breaker = this.#deps.breaker;
    const retries = breaker.retries - own;
    const cap = breaker.maxRetries;
    if (cap !== undefined) return retries < cap;
    return retries < Math.max(this.#minRetries, Math.floor(this.#budgetShare * breaker.active));
  }

  /** Full-jitter exponential backoff (AWS Architecture Blog, "Exponential Backoff And Jitter"). */
  #backoffMs(retryIndex: number): number {
    const cap = Math.min(this.#backoffMax, this.#backoffBase * 2 ** retryIndex);
    return Math.floor(this.#deps.random() * cap);
  }
}
