/**
 * The request body on its way upstream: read whole when it must be replayable (`retry.buffer_body`), or streamed,
 * through a byte count when `max_body_size` must be enforced on a body of unknown length (chunked).
 */
import { Transform, type Readable, type TransformCallback } from 'node:stream';

/** Reads a body whole. Resolves with it, or with undefined when `cancel` is called first (the client left). */
export function readWhole(body: Readable, cancel: (stop: () => void) => void): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  return new Promise((resolve) => {
    cancel(() => resolve(undefined));
    body.on('data', (chunk: Buffer) => {
      size += chunk.length;
      chunks.push(chunk);
    });
    body.once('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)));
  });
}

/**
 * Passes a body on until it grows past `maxBytes`, then fails the stream, so undici aborts the upstream request
 * before its last chunk: the origin never sees a complete oversized request. `exceeded` is told first.
 */
export class SizeLimit extends Transform {
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
