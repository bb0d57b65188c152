/**
 * Writing responses Ballast makes itself, and the rules for writing the heads it relays: one place for what a
 * proxy-made error looks like and for which reason phrases can be written.
 */
import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Host } from '../../upstream/host.js';
import type { Downstream } from './downstream.js';
import type { Failure } from './failures.js';
import { dropContentLength, forwardResponseHeaders } from './headers.js';
import type { StickySessions } from './sticky-sessions.js';

/** A reason phrase Node will write (RFC 9112 §4: HTAB, SP, VCHAR, obs-text). */
const VALID_REASON = /^[\t\x20-\x7e\x80-\xff]*$/;

/** A reason phrase that can be written into a raw head as it is (visible ASCII, spaces and tabs). */
const PRINTABLE_REASON = /^[\t\x20-\x7e]*$/;

/**
 * The reason phrase to write for a relayed status. It means nothing (RFC 9112 §4), and one Node will not write (a
 * byte undici decoded as U+FFFD, a control character) would throw mid-response: the standard one then. Undefined:
 * let node:http choose.
 */
export function reasonFor(status: number, reason: string, raw: boolean): string | undefined {
  if (reason !== '' && (raw ? PRINTABLE_REASON : VALID_REASON).test(reason)) return reason;
  return raw ? (STATUS_CODES[status] ?? 'Unknown') : undefined;
}

function failureBody(failure: Failure, detail: string | undefined): string {
  return detail === undefined ? `${failure.message}\n` : `${failure.message}: ${detail}\n`;
}

/** Writes a proxy-generated error response, once, if the response has not started; otherwise cuts it short. */
export function sendFailure(
  res: ServerResponse,
  failure: Failure,
  requestId: string | undefined,
  close: boolean,
  detail?: string,
  extra?: Record<string, string>,
): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const body = failureBody(failure, detail);
  const headers: Record<string, string | number> = {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'x-ballast-error': failure.code,
  };
  if (requestId !== undefined) headers['x-request-id'] = requestId;
  if (failure.retryAfter !== undefined) headers['retry-after'] = failure.retryAfter;
  if (close || failure.close === true) headers.connection = 'close';
  if (extra !== undefined) Object.assign(headers, extra);
  res.writeHead(failure.status, headers);
  res.end(body);
}

/** A proxy-generated response on a raw socket (no ServerResponse exists for an upgrade request), then close. */
export function writeFailure(socket: Duplex, failure: Failure, detail?: string, requestId?: string, extra?: Record<string, string>): void {
  if (socket.destroyed) return;
  const body = failureBody(failure, detail);
  let head = `HTTP/1.1 ${failure.status} ${failure.message}\r\nconnection: close\r\ncontent-type: text/plain; charset=utf-8\r\n`;
  head += `content-length: ${Buffer.byteLength(body)}\r\nx-ballast-error: ${failure.code}\r\n`;
  if (requestId !== undefined) head += `x-request-id: ${requestId}\r\n`;
  if (failure.retryAfter !== undefined) head += `retry-after: ${failure.retryAfter}\r\n`;
  if (extra !== undefined) for (const [name, value] of Object.entries(extra)) head += `${name}: ${value}\r\n`;
  socket.end(`${head}\r\n${body}`);
}

/** A response head for a raw socket: status line, then the fields, names and values alternating. */
export function rawHead(status: number, reason: string, fields: readonly string[], extra: string): string {
  let head = `HTTP/1.1 ${status} ${reason}\r\n${extra}`;
  for (let i = 0; i < fields.length; i += 2) head += `${fields[i]}: ${fields[i + 1]}\r\n`;
  return `${head}\r\n`;
}

/**
 * Relays a response head from `host` downstream: hop-by-hop fields dropped (headers.ts), a sticky cookie added when
 * the route has sticky sessions, and `x-request-id` when the origin sent none. The error when the response cannot be
 * relayed: a transfer coding other than chunked.
 */
export function relayHead(
  down: Downstream,
  status: number,
  rawHeaders: Buffer[],
  statusText: string,
  requestId: string,
  sticky: StickySessions | undefined,
  host: Host,
): Error | undefined {
  const headers = forwardResponseHeaders(rawHeaders, requestId);
  if (headers === undefined) return Object.assign(new Error('upstream sent a transfer coding other than chunked'), { code: 'HPE_INVALID_TRANSFER_ENCODING' });
  // RFC 9110 §8.6: no Content-Length in a 204 (Node would pass the origin's on).
  if (status === 204) dropContentLength(headers);
  sticky?.remember(down.headers, host, headers);
  down.respond(status, statusText, headers);
  return undefined;
}
