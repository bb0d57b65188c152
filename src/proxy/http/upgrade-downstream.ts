/**
 * The Downstream of an upgrade request (RFC 9110 §7.8), on the raw socket node:http hands over with it.
 *
 * A WebSocket handshake (RFC 6455 §4) is sent upstream as one; only when the origin answers 101 does the socket
 * become a tunnel, the two sockets then living and dying together. Any other answer is relayed as an ordinary
 * response and the connection closed: the client must not treat the socket as upgraded.
 *
 * Any other upgrade (`h2c`, which `curl --http2` asks for on http:// URLs) is served as the ordinary request it also
 * is, the Upgrade ignored (RFC 9110 §7.8 lets a server do that), and the connection closed after the response:
 * node:http has handed the socket over, and Ballast does not parse what the client sends next on it.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { clientAddress } from '../../util/client-address.js';
import type { Downstream } from './downstream.js';
import type { Failure } from './failures.js';
import { rawHead, reasonFor, writeFailure } from './respond.js';

/** Bytes read from a client before its handshake is answered, beyond which it is paused. */
const EARLY_LIMIT = 64 * 1024;

export class UpgradeDownstream implements Downstream {
  readonly #req: IncomingMessage;
  /** node:http hands over the connection's net.Socket (a TLSSocket is one too). */
  readonly #socket: Socket;
  /** What the client sent with its handshake, in the packet that carried it. */
  readonly #head: Buffer;
  readonly clientIp: string;
  readonly websocket: boolean;
  bytesSent = 0;
  /** What the client sent after its handshake, before the origin answered: forwarded once the tunnel opens. */
  #early: Buffer[] = [];
  #earlyBytes = 0;
  #responded = false;

  constructor(req: IncomingMessage, socket: Duplex, head: Buffer, websocket: boolean) {
    this.#req = req;
    this.#socket = socket as Socket;
    this.#head = head;
    this.websocket = websocket;
    this.clientIp = clientAddress(req.socket.remoteAddress);
    if (websocket) {
      // Read while the handshake is pending, or a client that leaves with a FIN (not a reset) goes unnoticed until
      // the timeout, holding its lease and blaming the origin for the wait. A WebSocket client sends nothing before
      // the 101 (RFC 6455 §4.1), so this is a few bytes at most; past EARLY_LIMIT the client is paused.
      socket.on('data', this.#onEarlyData);
      socket.once('end', this.#onEarlyEnd);
    }
  }

  get method(): string {
    return this.#req.method ?? 'GET';
  }

  get url(): string {
    return this.#req.url ?? '/';
  }

  get httpVersion(): string {
    return this.#req.httpVersion;
  }

  get rawHeaders(): readonly string[] {
    return this.#req.rawHeaders;
  }

  get headers(): IncomingHttpHeaders {
    return this.#req.headers;
  }

  /** An upgrade request with a body is refused before it gets here (framing.ts). */
  get body(): null {
    return null;
  }

  readonly #onEarlyData = (chunk: Buffer): void => {
    this.#early.push(chunk);
    this.#earlyBytes += chunk.length;
    if (this.#earlyBytes > EARLY_LIMIT) this.#socket.pause();
  };

  /** The client half-closed before the origin answered: it is gone (its 'close' then aborts the attempt). */
  readonly #onEarlyEnd = (): void => {
    this.#socket.destroy();
  };

  respond(status: number, reason: string, headers: string[]): void {
    this.#responded = true;
    this.#socket.write(rawHead(status, reasonFor(status, reason, true)!, headers, 'connection: close\r\n'));
  }

  write(chunk: Buffer, resume: () => void): boolean {
    this.bytesSent += chunk.length;
    if (this.#socket.write(chunk)) return true;
    this.#socket.once('drain', resume);
    return false;
  }

  /** A response to an upgrade request that did not upgrade is HTTP/1.1 on the raw socket: trailers are dropped. */
  end(): void {
    this.#socket.end();
  }

  reset(): void {
    const socket = this.#socket;
    if (typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy();
    else socket.destroy();
  }

  fail(failure: Failure, requestId: string | undefined, detail?: string, extra?: Record<string, string>): void {
    if (this.#responded) this.reset();
    else writeFailure(this.#socket, failure, detail, requestId, extra);
  }

  onGone(listener: () => void): void {
    if (this.#socket.destroyed) {
      listener();
      return;
    }
    this.#socket.once('close', () => {
      if (!this.#socket.writableFinished) listener();
    });
  }

  /** node:http's request timeout does not apply to a connection it handed over. */
  get timedOut(): boolean {
    return false;
  }

  /** An upgrade request has no body (framing.ts refuses one that says it has). */
  watchBody(): void {}

  /** No body, so nothing to continue. */
  continue(): void {}

  /** A non-101 answer is relayed on the raw socket; a tunnel has `timeouts.idle` both ways. */
  watchSend(): void {}

  /** node:http handed the connection over: nothing follows on it that Ballast would parse. */
  done(): void {}

  tunnel(headers: readonly string[], upstream: Duplex, idleMs: number): Promise<void> {
    const client = this.#socket;
    this.#responded = true;
    client.write(rawHead(101, 'Switching Protocols', headers, 'connection: Upgrade\r\nupgrade: websocket\r\n'));
    if (this.#head.length > 0) upstream.write(this.#head);
    client.off('data', this.#onEarlyData);
    client.off('end', this.#onEarlyEnd);
    for (const chunk of this.#early) upstream.write(chunk);
    this.#early = [];
    return new Promise((resolve) => {
      // Either side closing or failing tears down both: a half-open tunnel is a leaked socket.
      const teardown = (): void => {
        client.destroy();
        upstream.destroy();
        resolve();
      };
      client.once('close', teardown);
      upstream.once('close', teardown);
      // A tunnel silent for `idleMs` both ways is closed (NGINX proxy_read_timeout, HAProxy timeout tunnel): every
      // relayed byte is a read or a write on the client socket, and a tunnel stalled by backpressure is silent too.
      if (idleMs > 0) client.setTimeout(idleMs, teardown);
      client.pipe(upstream);
      upstream.pipe(client);
      if (client.destroyed) teardown();
    });
  }
}
