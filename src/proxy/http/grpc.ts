/**
 * What a proxy must know of gRPC (gRPC over HTTP/2, grpc/grpc doc/PROTOCOL-HTTP2.md): which requests are gRPC
 * calls, the deadline a call carries (`grpc-timeout`), and how a response the proxy makes itself is said to a gRPC
 * client: as a status in a trailers-only response, which a gRPC client reads, not as an HTML or text body, which it
 * cannot.
 */
import type { IncomingHttpHeaders } from 'node:http';

/** gRPC status codes (grpc/grpc doc/statuscodes.md) a proxy answers with. */
export const GRPC_STATUS = {
  DEADLINE_EXCEEDED: 4,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

/** A gRPC call: `content-type: application/grpc`, alone or with a `+proto`/`+json`/`;…` suffix. */
export function isGrpc(headers: IncomingHttpHeaders): boolean {
  const type = headers['content-type'];
  return type !== undefined && type.startsWith('application/grpc') && (type.length === 16 || type[16] === '+' || type[16] === ';');
}

const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000_001 };

/** `grpc-timeout` (TimeoutValue: up to 8 digits, then a unit), in milliseconds; undefined when absent or malformed. */
export function grpcTimeoutMs(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string') return undefined;
  const m = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (m === null) return undefined;
  // At least a millisecond: a deadline of 0 would time out before the request is sent, and the call fails anyway.
  return Math.max(1, Number(m[1]) * UNIT_MS[m[2]!]!);
}

/**
 * The gRPC status for a response Ballast makes itself. Mostly the HTTP-to-gRPC mapping of PROTOCOL-HTTP2.md, except
 * that a proxy's own timeouts (504, 408) are the deadline passing, as Envoy reports them, and a refusal to take more
 * (413, 429) is RESOURCE_EXHAUSTED.
 */
export function grpcStatusFor(httpStatus: number): number {
  switch (httpStatus) {
    case 504:
    case 408:
      return GRPC_STATUS.DEADLINE_EXCEEDED;
    case 413:
    case 429:
      return GRPC_STATUS.RESOURCE_EXHAUSTED;
    case 404:
      return GRPC_STATUS.UNIMPLEMENTED;
    case 502:
    case 503:
      return GRPC_STATUS.UNAVAILABLE;
    default:
      return GRPC_STATUS.INTERNAL;
  }
}

/** `grpc-message` is percent-encoded (PROTOCOL-HTTP2.md: Percent-Encoded of the UTF-8 text, space kept as is). */
export function grpcMessage(text: string): string {
  return encodeURIComponent(text).replace(/%20/g, ' ');
}
