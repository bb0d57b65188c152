/**
 * Sticky sessions by cookie (`sticky: { cookie, ttl }`), as HAProxy's `cookie ... insert`: the response of the server
 * that answered sets a cookie naming it (a hash, never its address), and later requests carrying it go back to that
 * server while it is available. When it is not, the request is balanced as usual and the cookie is rewritten.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { StickyTable } from '../../balancer/sticky.js';
import type { Host } from '../../upstream/host.js';

export class StickySessions {
  readonly #cookie: string;
  /** The upstream's table over its servers now: discovery may change them (upstream.ts, `stickyTable`). */
  readonly #table: () => StickyTable<Host>;
  /** Attributes appended to every Set-Cookie, computed once. */
  readonly #attributes: string;

  constructor(cookie: string, ttlMs: number | undefined, table: () => StickyTable<Host>) {
    this.#cookie = cookie;
    this.#table = table;
    this.#attributes = `; Path=/; HttpOnly; SameSite=Lax${ttlMs === undefined ? '' : `; Max-Age=${Math.floor(ttlMs / 1000)}`}`;
  }

  /** The server the request's cookie names, when it is available. */
  hostFor(headers: IncomingHttpHeaders, now: number): Host | undefined {
    const host = this.#table().find(this.#valueIn(headers));
    return host !== undefined && host.isAvailable(now) ? host : undefined;
  }

  /** Adds Set-Cookie to the response headers unless the request already names this server. */
  remember(request: IncomingHttpHeaders, host: Host, headers: string[]): void {
    const value = this.#table().valueFor(host);
    if (value === undefined || this.#valueIn(request) === value) return;
    headers.push('set-cookie', `${this.#cookie}=${value}${this.#attributes}`);
  }

  /** The cookie's value from the Cookie header (RFC 6265 §5.4: `a=1; b=2`). */
  #valueIn(headers: IncomingHttpHeaders): string | undefined {
    const header = headers.cookie;
    if (header === undefined) return undefined;
    const name = this.#cookie;
    let start = 0;
    while (start < header.length) {
      let end = header.indexOf(';', start);
      if (end === -1) end = header.length;
      const eq = header.indexOf('=', start);
      if (eq !== -1 && eq < end && header.slice(start, eq).trim() === name) return header.slice(eq + 1, end).trim();
      start = end + 1;
    }
    return undefined;
  }
}
