/**
 * Sticky sessions by cookie: the proxy sets a cookie naming the server that answered, and routes a request that
 * carries it back to that server while it is in the pool. Pure functions; the proxy reads and writes the cookie.
 *
 * Cost: find() is one Map lookup; values are computed once per host when the table is built.
 *
 * The value is a truncated SHA-256 of the address (HMAC-SHA-256 with a secret, if one is given), never the address
 * itself, so responses do not hand out the internal topology, and it is the same in every replica and across
 * restarts, so a session survives a reload or landing on another replica. Without a secret, someone who guesses the
 * address space (10.0.0.0/8 and a port) can still test guesses against it; pass a secret shared by the replicas to
 * rule that out.
 */

import { createHash, createHmac } from 'node:crypto';

import type { BalancedHost } from './types.js';

/** 64 bits, as 16 hex digits: short for a cookie, and no two servers of a pool will ever share a value. */
const VALUE_HEX_DIGITS = 16;

/** The cookie value that names `address`. */
export function stickyCookieValue(address: string, secret?: string): string {
  const digest =
    secret === undefined || secret === ''
      ? createHash('sha256').update(address).digest('hex')
      : createHmac('sha256', secret).update(address).digest('hex');
  return digest.slice(0, VALUE_HEX_DIGITS);
}

/** The hosts of one pool, by cookie value. Rebuilt with the picker on membership change. */
export class StickyTable<H extends BalancedHost> {
  readonly #byValue = new Map<string, H>();
  readonly #byHost = new Map<H, string>();

  constructor(hosts: readonly H[], secret?: string) {
    for (const host of hosts) {
      const value = stickyCookieValue(host.address, secret);
      this.#byHost.set(host, value);
      // Two entries for one address (a misconfiguration) are the same server: the first keeps the value.
      if (!this.#byValue.has(value)) this.#byValue.set(value, host);
    }
  }

  /** The host a cookie value names, or undefined (no cookie, a stale value, or a server no longer in the pool). */
  find(cookieValue: string | undefined): H | undefined {
    return cookieValue === undefined ? undefined : this.#byValue.get(cookieValue);
  }

  /** The cookie value to set after `host` answered, precomputed; undefined if the host is not in this table. */
  valueFor(host: H): string | undefined {
    return this.#byHost.get(host);
  }
}
