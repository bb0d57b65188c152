/**
 * Header hygiene for a forwarding proxy, as small named functions over raw header arrays
 * (Go `httputil.ReverseProxy`: `hopHeaders`, `removeHopByHopHeaders`).
 *
 * RFC 9110 §7.6.1: a proxy removes the fields named in `Connection`, and the hop-by-hop fields, before it
 * forwards a message. The proxy's own fields are added *after* that removal, so `Connection: x-forwarded-for`
 * cannot strip them.
 */
import { randomUUID } from 'node:crypto';

/** Hop-by-hop fields (RFC 9110 §7.6.1, plus the legacy `Proxy-Connection` and the credentials meant for this hop). */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-authorization',
  'proxy-authenticate',
  'http2-settings',
]);

/** Request fields Ballast answers itself: Node sends `100 Continue` (RFC 9110 §10.1.1), and undici refuses `Expect`. */
const ANSWERED_HERE: ReadonlySet<string> = new Set(['expect']);

/**
 * A field `Connection` cannot nominate away. RFC 9110 §7.6.1 forbids naming a field meant for every recipient, and
 * Host is what the request was routed by: `Connection: host` would otherwise make undici send the upstream's own
 * address as Host, so the origin would see another authority than the one Ballast matched (RFC 9110 §7.2).
 */
const NOT_NOMINABLE = 'host';

export interface ForwardedContext {
  readonly clientIp: string;
  /** The peer is in `trusted_proxies`: its X-Forwarded-* chain is kept and appended to. */
  readonly trusted: boolean;
  /** `1.1`, `1.0` or `2`, for `Via` (RFC 9110 §7.6.3). */
  readonly httpVersion: string;
  /** The client's connection was TLS: X-Forwarded-Proto says https. */
  readonly secure?: boolean;
  /**
   * The upstream speaks HTTP/2: a client's `TE: trailers` goes on as `te: trailers`, the one TE an HTTP/2 request may
   * carry (RFC 9113 §8.2.2), which gRPC servers require. Every other connection-specific field is dropped as for
   * HTTP/1.1 (`HOP_BY_HOP`).
   */
  readonly teTrailers?: boolean;
}

/** Whether a TE value lists `trailers` (RFC 9110 §10.1.4: a list of codings and `trailers`, case-insensitive). */
function acceptsTrailers(value: string): boolean {
  return value.split(',').some((t) => t.trim().toLowerCase() === 'trailers');
}

export interface ForwardedRequestHeaders {
  /** Flat [name, value, name, value, …], the form undici's dispatch takes without building an object. */
  readonly headers: string[];
  readonly requestId: string;
  /** The Host the client asked for, for routing and X-Forwarded-Host. */
  readonly host: string;
}

/**
 * The lengths of the names above, as bits of one number (all are under 32 characters): a field whose name has none
 * of these lengths needs no lower-casing to be kept. A bit test, not a Set lookup: it runs for every response field.
 */
const HOP_LENGTHS = [...HOP_BY_HOP].reduce((bits, n) => bits | (1 << n.length), 0);

function mayBeHopByHop(length: number): boolean {
  return length < 32 && ((HOP_LENGTHS >>> length) & 1) === 1;
}

/** Adds the field names one `Connection` value nominates; `close` and `keep-alive` (nearly every value) name none. */
function addConnectionTokens(tokens: string[] | undefined, value: string): string[] | undefined {
  if (value.length === 10 || value.length === 5) {
    const v = value.toLowerCase();
    if (v === 'keep-alive' || v === 'close') return tokens;
  }
  for (const t of value.split(',')) {
    const token = t.trim().toLowerCase();
    if (token !== '' && token !== 'close' && token !== 'keep-alive') (tokens ??= []).push(token);
  }
  return tokens;
}

/** Field names listed in every `Connection` header, lower-cased; undefined when there are none to strip. */
export function connectionTokens(raw: readonly (string | Buffer)[]): string[] | undefined {
  let tokens: string[] | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length !== 10) continue;
    const text = typeof name === 'string' ? name : name.toString('latin1');
    if (text.toLowerCase() !== 'connection') continue;
    const value = raw[i + 1]!;
    tokens = addConnectionTokens(tokens, typeof value === 'string' ? value : value.toString('latin1'));
  }
  return tokens;
}

/** Removes the pairs whose name a `Connection` header nominated (rare: most messages nominate nothing). */
function dropNominated(out: string[], named: readonly string[]): string[] {
  const kept: string[] = [];
  for (let i = 0; i < out.length; i += 2) {
    if (named.includes(out[i]!.toLowerCase())) continue;
    kept.push(out[i]!, out[i + 1]!);
  }
  return kept;
}

const VIA_SUFFIX = ' ballast';
const VIA_11 = `1.1${VIA_SUFFIX}`;
const VIA_10 = `1.0${VIA_SUFFIX}`;

/**
 * The headers sent upstream: hop-by-hop and Connection-named fields removed, inbound X-Forwarded-* kept only from a
 * trusted peer, then X-Forwarded-For/-Proto/-Host, Via and X-Request-Id added.
 */
export function forwardRequestHeaders(raw: readonly string[], ctx: ForwardedContext): ForwardedRequestHeaders {
  // Nominated fields must be known before the X-Forwarded-* / Via values are gathered, hence the pre-pass
  // (cheap: it lower-cases only 10-character names).
  const named = connectionTokens(raw);
  const out: string[] = [];
  let xff: string | undefined;
  let xfProto: string | undefined;
  let xfHost: string | undefined;
  let via: string | undefined;
  let requestId: string | undefined;
  let host = '';
  let teTrailers = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    const lower = name.toLowerCase();
    if (lower === 'te' && ctx.teTrailers === true && acceptsTrailers(value)) teTrailers = true;
    if (HOP_BY_HOP.has(lower) || ANSWERED_HERE.has(lower) || (named !== undefined && lower !== NOT_NOMINABLE && named.includes(lower))) continue;
    if (lower.startsWith('x-forwarded-')) {
      // Untrusted peers cannot forge the chain: their X-Forwarded-* is dropped and rebuilt below.
      if (!ctx.trusted) continue;
      if (lower === 'x-forwarded-for') xff = xff === undefined ? value : `${xff}, ${value}`;
      else if (lower === 'x-forwarded-proto') xfProto = value;
      else if (lower === 'x-forwarded-host') xfHost = value;
      else out.push(name, value);
      continue;
    }
    if (lower === 'via') {
      via = via === undefined ? value : `${via}, ${value}`;
      continue;
    }
    if (lower === 'x-request-id') {
      if (requestId === undefined && value !== '') requestId = value;
      continue;
    }
    if (lower === 'host') host = value;
    out.push(name, value);
  }
  requestId ??= randomUUID();
  if (teTrailers) out.push('te', 'trailers');
  const ownVia = ctx.httpVersion === '1.1' ? VIA_11 : ctx.httpVersion === '1.0' ? VIA_10 : `${ctx.httpVersion}${VIA_SUFFIX}`;
  out.push(
    'x-forwarded-for', xff === undefined ? ctx.clientIp : `${xff}, ${ctx.clientIp}`,
    'x-forwarded-proto', xfProto ?? (ctx.secure === true ? 'https' : 'http'),
    'x-forwarded-host', xfHost ?? host,
    'via', via === undefined ? ownVia : `${via}, ${ownVia}`,
    'x-request-id', requestId,
  );
  return { headers: out, requestId, host };
}

/** Statuses whose responses never have a body (RFC 9112 §6.3). */
export function bodiless(status: number): boolean {
  return status === 204 || status === 304;
}

/**
 * undici's complaint that a response had fewer body bytes than its Content-Length. For a 304, which may carry the
 * Content-Length of the body it stands for (RFC 9110 §8.6), or a 204, neither of which has a body, the response is
 * complete all the same.
 */
export function isLengthMismatch(err: Error): boolean {
  return (err as Error & { code?: string }).code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH';
}

/** Removes Content-Length from a flat header list: a 204 must not carry one (RFC 9110 §8.6). */
export function dropContentLength(headers: string[]): void {
  for (let i = headers.length - 2; i >= 0; i -= 2) {
    if (headers[i]!.length === 14 && headers[i]!.toLowerCase() === 'content-length') headers.splice(i, 2);
  }
}

/**
 * The response headers sent downstream, as a flat string array for `res.writeHead`: hop-by-hop and
 * Connection-named fields removed. Node frames the body itself (chunked or content-length).
 * One pass; a name is lower-cased only when its length is one a hop-by-hop name (or X-Request-Id) has.
 * `requestId`: added as `x-request-id` when the origin sent none (every response carries the request's id, so a
 * user can quote it; an origin's own is kept).
 *
 * Undefined when the response cannot be relayed: a transfer coding other than `chunked` (`gzip, chunked`). Only the
 * chunking is undone on the way in, and Transfer-Encoding is hop-by-hop, so the client would get a gzip body that
 * nothing says is gzip (RFC 9112 §7: a recipient that removes a coding must decode it). NGINX refuses it too (502).
 */
export function forwardResponseHeaders(raw: readonly Buffer[], requestId?: string): string[] | undefined {
  let named: string[] | undefined;
  let hasRequestId = false;
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1');
    if (mayBeHopByHop(name.length)) {
      const lower = name.toLowerCase();
      if (HOP_BY_HOP.has(lower)) {
        if (lower === 'connection') named = addConnectionTokens(named, raw[i + 1]!.toString('latin1'));
        else if (lower === 'transfer-encoding' && raw[i + 1]!.toString('latin1').trim().toLowerCase() !== 'chunked') return undefined;
        continue;
      }
    }
    if (name.length === 12 && !hasRequestId && name.toLowerCase() === 'x-request-id') hasRequestId = true;
    out.push(name, raw[i + 1]!.toString('latin1'));
  }
  if (requestId !== undefined && !hasRequestId) out.push('x-request-id', requestId);
  return named === undefined ? out : dropNominated(out, named);
}

/** `Retry-After` in milliseconds, from delay-seconds or an HTTP-date (RFC 9110 §10.2.3); undefined if absent or bad. */
export function retryAfterMillis(rawHeaders: readonly Buffer[]): number | undefined {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length !== 11 || name.toString('latin1').toLowerCase() !== 'retry-after') continue;
    const value = rawHeaders[i + 1]!.toString('latin1').trim();
    if (/^\d+$/.test(value)) return Number(value) * 1000;
    const at = Date.parse(value);
    return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
  }
  return undefined;
}

/** The Upgrade token of a response, lower-cased; undefined without one. */
export function upgradeToken(raw: readonly Buffer[]): string | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 7 && raw[i]!.toString('latin1').toLowerCase() === 'upgrade') return raw[i + 1]!.toString('latin1').trim().toLowerCase();
  }
  return undefined;
}
