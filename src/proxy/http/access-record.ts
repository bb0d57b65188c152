/**
 * The access line of one HTTP exchange (access-log.ts writes it): who asked what, over which protocol, which servers
 * tried it, and how it ended. Fields that would be empty for a plain HTTP/1.1 request (upgrade, protocol, tls, tries,
 * detail) are left out.
 *
 * Serialised here, field by field, rather than built as an object for JSON.stringify: one line per request is the
 * access log's whole cost, and the object, its stringification and the garbage both leave behind were most of it.
 * The output is what JSON.stringify would write for the same object.
 */
import type { Downstream } from './downstream.js';
import type { Tries } from './tries.js';

/** Printable ASCII without `"` and `\`: a JSON string as it is, quoted (nearly every value here). */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** `s` as a JSON string literal. */
export function jsonString(s: string): string {
  return PLAIN.test(s) ? `"${s}"` : JSON.stringify(s);
}

/** The line's fields as JSON members (`"name":value,…`, no braces). */
export function exchangeFields(
  listener: string,
  requestId: string,
  down: Downstream,
  upstream: string,
  tries: Tries,
  status: number,
  durationMs: number,
  detail: string | undefined,
): string {
  let fields = `"listener":${jsonString(listener)},"requestId":${jsonString(requestId)},"client":${jsonString(down.clientIp)},"method":${jsonString(down.method)},"url":${jsonString(down.url)}`;
  if (down.websocket) fields += ',"upgrade":"websocket"';
  if (down.httpVersion === '2') fields += ',"protocol":"h2"';
  const tls = down.tls;
  if (tls !== undefined) fields += `,"tls":${jsonString(tls)}`;
  fields += `,"upstream":${jsonString(upstream)}`;
  const server = tries.server;
  if (server !== undefined) fields += `,"server":${jsonString(server)}`;
  fields += `,"attempts":${tries.count}`;
  const forLog = tries.forLog;
  if (forLog !== undefined) fields += `,"tries":${JSON.stringify(forLog)}`;
  fields += `,"status":${status},"durationMs":${Math.round(durationMs * 1000) / 1000},"bytes":${down.bytesSent}`;
  if (detail !== undefined) fields += `,"detail":${jsonString(detail)}`;
  return fields;
}
