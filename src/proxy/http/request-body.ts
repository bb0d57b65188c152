/**
 * A request body on its way upstream, and the client-side limits on it: `client.body_timeout` between two reads,
 * `client.request_timeout` for the whole of it where node:http does not enforce that itself (an HTTP/2 stream),
 * `client.max_body_size` (counted on the way for a body of unknown length), and, when it must be replayable
 * (`retry.buffer_body`), read whole before the first attempt.
 */
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import type { Downstream } from './downstream.js';

/** What the exchange hears of a body while it arrives. */
export interface UploadEvents {
  /** The last byte arrived. */
  complete(): void;
  /** `body_timeout` passed between two reads. */
  slow(): void;
  /** `request_timeout` passed with the body still arriving (a downstream that enforces it here: HTTP/2). */
  late(): void;
  /** The body grew past `max_body_size`. */
  tooLarge(): void;
}

export interface BodyLimits {
  /** 0: no limit. */
  readonly maxBodySize: number;
  /** 0: no limit. */
  readonly bodyTimeoutMs: number;
  /** 0: no limit. */
  readonly requestTimeoutMs: number;
}

export class RequestBody {
  /** What each attempt sends: the client's stream (through a size limit when needed), or the whole body once read. */
  payload: Buffer | Readable;
  /** The client is still sending it. */
  uploading = true;
  /** The declared Content-Length, which the parser enforces; undefined for a chunked body. */
  readonly length: number | undefined;
  /** The client's stream itself, before any size limit. */
  readonly #source: Readable;

  /** The body of a request that has one; or why it is refused (a declared length over `max_body_size`). */
  static open(down: Downstream, limits: BodyLimits, events: UploadEvents): RequestBody | string {
    const cl = down.headers['content-length'];
    const length = cl === undefined ? undefined : Number(cl);
    if (limits.maxBodySize > 0 && length !== undefined && length > limits.maxBodySize) return `Content-Length ${length} over max_body_size ${limits.maxBodySize}`;
    down.continue();
    return new RequestBody(down, down.body!, length, limits, events);
  }

  private constructor(down: Downstream, body: Readable, length: number | undefined, limits: BodyLimits, events: UploadEvents) {
    this.length = length;
    body.once('end', () => {
      this.uploading = false;
      events.complete();
    });
    this.#source = body;
    if (limits.bodyTimeoutMs > 0) {
      down.watchBody(limits.bodyTimeoutMs, () => {
        if (this.waitingForClient) events.slow();
      });
    }
    if (limits.requestTimeoutMs > 0) {
      down.watchRequest?.(limits.requestTimeoutMs, () => {
        if (this.uploading) events.late();
      });
    }
    this.payload = limits.maxBodySize > 0 && length === undefined ? new SizeLimit(body, limits.maxBodySize, () => events.tooLarge()) : body;
  }

  /**
   * The client is what the body waits for: it is still arriving, and nothing holds it back on our side. While the
   * upstream is not reading (undici paused the stream, or no attempt has started reading yet), a silent client is
   * not slow: the origin, or the queue for it, is.
   */
  get waitingForClient(): boolean {
    return this.uploading && this.#source.readableFlowing === true;
  }

  /** Whether a retry can send it again: read whole, or a stream no attempt has read from yet. */
  get replayable(): boolean {
    const p = this.payload;
    return Buffer.isBuffer(p) || !p.readableDidRead;
  }

  /**
   * Reads the body whole, so a retry can send it again: `whole`, `short` of its Content-Length, or `stopped` when
   * `cancel`'s stop is called first (the client left, or was too slow).
   */
  readWhole(cancel: (stop: () => void) => void): Promise<'whole' | 'short' | 'stopped'> {
    const stream = this.payload as Readable;
    const chunks: Buffer[] = [];
    let size = 0;
    return new Promise((resolve) => {
      cancel(() => resolve('stopped'));
      stream.on('data', (chunk: Buffer) => {
        size += chunk.length;
        chunks.push(chunk);
      });
      stream.once('end', () => {
        this.payload = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
        resolve(size === this.length ? 'whole' : 'short');
      });
    });
  }
}

/**
 * Passes a body on until it grows past `maxBytes`, then fails the stream, so undici aborts the upstream request
 * before its last chunk: the origin never sees a complete oversized request. `exceeded` is told first.
 */
class SizeLimit extends Transform {
  readonly #maxBytes: number;
  readonly #exceeded: () => void;
  #bytes = 0;

  constructor(source: Readable, maxBytes: number, exceeded: () => void) {
    super();
    this.#maxBytes = maxBytes;
    this.#exceeded = exceeded;
    source.pipe(this);
    this.on('error', noop);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#bytes += chunk.length;
    if (this.#bytes <= this.#maxBytes) {
      callback(null, chunk);
      return;
    }
    this.#exceeded();
    callback(Object.assign(new Error('request body over max_body_size'), { code: 'BALLAST_BODY_TOO_LARGE' }));
  }
}

function noop(): void {}
