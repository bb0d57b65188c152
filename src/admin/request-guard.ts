/**
 * Who may use the admin listener from a web browser: only the admin's own origin.
 *
 * A loopback admin without a token trusts whoever reaches it, and a page the operator visits reaches it two ways:
 * - Cross-site request forgery. The page POSTs to `http://127.0.0.1:9901/servers/drain?...`; the browser sends the
 *   request (the page cannot read the answer, and does not need to). The browser also says where it came from:
 *   `Sec-Fetch-Site` (every current browser since 2023) and `Origin` (on every POST).
 * - DNS rebinding. The page's own name is re-pointed at 127.0.0.1, so to the browser its requests are same-origin and
 *   it can read the answers too. Only the `Host` header still carries the attacker's name.
 *
 * So a mutation (any method but GET and HEAD) is refused when
 * - `Sec-Fetch-Site` is present and is neither `same-origin` nor `none` (typed or bookmarked): `same-site` is refused
 *   too, because a site ignores the port: every other service on 127.0.0.1 (Ballast's own proxy listener serving its
 *   upstreams' pages among them) is same-site to a loopback admin;
 * - `Origin` is present and is not `http://` + the request's Host (`Origin: null`, sent by sandboxed frames and some
 *   redirects, is foreign);
 * and any request but `/healthz` and `/ready` is refused when its Host is not an IP literal, `localhost` or a name in
 * `admin.allowed_hosts`: a rebound page could otherwise read `/status` and `/metrics` (server addresses, upstream
 * names), which Envoy's admin documentation counts among the private information its admin exposes. An IP literal or
 * `localhost` cannot be rebound, as the attacker does not own the name. `/healthz` and `/ready` disclose nothing and
 * are what orchestrators probe, under whatever name they use.
 * Clients that are not browsers (curl, Prometheus, scripts) send neither `Origin` nor `Sec-Fetch-Site`, and by IP or
 * by a listed name they pass. The dashboard's own buttons send same-origin requests and pass too; that a page could
 * frame the dashboard and trick a click on them (clickjacking) is refused by the headers the page is served with
 * (dashboard/assets.ts: `frame-ancestors 'none'`, `X-Frame-Options: DENY`). This is Go's `net/http.CrossOriginProtection` (Go 1.25) for the first two rules, and
 * the Host allow-list of geth's `--http.vhosts` and Vite's `server.allowedHosts` for the third.
 */
import type { IncomingMessage } from 'node:http';
import { isIPv4, isIPv6 } from 'node:net';

/** Paths any Host may read: they say only whether the process is alive and ready. */
const PROBE_PATHS: ReadonlySet<string> = new Set(['/healthz', '/ready']);

/** The `Sec-Fetch-Site` values a mutation may carry (Fetch Metadata, W3C). */
const SAME_ORIGIN_FETCH: ReadonlySet<string> = new Set(['same-origin', 'none']);

/**
 * Why the admin refuses a request (for the 403 body and the log), or undefined when it may go on.
 * `allowedHosts` are lower-case names (the config keeps them so). A mutation is checked whatever its path, so a route
 * added later (POST /reload) is covered without a word here.
 */
export function refusal(req: IncomingMessage, pathname: string, allowedHosts: readonly string[]): string | undefined {
  const mutation = req.method !== 'GET' && req.method !== 'HEAD';
  if (!mutation && PROBE_PATHS.has(pathname)) return undefined;
  const host = req.headers.host;
  if (host === undefined || host === '') return 'a Host header is required';
  const name = hostName(host);
  if (name === undefined) return 'the Host header is malformed';
  if (!isTrustedHost(name, allowedHosts)) {
    return `Host "${name}" is not an IP address, localhost or a name in admin.allowed_hosts`;
  }
  if (!mutation) return undefined;
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && !SAME_ORIGIN_FETCH.has(site)) return `a cross-origin request (Sec-Fetch-Site: ${site}) may not change anything`;
  const origin = req.headers.origin;
  if (origin !== undefined && !sameOrigin(origin, host)) return `a request from another origin (${origin}) may not change anything`;
  return undefined;
}

/**
 * The name part of a Host header (RFC 9110 §7.2: `uri-host [ ":" port ]`), lower-cased; an IPv6 literal keeps its
 * brackets. Undefined for anything else, such as a bare IPv6 address or a port out of range.
 */
export function hostName(host: string): string | undefined {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^\s:[\]/@]+)(?::(\d{1,5}))?$/.exec(host);
  if (m === null || Number(m[2] ?? 0) > 65535) return undefined;
  return m[1]!.toLowerCase();
}

function isTrustedHost(name: string, allowedHosts: readonly string[]): boolean {
  if (name.startsWith('[')) return isIPv6(name.slice(1, -1));
  return isIPv4(name) || name === 'localhost' || allowedHosts.includes(name);
}

/**
 * Whether an `Origin` header names the admin's own origin for a request sent to `host`: scheme `http` (the admin
 * listener speaks plain HTTP), the same host and the same port. Both go through the URL parser, which serializes
 * an origin as browsers do (RFC 6454 §6.1: lower-case host, IPv6 compressed, no default port); `null`, another
 * scheme or anything unparseable is foreign.
 */
function sameOrigin(origin: string, host: string): boolean {
  const theirs = parsedOrigin(origin);
  return theirs !== undefined && theirs !== 'null' && theirs === parsedOrigin(`http://${host}`);
}

function parsedOrigin(url: string): string | undefined {
  try {
    return new URL(url).origin;
  } catch {
    return undefined;
  }
}
