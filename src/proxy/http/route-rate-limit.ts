/**
 * `client.rate_limit` as a route applies it: the token buckets (rate-limiter.ts), the key a request is counted
 * under, and the counter of refusals, `ballast_rate_limited_total{listener,route}`.
 *
 * A listener's limit is one set of buckets for every route that does not set its own; a route's own limit has its
 * own buckets, and `rate_limit: off` lifts the listener's. Buckets outlive a reload that keeps the same limit (a
 * reload must not hand every client a fresh burst). With `workers: N` each worker keeps its own buckets, so a
 * client may get up to N times the rate, as with the other `limits.*`.
 */
import type { IncomingMessage } from 'node:http';
import type { HotCell } from '../../admin/metrics.js';
import type { RateLimitConfig } from '../../config/schema.js';
import { clientAddress } from '../../util/client-address.js';
import type { Clock } from '../../util/clock.js';
import { RateLimiter } from './rate-limiter.js';

/** Header values longer than this are cut before they become a key: the buckets keep their keys. */
const MAX_KEY_LENGTH = 256;

export interface RouteRateLimit {
  readonly limiter: RateLimiter;
  /** The key a request is counted under; undefined when it has none (a missing header: not limited, as NGINX does). */
  readonly keyOf: (req: IncomingMessage) => string | undefined;
  /** Refusals, read at scrape time. */
  readonly refused: HotCell;
}

/** Limiters kept across reloads, by scope and settings. */
export type RateLimiters = Map<string, RateLimiter>;

export function compileRateLimit(
  limit: RateLimitConfig,
  scope: string,
  limiters: RateLimiters,
  clock: Clock,
  refused: HotCell,
): RouteRateLimit {
  const burst = limit.burst ?? Math.max(1, Math.ceil(limit.rate));
  const id = `${scope}\u0000${limit.rate}/${limit.per}/${burst}/${limit.key}`;
  let limiter = limiters.get(id);
  if (limiter === undefined) limiters.set(id, (limiter = new RateLimiter({ rate: limit.rate, perMs: limit.per, burst }, { clock })));
  return { limiter, keyOf: keyReader(limit.key), refused };
}

function keyReader(key: string): (req: IncomingMessage) => string | undefined {
  if (key === 'client-ip') return (req) => clientAddress(req.socket.remoteAddress);
  const name = key.slice('header:'.length).toLowerCase();
  return (req) => {
    const value = req.headers[name];
    const text = Array.isArray(value) ? value.join(', ') : value;
    return text === undefined || text === '' ? undefined : text.slice(0, MAX_KEY_LENGTH);
  };
}
