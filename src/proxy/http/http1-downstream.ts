/**
 * The Downstream of a request node:http parsed: its IncomingMessage and ServerResponse.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Readable } from 'node:stream';
import { clientAddress } from '../../util/client-address.js';
import type { Downstream } from './downstream.js';
import type { Failure } from './failures.js';
import { hasRequestBody, isRefused, refuseConnection } from './framing.js';
import { finished } from './pipeline.js';
import { reasonFor, sendFailure } from './respond.js';
import { trailerFields } from './trailers.js';

/** The TLS version of a client connection, undefined in clear text (read for the access log only). */
export function tlsVersion(socket: Socket): string | undefined {
  return 'encrypted' in socket ? ((socket as TLSSocket).getProtocol() ?? undefined) : undefined;
}

const kGone = Symbol('ballast.gone');

/**
 * A connection's one 'close' listener, and the exchange it tells: the one in flight (pipeline.ts starts a
 * connection's requests one at a time). Registered once per connection, not added and removed per request.
 */
interface WatchedSocket extends Socket {
  [kGone]?: (() => void) | undefined;
}

function onConnectionClose(this: WatchedSocket): void {
  const gone = this[kGone];
  this[kGone] = undefined;
  gone?.();
}

/** Responses node:http answered 408 for (`client.request_timeout`): marked by the listener's clientError handler. */
export const timedOut = new WeakSet<ServerResponse>();

export class Http1Downstream implements Downstream {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly clientIp: string;
  bytesSent = 0;
  /** The connection, kept: node:http detaches it from the request once the response is done. */
  readonly #socket: WatchedSocket;
  /** `client.send_timeout`, and what to call when it passes with the client not reading. */
  #sendTimeoutMs = 0;
  #onStall: (() => void) | undefined;
  #stallTimer: NodeJS.Timeout | undefined;

  constructor(req: IncomingMessage, res: ServerResponse) {
    this.req = req;
    this.res = res;
    this.#socket = req.socket;
    this.clientIp = clientAddress(req.socket.remoteAddress);
    // RFC 9112 §6.1: no Transfer-Encoding to an HTTP/1.0 client. Node chunks for one that sent `TE: chunked`; the
    // body is then delimited by the close instead.
    if (req.httpVersionMinor === 0) res.useChunkedEncodingByDefault = false;
  }

  get method(): string {
    return this.req.method ?? 'GET';
  }

  get url(): string {
    return this.req.url ?? '/';
  }

  get httpVersion(): string {
    return this.req.httpVersion;
  }

  get rawHeaders(): readonly string[] {
    return this.req.rawHeaders;
  }

  get headers(): IncomingHttpHeaders {
    return this.req.headers;
  }

  get body(): Readable | null {
    return hasRequestBody(this.req) ? this.req : null;
  }

  get websocket(): boolean {
    return false;
  }

  get requestTrailers(): Readonly<Record<string, string>> | undefined {
    const raw = this.req.rawTrailers;
    return raw.length === 0 ? undefined : trailerFields(raw);
  }

  get tls(): string | undefined {
    return tlsVersion(this.#socket);
  }

  continue(): void {
    // node:http leaves `100-continue` to its 'checkContinue' listener (listener.ts), which is this forwarder.
    const expect = this.req.headers.expect;
    if (expect !== undefined && expect.toLowerCase() === '100-continue' && !this.res.headersSent) this.res.writeContinue();
  }

  respond(status: number, reason: string, headers: string[]): void {
    // The origin answered before the request body was all here (an early 401, a 413): the rest of the body is not
    // waited for. The connection closes after the response rather than reading a body nobody wants.
    if (!this.req.complete) this.res.shouldKeepAlive = false;
    const phrase = reasonFor(status, reason, false);
    if (phrase !== undefined) this.res.writeHead(status, phrase, headers);
    else this.res.writeHead(status, headers);
    // Node holds the head until the first body write. When no body byte came with it (the origin streams, or is
    // slow), send the head on its own once undici is done with this read, so the client sees it now.
    process.nextTick(flushHead, this);
  }

  write(chunk: Buffer, resume: () => void): boolean {
    this.bytesSent += chunk.length;
    if (this.res.write(chunk)) return true;
    if (this.#sendTimeoutMs > 0) {
      // NGINX send_timeout: a client that reads nothing for this long does not hold the upstream connection forever.
      this.#stallTimer = setTimeout(this.#onStall!, this.#sendTimeoutMs);
      this.res.once('drain', () => {
        clearTimeout(this.#stallTimer);
        resume();
      });
    } else this.res.once('drain', resume);
    return false;
  }

  watchSend(ms: number, onStall: () => void): void {
    this.#sendTimeoutMs = ms;
    this.#onStall = onStall;
  }

  /**
   * Response trailers are dropped: over HTTP/1.1 they need a chunked body announced with `Trailer` before the head
   * went out (RFC 9110 §6.6.2), and HTTP/1.1 clients mostly ignore them (RFC 9110 §6.5.1 lets a recipient discard them).
   */
  end(): void {
    this.res.end();
  }

  reset(): void {
    const socket = this.res.socket;
    if (socket !== null && !socket.destroyed) socket.resetAndDestroy();
    else this.res.destroy();
  }

  fail(failure: Failure, requestId: string | undefined, detail?: string, extra?: Record<string, string>): void {
    if (this.res.headersSent) {
      this.reset();
      return;
    }
    // RFC 9112 §9.6: after a `close` nothing more of this connection is processed, pipelined requests included.
    if (failure.close === true) refuseConnection(this.#socket);
    sendFailure(this.res, failure, requestId, false, detail, extra);
  }

  onGone(listener: () => void): void {
    const socket = this.#socket;
    // A pipelined request that waited its turn (pipeline.ts) may find its connection gone, or refused, already.
    if (socket.destroyed || this.res.destroyed || isRefused(socket)) {
      listener();
      return;
    }
    // The connection, not the response: a response queued behind another is never attached to the socket, and
    // would never see it close. The listener ignores a close after the exchange is over; done() clears it.
    if (!(kGone in socket)) socket.on('close', onConnectionClose);
    socket[kGone] = listener;
  }

  get timedOut(): boolean {
    return timedOut.has(this.res);
  }

  watchBody(ms: number, onSlow: () => void): void {
    const req = this.req;
    // The socket's idle timer: any byte read resets it. node:http emits its 'timeout' on the request while the
    // request is incomplete; the timer must be off again before node:http's keep-alive reuses it.
    req.setTimeout(ms, onSlow);
    req.once('end', () => this.#socket.setTimeout(0));
  }

  done(): void {
    clearTimeout(this.#stallTimer);
    this.#socket[kGone] = undefined;
    finished(this.#socket);
  }

  tunnel(): Promise<void> {
    // undici reports a 101 only to a request dispatched with `upgrade`, which a plain request never is.
    throw new Error('a plain HTTP/1 request cannot become a tunnel');
  }
}

function flushHead(down: Http1Downstream): void {
  const res = down.res;
  if (down.bytesSent === 0 && !res.writableEnded && !res.destroyed) res.flushHeaders();
}
