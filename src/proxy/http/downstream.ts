/**
 * The client side of one exchange, whatever the protocol: what the exchange loop (exchange.ts) reads of the request
 * and how it answers. One adapter per way a request arrives: a node:http request (http1-downstream.ts), an upgrade
 * request on the raw socket node:http hands over (upgrade-downstream.ts); an HTTP/2 stream is one more adapter, and the
 * loop does not change.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Duplex, Readable } from 'node:stream';
import type { Failure } from './failures.js';

export interface Downstream {
  readonly method: string;
  /** The request target, origin-form. */
  readonly url: string;
  /** `1.1`, `1.0`: for `Via` (RFC 9110 §7.6.3). */
  readonly httpVersion: string;
  /** The request fields as received, names and values alternating. */
  readonly rawHeaders: readonly string[];
  /** The same fields parsed, for the hash key, the sticky cookie and the body's framing. */
  readonly headers: IncomingHttpHeaders;
  /** The client's address, IPv4-mapped IPv6 shown as IPv4; '' when the connection is already gone. */
  readonly clientIp: string;
  /** The request body, or null when the request has none (RFC 9112 §6.3). */
  readonly body: Readable | null;
  /** A WebSocket handshake: sent upstream as an upgrade, and tunnelled on a 101. */
  readonly websocket: boolean;
  /** The TLS version of the client's connection (`TLSv1.3`), undefined in clear text: for the access log. */
  readonly tls?: string | undefined;
  /** A deadline the client set for its request (a gRPC call's `grpc-timeout`), in milliseconds. */
  readonly timeoutMs?: number | undefined;
  /**
   * The request's trailer fields (RFC 9110 §6.5), lower-case names, once its body has ended; undefined when it brought
   * none. Only an HTTP/2 origin is sent them (undici cannot send request trailers).
   */
  readonly requestTrailers?: Readonly<Record<string, string>> | undefined;
  /** Response body bytes written so far. */
  readonly bytesSent: number;

  /** The request is admitted and its body wanted: send `100 Continue` if the client is waiting for one. */
  continue(): void;
  /** Send the response head; `reason` may be empty or unwritable, and is then the standard one. */
  respond(status: number, reason: string, headers: string[]): void;
  /** Write body bytes; false means the client is slow: undici is paused, and `resume` is called on drain. */
  write(chunk: Buffer, resume: () => void): boolean;
  /**
   * The response is complete. `trailers`: the origin's response trailers (RFC 9110 §6.5), lower-case names, for a
   * downstream that can send them (HTTP/2: gRPC's `grpc-status`); a downstream that cannot drops them.
   */
  end(trailers?: Readonly<Record<string, string>>): void;
  /** Cut the response short so the client can tell (a reset, not a FIN: a close-delimited body would look whole). */
  reset(): void;
  /** A response made by the proxy, when no response has started; otherwise the same as `reset`. */
  fail(failure: Failure, requestId: string | undefined, detail?: string, extra?: Record<string, string>): void;
  /** node:http gave up waiting for the rest of the request (`client.request_timeout`) and answered 408 itself. */
  readonly timedOut: boolean;
  /** Calls `onStall` if the client reads nothing of the response for `ms` while it is being written. */
  watchSend(ms: number, onStall: () => void): void;
  /** Calls `onSlow` if `ms` pass between two reads of the request body, until the body is complete. */
  watchBody(ms: number, onSlow: () => void): void;
  /**
   * Calls `onLate` if the request is not all here `ms` after it began (`client.request_timeout`). Absent where the
   * server enforces that itself (node:http answers 408 on its own).
   */
  watchRequest?(ms: number, onLate: () => void): void;
  /** Calls `listener` once if the client goes away before the response is complete (at once if it has already). */
  onGone(listener: () => void): void;
  /** The exchange is over, its access line written: the connection may start its next request. */
  done(): void;
  /** After a 101: relay both ways until either side closes, or both are idle for `idleMs`. Resolves on close. */
  tunnel(headers: readonly string[], upstream: Duplex, idleMs: number): Promise<void>;
}
