/**
 * The two-way pipe between a client socket and an upstream socket (design.md "Layer 4").
 *
 * Client to upstream is a `stream.pipeline`, which gives backpressure for free: the reader is paused while its
 * writer's buffer is above the high-water mark. Upstream to client — the direction that carries most bytes in most
 * protocols — may instead go through `UpstreamReads` (below), which pauses the same way; either way memory per
 * connection is bounded by two socket buffers whatever the stream's length.
 *
 * Half-close: both sockets are `allowHalfOpen`, and a pipeline ends its destination when its source ends, so one
 * side's FIN is passed on as a FIN (`socket.end()`) while the other direction keeps flowing; a client that sends
 * its request and shuts down its write side still gets the whole response. A pipeline that completes does not
 * destroy its streams (only an error does), and a socket closes itself once both of its directions have ended
 * (net.Socket `autoDestroy`).
 *
 * Errors: either socket failing or closing early (a reset, a write after the peer left) makes each direction that
 * is still under way destroy both sockets (a pipeline watches both of its streams, and so does UpstreamReads); no
 * socket outlives its peer. A socket that fails resets its peer rather than closing it with a FIN, so a stream cut
 * short on one side cannot pass for a complete one on the other. `done` is called once, after both sockets have
 * closed, with how the relay ended.
 */
import type { Socket } from 'node:net';
import { finished, pipeline } from 'node:stream';

export type RelayEnd =
  /** Both directions ended with a FIN. */
  | 'done'
  /** The client socket failed first (e.g. ECONNRESET). */
  | 'client-error'
  /** The upstream socket failed first. */
  | 'upstream-error'
  /** Someone destroyed a socket without an error (idle timeout, shutdown): the caller knows why. */
  | 'destroyed';

export interface RelayResult {
  readonly end: RelayEnd;
  /** The first socket error's code, when there was one. */
  readonly code: string | undefined;
}

/** The first read buffer of a connection: what a short exchange needs (HAProxy's default tune.bufsize). */
const MIN_READ_BUFFER = 16 * 1024;
/** The largest: each read of a bulk stream costs a system call, a write and a pause/resume, whatever its size. */
const MAX_READ_BUFFER = 256 * 1024;

/**
 * The upstream socket's reads, into one reused buffer (net.Socket's `onread`), each written straight to the client.
 *
 * By default every read allocates a fresh 64 KiB buffer; at a gigabyte a second that is 16,000 ArrayBuffers a
 * second, and the garbage collections they set off grow with the size of the live heap: a whole Ballast process
 * relayed ~20% less than a bare node:net pipeline (bench/tcp.mjs), with a fifth of its CPU in the collector.
 * The buffer is reused only when the kernel took the previous write whole (the client socket's `writableLength` is
 * 0 right after it): otherwise that write still holds the buffer, and the next read gets a new one.
 *
 * Its size adapts: 16 KiB to begin with (an open connection always holds one), four times larger whenever a read
 * fills it, up to 256 KiB, and back to 16 KiB after a small read. A bulk stream then moves in 256 KiB reads, which
 * is what brought the relay level with HAProxy's splice(2) on loopback (bench/tcp.mjs: 0.57× before, 0.96–1.04×
 * after). While the client is not keeping up, reads are copied into the write queue at their own size instead.
 *
 * Only for a socket Ballast connects: node:net offers `onread` to `net.connect` but not to the sockets a server
 * accepts. Pass `onread` to the connect, then `relay(..., reads)`; the socket must stay paused until then (see
 * connectTcp), as the callback has nowhere to write before the relay starts.
 */
export class UpstreamReads {
  readonly onread: { buffer: () => Buffer; callback: (bytes: number, buffer: Buffer) => boolean };
  #buffer = Buffer.allocUnsafe(MIN_READ_BUFFER);
  /** The last write of `#buffer` is still queued: the next read needs a new buffer. */
  #held = false;
  /** The last read filled the buffer: the peer had more to send than it holds. */
  #full = false;
  /** The last read was a small one (a quarter of the smallest buffer or less). */
  #small = false;
  #source: Socket | undefined;
  #target: Socket | undefined;

  constructor() {
    this.onread = { buffer: this.#nextBuffer, callback: this.#onRead };
  }

  /**
   * Starts relaying: reads of `source` go to `target`, and its end becomes `target`'s end (half-close). Like the
   * pipeline it stands in for, it watches both sockets for the whole direction: `source` failing or closing before
   * its end, or `target` failing or closing before it finished, calls `onBroken` — which destroys both. The
   * pipeline of the other direction cannot do that once it has completed (the client half-closed first).
   */
  attach(source: Socket, target: Socket, onBroken: (err: Error) => void): void {
    this.#source = source;
    this.#target = target;
    source.once('end', () => target.end());
    finished(source, { writable: false }, (err) => err && onBroken(err));
    finished(target, { readable: false }, (err) => err && onBroken(err));
    source.resume();
  }

  readonly #nextBuffer = (): Buffer => {
    const size = this.#buffer.length;
    if (this.#full && size < MAX_READ_BUFFER) {
      this.#buffer = Buffer.allocUnsafe(Math.min(size * 4, MAX_READ_BUFFER));
      this.#held = false;
    } else if (this.#small && size > MIN_READ_BUFFER) {
      // The burst is over: a connection that goes quiet should not keep 256 KiB.
      this.#buffer = Buffer.allocUnsafe(MIN_READ_BUFFER);
      this.#held = false;
    } else if (this.#held) {
      this.#buffer = Buffer.allocUnsafe(size);
      this.#held = false;
    }
    return this.#buffer;
  };

  readonly #onRead = (bytes: number, buffer: Buffer): boolean => {
    const target = this.#target!;
    this.#full = bytes === buffer.length;
    this.#small = bytes <= MIN_READ_BUFFER / 4;
    let more: boolean;
    if (target.writableLength > 0) {
      // Writes are queued already, so this one will queue too: a copy of just these bytes waits in the queue, not
      // the whole buffer. Without it, a client that stops reading while the server sends small messages would pin
      // a full buffer per message (up to 256 KiB each) until the high-water mark is reached.
      more = target.write(Buffer.from(buffer.subarray(0, bytes)));
    } else {
      more = target.write(buffer.subarray(0, bytes));
      if (target.writableLength > 0) this.#held = true;
    }
    if (!more) {
      this.#source!.pause();
      target.once('drain', this.#resume);
    }
    return true;
  };

  readonly #resume = (): void => {
    this.#source?.resume();
  };
}

/**
 * Relays until both sockets have closed. With `reads`, `upstream` was connected with `reads.onread` and is paused;
 * without, both directions are pipelines.
 */
export function relay(client: Socket, upstream: Socket, done: (result: RelayResult) => void, reads?: UpstreamReads): void {
  let end: RelayEnd | undefined;
  let code: string | undefined;
  const onError = (side: 'client-error' | 'upstream-error') => (err: Error & { code?: string }): void => {
    // pipeline destroys the other stream with these when one side goes away: an echo, not a socket failure.
    if (end !== undefined || err.code === 'ERR_STREAM_PREMATURE_CLOSE' || err.code === 'ERR_STREAM_DESTROYED') return;
    end = side;
    code = err.code ?? err.name;
    // Before the pipelines destroy the peer with a FIN: the peer must see the failure as one (a reset).
    const peer = side === 'client-error' ? upstream : client;
    if (!peer.destroyed) peer.resetAndDestroy();
  };
  client.on('error', onError('client-error'));
  upstream.on('error', onError('upstream-error'));

  let open = 0;
  const onClose = (): void => {
    if (--open > 0) return;
    // Judged from the sockets, not from the pipelines' callbacks, which may run after the last 'close'.
    const clean = endedBothWays(client) && endedBothWays(upstream);
    done({ end: end ?? (clean ? 'done' : 'destroyed'), code });
  };
  // A socket that failed between its connect and this call has closed already: its 'close' will not come again.
  for (const socket of [client, upstream]) {
    if (socket.closed) continue;
    open++;
    socket.once('close', onClose);
  }
  if (open === 0) {
    open = 1;
    process.nextTick(onClose);
  }

  const settled = (err: Error | null | undefined): void => {
    if (!err) return;
    // pipeline has destroyed both of its streams already; this makes certain, and is a no-op otherwise.
    client.destroy();
    upstream.destroy();
  };
  // A side gone before the relay began: nothing to relay. pipeline would throw at once on Node 26 ("Cannot pipe to a
  // closed or destroyed stream") where Node 20 reports it to the callback; the survivor goes, and onClose reports.
  if (client.destroyed || upstream.destroyed) {
    client.destroy();
    upstream.destroy();
    return;
  }
  pipeline(client, upstream, settled);
  if (reads !== undefined) reads.attach(upstream, client, settled);
  else pipeline(upstream, client, settled);
}

function endedBothWays(socket: Socket): boolean {
  return socket.readableEnded && socket.writableFinished;
}
