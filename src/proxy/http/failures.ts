/**
 * Every way a proxied request can fail, mapped to a response in one table, by source (Pingora `fail_to_proxy`):
 * upstream misbehaved → 502, nothing available or a circuit open → 503, upstream too slow → 504,
 * the client went away → no response at all (logged as 499, as NGINX does); the client's own fault (too slow to send
 * its request, a body over the limit, over its rate) → 408, 413, 429, never counted against a server.
 */
import { isTlsHandshakeError } from '../../util/tls-errors.js';
import { CONNECT_FAILURE, RESET, TIMEOUT, type Outcome } from '../../upstream/outcome.js';

export interface Failure {
  /** Stable code for logs and the `x-ballast-error` response header. */
  readonly code: string;
  readonly status: number;
  readonly message: string;
  /** Seconds for `Retry-After` (RFC 9110 §10.2.3) on 503s. */
  readonly retryAfter?: number;
  /** Close the connection after this answer: the rest of the request was not read, and will not be. */
  readonly close?: boolean;
}

export const FAILURES = {
  badRequest: { code: 'bad_request', status: 400, message: 'Bad Request' },
  noRoute: { code: 'no_route', status: 404, message: 'No route for this host and path' },
  unsupportedUpgrade: { code: 'unsupported_upgrade', status: 400, message: 'A WebSocket handshake must be a GET' },
  /**
   * WebSocket to an `http2` upstream would need RFC 8441 extended CONNECT bridged to an HTTP/1.1 handshake (a 200 into
   * a 101, Sec-WebSocket-Accept made here): not done, so refused rather than sent as a plain GET the origin would
   * answer with something no WebSocket client understands.
   */
  websocketToHttp2: { code: 'websocket_to_http2_upstream', status: 501, message: 'WebSocket is not supported to an http2 upstream' },
  connectFailed: { code: 'upstream_connect_failed', status: 502, message: 'Upstream refused the connection' },
  connectTimeout: { code: 'upstream_connect_timeout', status: 504, message: 'Upstream connect timed out' },
  reset: { code: 'upstream_reset', status: 502, message: 'Upstream reset the connection' },
  invalidResponse: { code: 'upstream_invalid_response', status: 502, message: 'Upstream sent an invalid response' },
  timeout: { code: 'upstream_timeout', status: 504, message: 'Upstream timed out' },
  noServer: { code: 'no_healthy_upstream', status: 503, message: 'No upstream server is available', retryAfter: 1 },
  overflow: { code: 'upstream_overflow', status: 503, message: 'Upstream circuit breaker is open', retryAfter: 1 },
  clientGone: { code: 'client_closed_request', status: 499, message: 'Client closed the request' },
  clientTimeout: { code: 'client_timeout', status: 408, message: 'Request Timeout', close: true },
  bodyTooLarge: { code: 'body_too_large', status: 413, message: 'Request body is larger than allowed', close: true },
  rateLimited: { code: 'rate_limited', status: 429, message: 'Too Many Requests' },
  internal: { code: 'internal_error', status: 500, message: 'Internal proxy error' },
} as const satisfies Record<string, Failure>;

export interface ClassifiedError {
  readonly failure: Failure;
  /** What the outlier detector and the EWMA learn from it; undefined when the server is not to blame. */
  readonly outcome: Outcome | undefined;
}

const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ENOTFOUND', 'EAI_AGAIN']);

/**
 * Classify an undici error. `reachedUpstream` is whether undici had started writing the request (its `onConnect`):
 * before that, nothing can have had an effect on the origin.
 */
export function classifyUpstreamError(err: Error & { code?: string }, reachedUpstream: boolean): ClassifiedError {
  const code = err.code;
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return { failure: FAILURES.connectTimeout, outcome: CONNECT_FAILURE };
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') return { failure: FAILURES.timeout, outcome: TIMEOUT };
  if (err.name === 'HTTPParserError' || (code !== undefined && code.startsWith('HPE_'))) return { failure: FAILURES.invalidResponse, outcome: RESET };
  if (code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' || code === 'UND_ERR_HEADERS_OVERFLOW') {
    return { failure: FAILURES.invalidResponse, outcome: RESET };
  }
  if (!reachedUpstream && (code === undefined || CONNECT_ERRORS.has(code) || code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || isTlsHandshakeError(err))) {
    return { failure: FAILURES.connectFailed, outcome: CONNECT_FAILURE };
  }
  if (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET' || code === 'EPIPE' || code === 'UND_ERR_CLOSED' || code === 'UND_ERR_DESTROYED') {
    return { failure: FAILURES.reset, outcome: RESET };
  }
  if (code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH') return { failure: FAILURES.badRequest, outcome: undefined };
  // undici refused the request before sending it (a header or target it will not write): the server is not to blame.
  if (code === 'UND_ERR_INVALID_ARG' || code === 'UND_ERR_NOT_SUPPORTED') return { failure: FAILURES.internal, outcome: undefined };
  return { failure: FAILURES.reset, outcome: RESET };
}
