/**
 * The access log: one JSON line per request (HTTP), tunnel (WebSocket) or connection (TCP), in the shape of the
 * logger's own lines — pino's `level`, `time`, its base and child bindings, `"kind":"access"`, then the record.
 *
 * Issue #7 asks for the access log to cost under 15% of throughput. Through pino's `info()` a line cost ~4 µs of
 * CPU, and each write into its asynchronous sonic-boom destination ~25 µs more (a string copy and a hop to libuv's
 * thread pool and back), paid about once per event-loop turn under load. Here a record is serialised once (by
 * `JSON.stringify`, or by hand for the HTTP exchange's line: proxy/http/access-record.ts), lines are joined into
 * batches of up to 64 KiB, and a batch is handed to the logger's destination when full or 50 ms after its first line
 * (NGINX's `access_log ... buffer= flush=`). Measured alone, a line then costs ~0.5 µs here and ~2 µs in sonic-boom,
 * which encodes each batch it has written into a Buffer again (docs/benchmarks.md, the per-core ceiling).
 *
 * A batch is never larger than the destination's `maxWrite`: the cluster logger caps it at PIPE_BUF (4 KiB), so
 * when workers share one stdout pipe each batch stays one atomic write(2), never interleaved with another
 * process's lines. A single line longer than that is written on its own, as pino would.
 */
import pino from 'pino';
import type { Logger } from './log.js';

/** Largest batch; a destination with a smaller `maxWrite` (sonic-boom's cap on one write) gets batches of that. */
const MAX_BATCH_BYTES = 64 * 1024;
/** How long a line may wait for its batch to fill: NGINX's `access_log ... flush=` in miniature. */
const FLUSH_AFTER_MS = 50;

interface LineSink {
  write(chunk: string): unknown;
  readonly maxWrite?: number;
  /** sonic-boom: write everything buffered now, synchronously. */
  flushSync?: () => void;
}

export class AccessLog {
  readonly #sink: LineSink;
  /** `{"level":30,"time":` — the time is the only part that changes between lines. */
  readonly #head: string;
  /** The logger's bindings and `"kind":"access"`, pre-serialised: `,"service":"ballast",...,"kind":"access"`. */
  readonly #bindings: string;
  readonly #maxBatchBytes: number;
  #pending = '';
  #pendingBytes = 0;
  #timer: NodeJS.Timeout | undefined;

  /** An access log writing through `logger`'s destination (undefined if it has none). Lines are `info` lines. */
  static of(logger: Logger): AccessLog | undefined {
    // pino keeps its destination and the serialised bindings of a (child) logger under these exported symbols.
    const sink = (logger as unknown as Record<symbol, LineSink>)[pino.symbols.streamSym];
    const bindings = (logger as unknown as Record<symbol, string>)[pino.symbols.chindingsSym] ?? '';
    if (sink === undefined) return undefined;
    return new AccessLog(sink, logger.levels.values.info ?? 30, bindings);
  }

  constructor(sink: LineSink, level: number, bindings: string) {
    this.#sink = sink;
    this.#head = `{"level":${level},"time":`;
    this.#bindings = `${bindings},"kind":"access"`;
    this.#maxBatchBytes = Math.min(sink.maxWrite ?? MAX_BATCH_BYTES, MAX_BATCH_BYTES);
  }

  /** Queue one line. `record` is a flat object; fields set to undefined are left out (JSON.stringify's rule). */
  write(record: object): void {
    const json = JSON.stringify(record);
    this.writeFields(json.length > 2 ? json.slice(1, -1) : '');
  }

  /** Queue one line from its fields serialised already: JSON members (`"name":value,…`) without the braces. */
  writeFields(fields: string): void {
    const line = `${this.#head}${Date.now()}${this.#bindings}${fields === '' ? '' : ','}${fields}}\n`;
    const bytes = Buffer.byteLength(line);
    if (this.#pendingBytes + bytes > this.#maxBatchBytes) this.flush();
    this.#pending += line;
    this.#pendingBytes += bytes;
    this.#timer ??= setTimeout(this.#flushTimer, FLUSH_AFTER_MS);
  }

  /** Hand every queued line to the destination now (at shutdown, before the logger's own flush). */
  flush(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#pending === '') return;
    const batch = this.#pending;
    this.#pending = '';
    this.#pendingBytes = 0;
    this.#sink.write(batch);
  }

  /**
   * For `process.on('exit')`, when the process ends without a stop() (a second SIGTERM, a crash): hand over what is
   * queued and have the destination write it before the process is gone. pino's own exit hook, registered before
   * this one, has already run, so the lines of this last batch would otherwise stay in sonic-boom's buffer.
   */
  flushSync(): void {
    this.flush();
    try {
      this.#sink.flushSync?.();
    } catch {
      // Nothing more can be done while the process exits (e.g. a write still in flight on a pipe).
    }
  }

  readonly #flushTimer = (): void => {
    this.#timer = undefined;
    this.flush();
  };
}
