/**
 * One request on one stream of an HTTP/2 session to a server (http2-pool.ts picks the session), reported to its
 * handler as undici reports a request: onConnect with an abort, onHeaders with raw headers and a resume, onData
 * returning false to pause, onComplete with the trailers, onError with undici's error codes. It sends the request's
 * fields, body (a buffer, or a stream piped with backpressure) and trailers; it streams the response back, pausing the
 * stream (and its idle timer) while the handler cannot take more, and tells a refused stream (RFC 9113 §8.7: not
 * processed) from one reset after the server may have acted on it.
 */
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';

const { NGHTTP2_CANCEL, NGHTTP2_NO_ERROR, NGHTTP2_REFUSED_STREAM } = http2.constants;

/** How long a response head waits for its first body bytes before it is handed on alone (Http2Request#onResponse). */
const HEAD_WAIT_MS = 1;

function handOnHead(request: Http2Request): void {
  request.handOnHead();
}

/** What a request calls, in undici's order: an Attempt (proxy/http/attempt.ts) is one. */
export interface StreamHandler {
  onConnect(abort: (err?: Error) => void): void;
  onHeaders(status: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean;
  onData(chunk: Buffer): boolean;
  onComplete(trailers: IncomingHttpHeaders | null): void;
  onError(err: Error): void;
}

/** undici's dispatch options, and where a request's trailers come from (undici ignores it: it cannot send them). */
export interface PoolDispatchOptions extends Dispatcher.DispatchOptions {
  /** Read when the body has been sent: its `requestTrailers` go as the request's trailers (RFC 9113 §8.1). */
  readonly trailerSource?: { readonly requestTrailers?: Readonly<Record<string, string>> | undefined } | undefined;
}

/** The session a request's stream is on, as the request sees it. */
export interface StreamSlot {
  readonly h2: ClientHttp2Session;
  /** The last stream id of the server's GOAWAY: the streams after it were not processed (RFC 9113 §6.8). */
  readonly lastProcessed: number | undefined;
}

/** What a request needs of its pool. */
export interface StreamOwner {
  headersOf(options: Dispatcher.DispatchOptions): OutgoingHttpHeaders;
  /** The stream's place in its session is free again. */
  streamClosed(slot: StreamSlot): void;
}

/** An error with a code, as undici's errors have (proxy/http/failures.ts classifies by it). */
export function codedError(message: string, code: string, cause?: unknown): Error & { code: string } {
  return Object.assign(new Error(message, cause === undefined ? undefined : { cause }), { code });
}

/**
 * A stream the server refused (RST_STREAM REFUSED_STREAM, or beyond the last stream id of its GOAWAY): RFC 9113
 * §8.7 guarantees it was not processed, so it is a connect failure whatever the method, and safe to retry.
 */
export function refusedStream(): Error {
  return Object.assign(codedError('upstream refused the stream (not processed, RFC 9113 §8.7)', 'UND_ERR_SOCKET'), { unprocessed: true });
}

export class Http2Request {
  readonly #pool: StreamOwner;
  readonly #options: PoolDispatchOptions;
  readonly #handler: StreamHandler;
  #session: StreamSlot | undefined;
  #stream: ClientHttp2Stream | undefined;
  /** onComplete or onError was called: nothing more is reported. */
  #done = false;
  #responded = false;
  /** A response head not handed on yet: it waits for the first body bytes (see #onResponse). */
  #head: IncomingHttpHeaders | undefined;
  #headTimer: NodeJS.Timeout | undefined;
  /** The handler holds the response (onHeaders returned false): body bytes and the end wait for `resume`. */
  #held = false;
  #parked: Buffer[] | undefined;
  /** The stream ended (whole response in) while held or parked: complete once the handler has taken it all. */
  #endParked = false;
  #trailers: IncomingHttpHeaders | null = null;
  #error: Error | undefined;
  /** `bodyTimeout`: the longest the server may send nothing once it has answered (0: none). */
  #idleMs = 0;

  constructor(pool: StreamOwner, options: PoolDispatchOptions, handler: StreamHandler) {
    this.#pool = pool;
    this.#options = options;
    this.#handler = handler;
  }

  /** Failed before it had a stream (the server could not be reached, or the pool was destroyed). */
  fail(err: Error): void {
    if (this.#done) return;
    this.#done = true;
    this.#handler.onError(err);
  }

  start(session: StreamSlot): void {
    this.#session = session;
    this.#handler.onConnect(this.#abort);
    // Aborted in onConnect (the attempt was given up while it waited): nothing is sent.
    if (this.#done) return this.#release();
    const options = this.#options;
    const body = options.body as Buffer | Readable | null | undefined;
    const hasBody = body !== null && body !== undefined;
    const source = options.trailerSource;
    // A body read whole has its trailers already; a streamed one has them (or not) once it ends, so it waits for them.
    const waitForTrailers = hasBody && source !== undefined && (!Buffer.isBuffer(body) || source.requestTrailers !== undefined);
    let stream: ClientHttp2Stream;
    try {
      stream = session.h2.request(this.#pool.headersOf(options), { endStream: !hasBody, waitForTrailers });
    } catch (err) {
      // A field node:http2 will not send: the request is refused here, and the server is not to blame.
      this.#release();
      return this.fail(codedError(`request not sent over HTTP/2: ${(err as Error).message}`, 'UND_ERR_INVALID_ARG', err));
    }
    this.#stream = stream;
    stream.on('response', this.#onResponse);
    stream.on('trailers', (trailers: IncomingHttpHeaders) => {
      this.#trailers = trailers;
    });
    stream.on('end', this.#onEnd);
    stream.on('error', (err: Error) => {
      this.#error ??= err;
    });
    stream.on('timeout', () => this.#abort(codedError(`upstream sent nothing for ${options.bodyTimeout} ms`, 'UND_ERR_BODY_TIMEOUT')));
    stream.on('close', this.#onClose);
    // No trailers after all: node:http2 then ends the stream with an empty DATA frame.
    if (waitForTrailers) {
      stream.once('wantTrailers', () => {
        try {
          stream.sendTrailers({ ...source!.requestTrailers });
        } catch (err) {
          this.#abort(codedError(`request trailers not sent over HTTP/2: ${(err as Error).message}`, 'UND_ERR_INVALID_ARG', err));
        }
      });
    }
    if (!hasBody) return;
    if (Buffer.isBuffer(body)) stream.end(body);
    // pipe, not pipeline: a stream reset must not destroy the client's own request stream, which still gets its answer.
    else body.pipe(stream);
  }

  /**
   * node:http2 emits a stream's body a loop turn after its head, even when both came in one read; handed on at once,
   * the head would go to an HTTP/1.1 client in a write of its own (http1-downstream.ts flushes a head no body byte
   * followed within the tick). So the head waits for the first body bytes or the end, and at most HEAD_WAIT_MS, so a
   * response whose body is slow (a stream of events) still shows its head at once.
   */
  readonly #onResponse = (headers: IncomingHttpHeaders): void => {
    if (this.#done) return;
    const stream = this.#stream!;
    this.#responded = true;
    const idle = this.#options.bodyTimeout;
    this.#idleMs = idle === undefined || idle === null ? 0 : idle;
    if (this.#idleMs > 0) stream.setTimeout(this.#idleMs);
    this.#head = headers;
    this.#headTimer = setTimeout(handOnHead, HEAD_WAIT_MS, this);
    stream.on('data', this.#onData);
  };

  /** Hands the waiting head on; false when the handler holds the response. */
  handOnHead(): boolean {
    const head = this.#head;
    if (head === undefined || this.#done) return !this.#held;
    this.#head = undefined;
    clearTimeout(this.#headTimer);
    if (this.#handler.onHeaders(Number(head[':status']), rawHeaders(head), this.#resume, '')) return true;
    this.#held = true;
    this.#pause();
    return false;
  }

  /**
   * The handler cannot take more (a slow client, or a held response): the stream stops, and so does its idle timer,
   * which would otherwise blame the server for the client's pace (undici's body timer also waits while paused).
   */
  #pause(): void {
    const stream = this.#stream!;
    stream.pause();
    if (this.#idleMs > 0) stream.setTimeout(0);
  }

  readonly #onData = (chunk: Buffer): void => {
    if (this.#done) return;
    if (this.#held || !this.handOnHead()) {
      (this.#parked ??= []).push(chunk);
      return;
    }
    if (!this.#handler.onData(chunk)) this.#pause();
  };

  /** The handler wants more: what was parked while it held the response first, then the stream. */
  readonly #resume = (): void => {
    this.#held = false;
    const parked = this.#parked;
    this.#parked = undefined;
    if (parked !== undefined) {
      for (let i = 0; i < parked.length; i++) {
        if (this.#done) return;
        if (!this.#handler.onData(parked[i]!)) {
          // Slow again: the rest stays parked, in order, for the next resume.
          this.#held = true;
          this.#parked = parked.slice(i + 1);
          return;
        }
      }
    }
    if (this.#endParked) return this.#complete();
    const stream = this.#stream;
    if (stream === undefined || stream.destroyed) return;
    if (this.#idleMs > 0) stream.setTimeout(this.#idleMs);
    stream.resume();
  };

  readonly #onEnd = (): void => {
    if (this.#done || !this.#responded) return;
    // Parked bytes exist only while held, so `held` covers them too.
    if (this.#held || !this.handOnHead()) {
      this.#endParked = true;
      return;
    }
    this.#complete();
  };

  #complete(): void {
    if (this.#done) return;
    this.#done = true;
    this.#detachBody();
    // The whole response came before the request was all sent (RFC 9113 §8.1 lets a server answer early): the rest of
    // the request is not wanted, and the stream must not stay half open, holding its place in the session.
    const stream = this.#stream!;
    if (!stream.closed && !stream.writableFinished) stream.close(NGHTTP2_NO_ERROR);
    this.#handler.onComplete(this.#trailers);
  }

  readonly #onClose = (): void => {
    const lastProcessed = this.#session?.lastProcessed;
    this.#release();
    clearTimeout(this.#headTimer);
    // The whole response is in, held or parked for a handler not ready for it yet: `resume` completes it.
    if (this.#done || this.#endParked) return;
    const stream = this.#stream!;
    // Refused, or past the last stream a GOAWAY said was processed, whatever its error code (RFC 9113 §6.8, §8.7).
    const unprocessed = stream.rstCode === NGHTTP2_REFUSED_STREAM || (lastProcessed !== undefined && (stream.id === undefined || stream.id > lastProcessed));
    const err = !this.#responded && unprocessed
      ? refusedStream()
      : codedError(`upstream closed the stream${stream.rstCode ? ` (RST_STREAM code ${stream.rstCode})` : ''}${this.#error === undefined ? '' : `: ${this.#error.message}`}`, 'UND_ERR_SOCKET', this.#error);
    this.fail(err);
  };

  /** The handler's abort: the stream is cancelled (RST_STREAM CANCEL), and onError says why, as undici does. */
  readonly #abort = (err?: Error): void => {
    if (this.#done) return;
    clearTimeout(this.#headTimer);
    this.#detachBody();
    const stream = this.#stream;
    if (stream !== undefined && !stream.closed) stream.close(NGHTTP2_CANCEL);
    this.fail(err ?? codedError('request aborted', 'UND_ERR_ABORTED'));
  };

  #detachBody(): void {
    const body = this.#options.body;
    if (this.#stream !== undefined && body !== null && body !== undefined && !Buffer.isBuffer(body)) (body as Readable).unpipe(this.#stream);
  }

  /** Gives the stream's room in its session back, once. */
  #release(): void {
    const session = this.#session;
    if (session === undefined) return;
    this.#session = undefined;
    this.#pool.streamClosed(session);
  }
}

/** The response fields as undici hands them to onHeaders: name/value pairs, a repeated field once per value. */
function rawHeaders(headers: IncomingHttpHeaders): Buffer[] {
  const raw: Buffer[] = [];
  for (const name in headers) {
    // Pseudo-header fields (`:status`) are not fields of the response (RFC 9113 §8.3).
    if (name.charCodeAt(0) === 58) continue;
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) raw.push(Buffer.from(name, 'latin1'), Buffer.from(v, 'latin1'));
    else raw.push(Buffer.from(name, 'latin1'), Buffer.from(String(value), 'latin1'));
  }
  return raw;
}
