/**
 * The two-way pipe between a client socket and an upstream socket (design.md "Layer 4").
 *
 * Two `stream.pipeline`s, one per direction, give backpressure for free: a reader is paused while its writer's
 * buffer is above the high-water mark, so memory per connection is bounded by two socket buffers whatever the
 * stream's length.
 *
 * Half-close: both sockets are `allowHalfOpen`, and a pipeline ends its destination when its source ends, so one
 * side's FIN is passed on as a FIN (`socket.end()`) while the other direction keeps flowing; a client that sends
 * its request and shuts down its write side still gets the whole response. A pipeline that completes does not
 * destroy its streams (only an error does), and a socket closes itself once both of its directions have ended
 * (net.Socket `autoDestroy`).
 *
 * Errors: either socket failing (a reset, a write after the peer left) makes its pipeline destroy both sockets,
 * and the other pipeline then stops with a premature close; no socket outlives its peer. `done` is called once,
 * after both sockets have closed, with how the relay ended.
 */
import type { Socket } from 'node:net';
import { pipeline } from 'node:stream';

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

export function relay(client: Socket, upstream: Socket, done: (result: RelayResult) => void): void {
  let end: RelayEnd | undefined;
  let code: string | undefined;
  const onError = (side: 'client-error' | 'upstream-error') => (err: Error & { code?: string }): void => {
    // pipeline destroys the other stream with these when one side goes away: an echo, not a socket failure.
    if (end !== undefined || err.code === 'ERR_STREAM_PREMATURE_CLOSE' || err.code === 'ERR_STREAM_DESTROYED') return;
    end = side;
    code = err.code ?? err.name;
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
  pipeline(client, upstream, settled);
  pipeline(upstream, client, settled);
}

function endedBothWays(socket: Socket): boolean {
  return socket.readableEnded && socket.writableFinished;
}
