/**
 * One try at one server: the undici dispatch handler (the raw-header callbacks, so no header object is built).
 *
 * It streams a response straight into the downstream, pausing undici when a write reports backpressure and resuming
 * on drain, and tells the exchange how it ended through one promise (`ended`). It decides nothing: a response whose
 * status the retry policy covers is held (undici paused, nothing sent downstream) until the exchange has asked the
 * policy, then discarded or relayed.
 */
import type { Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Host } from '../../upstream/host.js';
import type { Lease } from '../../upstream/lease.js';
import type { PoolDispatchOptions } from '../../upstream/http2-request.js';
import type { Downstream } from './downstream.js';
import { trailerFields } from './trailers.js';

export type AttemptEnd =
  /** The response was relayed whole; `trailers` when the origin sent any (an HTTP/2 origin's gRPC status). */
  | { readonly kind: 'complete'; readonly trailers?: Readonly<Record<string, string>> }
  /** A response the retry policy covers: paused before a byte went downstream, waiting for `discard` or `relay`. */
  | { readonly kind: 'held'; readonly status: number; readonly rawHeaders: Buffer[]; readonly statusText: string }
  /** Failed before any response byte went downstream (or was given up: timed out, the client left). */
  | { readonly kind: 'failed'; readonly err: Error }
  /** Failed after the response head went downstream: the client must be told it is cut short. */
  | { readonly kind: 'cut'; readonly err: Error }
  /** The origin switched protocols (101): the socket is the exchange's now. */
  | { readonly kind: 'upgraded'; readonly rawHeaders: Buffer[]; readonly socket: Duplex };

/** Every complete attempt ends the same way: one object, not one per response. */
const COMPLETE: AttemptEnd = Object.freeze({ kind: 'complete' });

/** What an attempt needs of its exchange. */
export interface AttemptOwner {
  readonly down: Downstream;
  /** The client is still sending the request body, and is what it waits for: the per-try timeout waits for its end (bodySent). */
  readonly uploading: boolean;
  /** Whether a response with this status must be held for the retry policy. */
  holds(status: number): boolean;
  /** Writes the response head downstream; false when it cannot be relayed (the attempt then fails with `err`). */
  respond(attempt: Attempt, status: number, rawHeaders: Buffer[], statusText: string): Error | undefined;
}

function onTimeout(attempt: Attempt): void {
  attempt.timedOut();
}

export class Attempt implements Dispatcher.DispatchHandler {
  readonly lease: Lease;
  readonly host: Host;
  /** When it was dispatched (performance.now()). */
  readonly startedAt: number;
  readonly #owner: AttemptOwner;
  /** undici had begun writing the request to a connected socket. */
  reachedUpstream = false;
  /** Ballast's own per-try timer fired (not undici's). */
  timedOutLocally = false;
  /** Written on a connection opened for it, which cannot have been closed by the origin as idle. */
  #onFreshConnection = false;
  /** An interim (1xx) response arrived: the origin answered this request. */
  #sawInterim = false;
  /** The status of the response being relayed (0 before one). */
  status = 0;
  #resolve: ((end: AttemptEnd) => void) | undefined;
  /** How a held attempt ended before the exchange decided to relay it. */
  #late: AttemptEnd | undefined;
  #resume: (() => void) | undefined;
  #abort: ((err?: Error) => void) | undefined;
  /** This attempt's callbacks are no longer wanted (its end is decided); later ones are ignored. */
  #dropped = false;
  /** The client went away: the attempt is aborted as soon as undici lets us. */
  #cancelled = false;
  /** The response head went downstream. */
  #relaying = false;
  #timer: NodeJS.Timeout | undefined;
  /** The per-try timer came due while the request body was still streaming. */
  #waitsForBody = false;
  /** How the attempt ended, once (a held response ends twice: held, then relayed). */
  ended: Promise<AttemptEnd>;

  constructor(owner: AttemptOwner, lease: Lease, timeoutMs: number, startedAt: number) {
    this.#owner = owner;
    this.startedAt = startedAt;
    this.lease = lease;
    this.host = lease.host;
    this.ended = new Promise((resolve) => (this.#resolve = resolve));
    // Our own timer, always: undici's headers timer ticks once a second, and starts only once the request is on a
    // socket, so it would not bound the time spent queued for a busy server's connection.
    this.#timer = setTimeout(onTimeout, timeoutMs, this);
    this.#timer.unref();
  }

  #end(end: AttemptEnd): void {
    const resolve = this.#resolve;
    this.#resolve = undefined;
    if (resolve !== undefined) resolve(end);
    // Held, and undici went on anyway: a HEAD response (or one with no body) completes in the same step as its
    // head; an error may come while it is paused. Kept for `relay`.
    else this.#late = end;
  }

  /** The per-try (or request) timer fired before response headers: abort as a headers timeout. */
  timedOut(): void {
    this.#timer = undefined;
    if (this.reachedUpstream && this.#owner.uploading) {
      // The origin is still being sent the request: its time to answer starts once the body is all there.
      this.#waitsForBody = true;
      return;
    }
    this.timedOutLocally = true;
    const err = Object.assign(new Error('upstream did not answer within the per-try timeout'), { code: 'UND_ERR_HEADERS_TIMEOUT' });
    if (this.#abort !== undefined) this.#abort(err);
    else this.#giveUpQueued(err);
  }

  /** The request body is complete: a per-try timeout that came due while it streamed starts again, `ms` from now. */
  bodySent(ms: number): void {
    if (!this.#waitsForBody) return;
    this.#waitsForBody = false;
    this.#timer = setTimeout(onTimeout, ms, this);
    this.#timer.unref();
  }

  /** The client left: abort, and end as failed (the exchange knows the client is gone). */
  cancel(): void {
    this.#cancelled = true;
    const err = new Error('client closed the request');
    if (this.#abort !== undefined) this.#abort(err);
    else this.#giveUpQueued(err);
  }

  /** A held response is not wanted: drop it (and its connection: the body is not worth reading). */
  discard(): void {
    this.#dropped = true;
    this.#abort?.(new Error('response discarded for a retry'));
  }

  /** A held response is wanted after all: send its head and let undici go on. */
  relay(held: { status: number; rawHeaders: Buffer[]; statusText: string }): Promise<Exclude<AttemptEnd, { kind: 'held' }>> {
    // Nothing is held twice: from here the attempt ends complete, cut, or failed (a head that cannot be relayed).
    const ended = new Promise<Exclude<AttemptEnd, { kind: 'held' }>>((resolve) => (this.#resolve = resolve as (end: AttemptEnd) => void));
    this.ended = ended;
    const late = this.#late;
    this.#late = undefined;
    // Failed while held: nothing went downstream, and nothing will.
    if (late !== undefined && late.kind === 'failed') this.#end(late);
    else if (this.#startRelay(held.status, held.rawHeaders, held.statusText)) {
      if (late !== undefined) this.#end(late);
      else this.#resume?.();
    }
    return ended;
  }

  /**
   * Still queued in undici (no connection free yet), so nothing was written: stop waiting now rather than when a
   * connection frees up, and let `onConnect` abort it silently later.
   */
  #giveUpQueued(err: Error): void {
    if (this.#dropped) return;
    this.#dropped = true;
    this.#clearTimer();
    this.#end({ kind: 'failed', err });
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }

  /** Writes the head downstream; on a response that cannot be relayed, fails the attempt. */
  #startRelay(status: number, rawHeaders: Buffer[], statusText: string): boolean {
    const err = this.#owner.respond(this, status, rawHeaders, statusText);
    if (err !== undefined) {
      this.#dropped = true;
      this.#abort?.(err);
      this.#end({ kind: 'failed', err });
      return false;
    }
    this.status = status;
    this.#relaying = true;
    return true;
  }

  onConnect(abort: (err?: Error) => void): void {
    this.#abort = abort;
    this.lease.connected();
    // Whatever becomes of this attempt, it is the one written on the connection just opened, if one was.
    this.#onFreshConnection = this.host.takeFreshConnection();
    // Aborted before a byte is written: it never reached the origin, and reports nothing about it.
    if (this.#dropped || this.#cancelled) {
      abort(new Error('attempt no longer wanted'));
      return;
    }
    this.reachedUpstream = true;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (this.#dropped) return false;
    // RFC 9110 §15: a status is three digits, 100 to 599; anything else is not a response that can be relayed.
    if (statusCode < 100 || statusCode > 599) {
      this.#clearTimer();
      const err = Object.assign(new Error(`upstream sent status ${statusCode}`), { code: 'HPE_INVALID_STATUS' });
      this.#dropped = true;
      this.#abort?.(err);
      this.#end({ kind: 'failed', err });
      return false;
    }
    // 1xx interim responses (RFC 9110 §15.2) are not relayed; Node sends its own 100 Continue.
    if (statusCode < 200) {
      this.#sawInterim = true;
      return true;
    }
    this.#clearTimer();
    this.#resume = resume;
    if (this.#owner.holds(statusCode)) {
      this.#end({ kind: 'held', status: statusCode, rawHeaders, statusText });
      return false;
    }
    return this.#startRelay(statusCode, rawHeaders, statusText);
  }

  onData(chunk: Buffer): boolean {
    if (this.#dropped) return false;
    return this.#owner.down.write(chunk, this.#resume!);
  }

  /** undici gives trailers as raw pairs over HTTP/1.1 (chunked) and as a headers object over HTTP/2. */
  onComplete(trailers: Buffer[] | string[] | Record<string, string | string[] | undefined> | null): void {
    this.#clearTimer();
    if (this.#dropped) return;
    this.#dropped = true;
    const fields = trailerFields(trailers);
    this.#end(fields === undefined ? COMPLETE : { kind: 'complete', trailers: fields });
  }

  onError(err: Error): void {
    this.#clearTimer();
    if (this.#dropped) return;
    this.#dropped = true;
    // An HTTP/2 server refused the stream (http2-request.ts `refusedStream`): RFC 9113 §8.7 says it did not process it.
    if ((err as { unprocessed?: boolean }).unprocessed === true) this.reachedUpstream = false;
    this.#end({ kind: this.#relaying ? 'cut' : 'failed', err });
  }

  onUpgrade(_statusCode: number, rawHeaders: Buffer[] | string[] | null, socket: Duplex): void {
    this.#clearTimer();
    this.#dropped = true;
    socket.on('error', noop);
    const raw = (rawHeaders ?? []).map((h) => (typeof h === 'string' ? Buffer.from(h, 'latin1') : h));
    this.#end({ kind: 'upgraded', rawHeaders: raw, socket });
  }

  /**
   * Whether this attempt may have lost the keep-alive race (RFC 9112 §9.3.1) when it failed with `err`: written on a
   * pooled connection that had already carried responses (undici's SocketError reports the socket's byte counts),
   * not on one opened for it, and answered with nothing, not even a 1xx. A connection opened for this request that
   * fails after some bytes came back is the origin failing this request, not a race; with `attempts: 1` it must not
   * be sent twice.
   */
  mayHaveLostRace(err: Error): boolean {
    if (this.#onFreshConnection || this.#sawInterim) return false;
    const socket = (err as Error & { socket?: { bytesRead?: number } }).socket;
    return socket?.bytesRead !== undefined && socket.bytesRead > 0;
  }

  /**
   * Dispatch the request on the leased server's pool. `servername` is the server's (transport.ts), so undici never
   * takes one from the client's Host header.
   */
  dispatch(options: PoolDispatchOptions & { servername?: string }): void {
    try {
      this.host.pool.dispatch(options, this);
    } catch (err) {
      this.onError(err as Error);
    }
  }
}

function noop(): void {}
