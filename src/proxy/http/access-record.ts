/**
 * The access line of one HTTP exchange (the JSON record access-log.ts writes): who asked what, over which protocol,
 * which servers tried it, and how it ended. Fields that would be empty for a plain HTTP/1.1 request (upgrade,
 * protocol, tls, detail) are left out.
 */
import type { Downstream } from './downstream.js';
import type { Tries } from './tries.js';

export function exchangeRecord(
  listener: string,
  requestId: string,
  down: Downstream,
  upstream: string,
  tries: Tries,
  status: number,
  durationMs: number,
  detail: string | undefined,
): object {
  return {
    listener,
    requestId,
    client: down.clientIp,
    method: down.method,
    url: down.url,
    upgrade: down.websocket ? 'websocket' : undefined,
    protocol: down.httpVersion === '2' ? 'h2' : undefined,
    tls: down.tls,
    upstream,
    server: tries.server,
    attempts: tries.count,
    tries: tries.forLog,
    status,
    durationMs: Math.round(durationMs * 1000) / 1000,
    bytes: down.bytesSent,
    detail,
  };
}
