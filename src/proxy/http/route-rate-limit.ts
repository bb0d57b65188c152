/**
 * `client.rate_limit` as a route applies it: the token buckets (rate-limiter.ts), the key a request is counted
 * under, and the counter of refusals, `ballast_rate_limited_total{listener,route}`.
 *
 * A listener's limit is one set of buckets for every route that does not set its own; a route's own limit has its
 * own buckets, and `rate_limit: off` lifts the listener's. Buckets outlive a reload that keeps the same limit (a
 * reload must not hand every client a fresh burst). With `workers: N` each worker keeps its own buckets, so a
 * client may get up to N times the rate, as with the other `limits.*`. `client-ip` is the connection's peer, or, from
 * a peer in `trusted_proxies`, the client that peer names in `X-Forwarded-For`.
 */
import type { IncomingHttpHeaders } from 'node:http';

/** What a key is read from: the request's fields and its connection (an HTTP/1 request, or an HTTP/2 stream's). */
export interface KeyedRequest {
  readonly headers: IncomingHttpHeaders;
  readonly socket: { readonly remoteAddress?: string | undefined } | null;
}
import { isIP, type BlockList } from 'node:net';
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
  readonly keyOf: (req: KeyedRequest) => string | undefined;
  /** Refusals, read at scrape time. */
  readonly refused: HotCell;
}

/** Limiters kept across reloads, by scope and settings. */
export type RateLimiters = Map<string, RateLimiter>;

export function compileRateLimit(
  limit: RateLimitConfig,
  scope: string,
  limiters: RateLimiters,
  used: Set<string>,
  clock: Clock,
  refused: HotCell,
  trusted: BlockList | undefined,
): RouteRateLimit {
  const burst = limit.burst ?? Math.max(1, Math.ceil(limit.rate));
  const id = `${scope}\u0000${limit.rate}/${limit.per}/${burst}/${limit.key}`;
  used.add(id);
  let limiter = limiters.get(id);
  if (limiter === undefined) limiters.set(id, (limiter = new RateLimiter({ rate: limit.rate, perMs: limit.per, burst }, { clock })));
  return { limiter, keyOf: keyReader(limit.key, trusted), refused };
}

function keyReader(key: string, trusted: BlockList | undefined): (req: KeyedRequest) => string | undefined {
  if (key === 'client-ip') return trusted === undefined ? (req) => clientAddress(req.socket?.remoteAddress) : (req) => realClient(req, trusted);
  const name = key.slice('header:'.length).toLowerCase();
  return (req) => {
    const value = req.headers[name];
    // The first value only: node:http joins repeated field lines with commas, and a client that adds a line of its
    // own must not get a fresh bucket for it.
    const text = (Array.isArray(value) ? value[0] : value)?.split(',', 1)[0]?.trim();
    return text === undefined || text === '' ? undefined : text.slice(0, MAX_KEY_LENGTH);
  };
}

/**
 * The client behind `trusted_proxies` (NGINX `real_ip_recursive`): from a trusted peer, the right-most address of
 * `X-Forwarded-For` that is not itself a trusted proxy. Addresses left of it are the client's own word, and a key
 * it could vary at will.
 */
function realClient(req: KeyedRequest, trusted: BlockList): string {
  const peer = clientAddress(req.socket?.remoteAddress);
  if (!isTrusted(trusted, peer)) return peer;
  const header = req.headers['x-forwarded-for'];
  const chain = (Array.isArray(header) ? header.join(',') : (header ?? '')).split(',');
  for (let i = chain.length - 1; i >= 0; i--) {
    const address = chain[i]!.trim();
    if (address === '') continue;
    if (isIP(address) === 0 || !isTrusted(trusted, address)) return address.slice(0, MAX_KEY_LENGTH);
  }
  return peer;
}

function isTrusted(trusted: BlockList, address: string): boolean {
  const family = isIP(address);
  return family !== 0 && trusted.check(address, family === 6 ? 'ipv6' : 'ipv4');
}
