/**
 * Reading the first bytes of a client connection before the relay starts: the PROXY header a load balancer in front
 * sends (proxy-protocol.ts), the TLS ClientHello that SNI routing needs (client-hello.ts). HAProxy calls this
 * inspecting the request (`tcp-request inspect-delay`), NGINX prereading it (`ssl_preread`, `preread_timeout`).
 *
 * Each chunk goes to `examine` until it returns a verdict, the client closes, or the deadline passes. The socket is
 * then left paused with nothing more read, and `bytes` holds everything read, so the caller can put back (`unshift`)
 * what it did not consume: whoever pipes the socket next sees those bytes first, unchanged. What `examine` keeps
 * bounds the memory: it must give a verdict once it has seen as many bytes as it is willing to hold.
 */
import type { Socket } from 'node:net';

export type PrereadResult<T> =
  | { readonly end: 'verdict'; readonly verdict: T; /** Every byte read, in order. */ readonly bytes: Buffer }
  /** No verdict within the deadline. */
  | { readonly end: 'timeout'; readonly bytes: Buffer }
  /** The client ended, closed or failed first. */
  | { readonly end: 'closed'; readonly bytes: Buffer };

/** Never rejects; the caller decides what a timeout or a close means, and closes the connection. */
export function preread<T>(socket: Socket, examine: (chunk: Buffer) => T | undefined, timeoutMs: number): Promise<PrereadResult<T>> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const bytes = (): Buffer => (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length));
    const settle = (result: PrereadResult<T>): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onClose);
      socket.off('close', onClose);
      socket.off('error', onClose);
      socket.pause();
      resolve(result);
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      length += chunk.length;
      const verdict = examine(chunk);
      if (verdict !== undefined) settle({ end: 'verdict', verdict, bytes: bytes() });
    };
    const onClose = (): void => settle({ end: 'closed', bytes: bytes() });
    const timer = setTimeout(() => settle({ end: 'timeout', bytes: bytes() }), timeoutMs);
    socket.on('data', onData);
    socket.once('end', onClose);
    socket.once('close', onClose);
    // The session keeps its own error listener; this one only ends the wait.
    socket.once('error', onClose);
    // A 'data' listener does not undo an explicit pause(), which an earlier preread (the PROXY header) leaves.
    socket.resume();
  });
}
