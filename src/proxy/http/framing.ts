/**
 * Request framing checks for what llhttp lets through but a proxy must refuse (RFC 9112 §6, §3.2; RFC 9110 §7.2).
 * Two parsers that disagree on where a request ends, or which host it is for, is how requests are smuggled;
 * anything ambiguous is refused with 400 and the connection closed, before a byte goes upstream.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';

/**
 * Connections on which a request was refused. Node keeps parsing what the client pipelined behind it (the 400 is
 * only queued), so without this a request smuggled after a refused one would still be emitted and forwarded.
 * RFC 9112 §9.6: a server that sends `close` MUST NOT process any further requests received on that connection.
 */
const refused = new WeakSet<object>();

/** Node's own default for `server.maxHeadersCount` (1000 fields, as 2000 raw name/value entries). */
const NODE_MAX_HEADER_ENTRIES = 2000;

/** No further request of this connection is processed: it was answered with `connection: close` (a 413, a 408). */
export function refuseConnection(socket: object): void {
  refused.add(socket);
}

/** Whether a request on this connection was refused, so nothing after it may go upstream. */
export function isRefused(socket: object): boolean {
  return refused.has(socket);
}

/** Why a request is refused, or undefined when its framing is unambiguous. */
export function framingProblem(req: IncomingMessage, upgrade: boolean): string | undefined {
  const socket = req.socket as object | null | undefined;
  if (socket != null && refused.has(socket)) return 'request after a refused request on this connection';
  const problem = problemOf(req, upgrade);
  if (problem !== undefined && socket != null) refused.add(socket);
  return problem;
}

function problemOf(req: IncomingMessage, upgrade: boolean): string | undefined {
  // HTTP/0.9 has no headers at all, and HTTP/2+ never reaches an HTTP/1 parser legitimately.
  if (req.httpVersionMajor !== 1) return 'unsupported HTTP version';
  const raw = req.rawHeaders;
  // Past `maxHeadersCount` Node stops collecting fields while llhttp still frames the message by them: a
  // Transfer-Encoding, Content-Length or second Host hidden there would escape every check below (RFC 9110 §5.4).
  if (raw.length >= headerEntryCap(req)) return 'too many header fields';
  let hosts = 0;
  let host = '';
  let te: string | undefined;
  let tes = 0;
  let cls = 0;
  let cl = '';
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    // Cheap length test first: most headers are none of these.
    if (name.length === 4 && name.toLowerCase() === 'host') {
      hosts++;
      host = raw[i + 1]!;
    } else if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') {
      tes++;
      te = raw[i + 1]!;
    } else if (name.length === 14 && name.toLowerCase() === 'content-length') {
      cls++;
      cl = raw[i + 1]!;
    }
  }
  // RFC 9112 §3.2: exactly one Host; a list or a second field is invalid.
  if (hosts > 1) return 'duplicate Host header';
  if (hosts === 1 && !/^[A-Za-z0-9.\-_~%!$&'()*+;=]*(?::\d*)?$|^\[[0-9A-Fa-f:.]+\](?::\d*)?$/.test(host)) return 'invalid Host header';
  if (hosts === 0 && req.httpVersionMinor >= 1) return 'missing Host header';
  // RFC 9110 §4.2.1: an "http" URI has no empty host, so neither has the Host of an HTTP/1.1 request (RFC 9112 §3.2).
  if (hosts === 1 && host === '' && req.httpVersionMinor >= 1) return 'empty Host header';
  if (tes > 0) {
    // RFC 9112 §6.1: TE on HTTP/1.0 cannot be trusted; only a single, final `chunked` is unambiguous.
    if (req.httpVersionMinor === 0) return 'Transfer-Encoding in an HTTP/1.0 request';
    if (tes > 1 || te!.trim().toLowerCase() !== 'chunked') return 'unsupported Transfer-Encoding';
    if (cls > 0) return 'both Transfer-Encoding and Content-Length';
  }
  if (cls > 1) return 'duplicate Content-Length header';
  if (cls === 1 && !/^\d{1,15}$/.test(cl)) return 'invalid Content-Length';
  // RFC 9110 §7.7: an Upgrade request carries no body here, so no bytes can hide behind the switch.
  if (upgrade && (tes > 0 || (cls === 1 && cl !== '0'))) return 'Upgrade request with a body';
  // Origin-form only (RFC 9112 §3.2.1): an absolute-form target could name another authority than the Host header
  // this request is routed by. The asterisk-form (RFC 9112 §3.2.4) is for OPTIONS alone, and Ballast answers it
  // itself (forward.ts): it asks about this server, names no resource to route, and cannot be sent upstream.
  const url = req.url ?? '';
  if (url === '*' && req.method === 'OPTIONS' && !upgrade) return undefined;
  if (url.charCodeAt(0) !== 47 /* '/' */) return url === '*' ? 'asterisk-form request target other than OPTIONS' : 'request target not in origin-form';
  // Origin-form has no fragment (RFC 9112 §3.2.1): `/public#/../admin` is one path to a router that cuts at `#` and
  // another to one that does not. Bytes outside visible ASCII are never part of a URI (RFC 3986 §2). The other
  // printable characters RFC 3986 leaves out (`"`, `{`, `|`, …) are let through, as NGINX does: clients send them.
  if (INVALID_TARGET.test(url)) return 'invalid character in request target';
  return undefined;
}

const INVALID_TARGET = /[^\x21-\x7e]|#/;

/** How many raw header entries Node collects at most for this request's server (0 or less: no limit). */
function headerEntryCap(req: IncomingMessage): number {
  const count = (req.socket as { server?: { maxHeadersCount?: number | null } } | null | undefined)?.server?.maxHeadersCount;
  if (typeof count !== 'number') return NODE_MAX_HEADER_ENTRIES;
  return count > 0 ? count * 2 : Number.POSITIVE_INFINITY;
}

/** Whether the request carries a body at all (RFC 9112 §6.3): a Content-Length above 0 or chunked framing. */
export function hasRequestBody(req: IncomingMessage): boolean {
  const cl = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (cl !== undefined && cl !== '0');
}

/**
 * Why an HTTP/2 request is refused, or undefined. nghttp2 has already refused what RFC 9113 §8.1.1 makes malformed
 * (connection-specific fields, pseudo-fields missing, repeated or after regular ones, a Content-Length its DATA
 * frames disagree with), as a stream error; this adds what a proxy that routes by authority and path needs.
 */
export function http2Problem(headers: IncomingHttpHeaders): string | undefined {
  const method = headers[':method'];
  // RFC 9113 §8.5 CONNECT, and RFC 8441's extended CONNECT (not offered: SETTINGS_ENABLE_CONNECT_PROTOCOL is 0).
  if (method === 'CONNECT') return 'CONNECT is not supported';
  const authority = headers[':authority'];
  const host = headers.host;
  if (authority === undefined && host === undefined) return 'missing :authority';
  // RFC 9113 §8.3.1: a Host that names another authority than :authority makes the request malformed.
  if (authority !== undefined && host !== undefined && host !== authority) return 'Host differs from :authority';
  const target = (authority ?? host) as string;
  if (target === '' || !/^[A-Za-z0-9.\-_~%!$&'()*+;=]*(?::\d*)?$|^\[[0-9A-Fa-f:.]+\](?::\d*)?$/.test(target)) return 'invalid :authority';
  const path = String(headers[':path'] ?? '');
  if (path === '*') return method === 'OPTIONS' ? undefined : 'asterisk-form request target other than OPTIONS';
  if (path.charCodeAt(0) !== 47 /* '/' */) return 'request target not in origin-form';
  if (INVALID_TARGET.test(path)) return 'invalid character in request target';
  return undefined;
}
