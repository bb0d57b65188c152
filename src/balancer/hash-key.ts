/**
 * Hash keys: what part of a request a hashing strategy (consistent-hash, maglev) maps to a server, compiled once from
 * the upstream's `hash_key` setting into a reader the request path calls.
 *
 * Cost per request: one header lookup; `cookie` scans the Cookie header, `query` parses the query string. No
 * dependency: cookies per RFC 6265 §5.4 as browsers send them ("a=1; b=2"), the query with URLSearchParams.
 */

import type { IncomingHttpHeaders } from 'node:http';

/** The request, as far as a hash key needs it. */
export interface HashKeySource {
  readonly headers: IncomingHttpHeaders;
  /** The request target as received: origin form ("/a?b"), or absolute form ("http://host/a?b"). */
  readonly url: string;
  readonly clientIp: string;
}

/** The key of a request, or undefined when it carries none (the strategy then falls back to round robin). */
export type HashKeyReader = (req: HashKeySource) => string | undefined;

/**
 * `header:NAME` (an RFC 9110 token), `cookie:NAME` (an RFC 6265 token), `query:NAME` (no `&`, `=`, `#` or space),
 * `client-ip` or `path`. Exported so the config schema refuses a bad spec with the same rule.
 */
export const HASH_KEY_PATTERN: RegExp =
  /^(?:header:[!#$%&'*+.^_`|~0-9A-Za-z-]+|cookie:[!#$%&'*+.^_`|~0-9A-Za-z-]+|query:[^&=#\s]+|client-ip|path)$/;

export function compileHashKey(spec: string): HashKeyReader {
  if (!HASH_KEY_PATTERN.test(spec)) {
    throw new Error(
      `invalid hash key ${JSON.stringify(spec)}: expected header:NAME, cookie:NAME, query:NAME, client-ip or path`,
    );
  }
  if (spec === 'client-ip') return (req) => nonEmpty(req.clientIp);
  if (spec === 'path') return (req) => nonEmpty(pathOf(req.url));
  const colon = spec.indexOf(':');
  const kind = spec.slice(0, colon);
  const name = spec.slice(colon + 1);
  if (kind === 'header') {
    // Node lower-cases incoming header names.
    const lower = name.toLowerCase();
    return (req) => headerValue(req.headers[lower]);
  }
  if (kind === 'cookie') return (req) => cookieValue(req.headers.cookie, name);
  return (req) => queryValue(req.url, name);
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

function headerValue(value: string | string[] | undefined): string | undefined {
  // Node joins repeated headers with ", " except a few (set-cookie) it keeps as arrays: join those the same way.
  if (Array.isArray(value)) return nonEmpty(value.join(', '));
  return nonEmpty(value);
}

/**
 * The value of cookie `name` in a Cookie header: pairs split on ";", trimmed, split at the first "=" (a value may
 * itself contain "="). Names are case-sensitive; the first match wins, as browsers list the most specific cookie
 * first (RFC 6265 §5.4). A value in double quotes is unquoted; it is not percent-decoded, as the key only needs to
 * be stable, and decoding a malformed value would throw.
 */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  let start = 0;
  while (start < header.length) {
    let end = header.indexOf(';', start);
    if (end < 0) end = header.length;
    const eq = header.indexOf('=', start);
    if (eq >= 0 && eq < end && header.slice(start, eq).trim() === name) {
      let value = header.slice(eq + 1, end).trim();
      if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
      return nonEmpty(value);
    }
    start = end + 1;
  }
  return undefined;
}

/** The path of a request target, without query or fragment; the absolute form loses its scheme and authority. */
export function pathOf(url: string): string {
  let start = 0;
  if (!url.startsWith('/')) {
    const scheme = url.indexOf('://');
    if (scheme >= 0) {
      const slash = url.indexOf('/', scheme + 3);
      const query = url.indexOf('?', scheme + 3);
      // "http://host" and "http://host?x" have the empty path, which HTTP sends as "/" (RFC 9112 §3.2.1).
      if (slash < 0 || (query >= 0 && query < slash)) return '/';
      start = slash;
    }
  }
  let end = url.length;
  const query = url.indexOf('?', start);
  if (query >= 0) end = query;
  const hash = url.indexOf('#', start);
  if (hash >= 0 && hash < end) end = hash;
  return url.slice(start, end);
}

function queryValue(url: string, name: string): string | undefined {
  const q = url.indexOf('?');
  if (q < 0) return undefined;
  let end = url.indexOf('#', q);
  if (end < 0) end = url.length;
  // URLSearchParams decodes percent-escapes and "+" as the form encoding does, and never throws on bad escapes.
  return nonEmpty(new URLSearchParams(url.slice(q + 1, end)).get(name) ?? undefined);
}
