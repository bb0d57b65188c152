/**
 * The Downstream of a request node:http parsed: its IncomingMessage and ServerResponse.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { clientAddress } from '../../util/client-address.js';
import type { Downstream } from './downstream.js';
import type { Failure } from './failures.js';
import { hasRequestBody } from './framing.js';
import { finished } from './pipeline.js';
import { reasonFor, sendFailure } from './respond.js';

/** Responses node:http answered 408 for (`client.request_timeout`): marked by the listener's clientError handler. */
export const timedOut = new WeakSet<ServerResponse>();

export class Http1Downstream implements Downstream {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly clientIp: string;
  bytesSent = 0;
  /** The connection, kept: node:http detaches it from the request once the response is done. */
  readonly #socket: Socket;

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

  respond(status: number, reason: string, headers: string[]): void {
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
    this.res.once('drain', resume);
    return false;
  }

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
    sendFailure(this.res, failure, requestId, false, detail, extra);
  }

  onGone(listener: () => void): void {
    const res = this.res;
    // A pipelined request that waited its turn (pipeline.ts) may find its connection gone already.
    if (res.destroyed) {
      listener();
      return;
    }
    // `on`, not `once`: the response lives for one request, and `once` allocates a wrapper each time.
    res.on('close', () => {
      if (!res.writableFinished) listener();
    });
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
