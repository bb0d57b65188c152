/**
 * One request at a time per HTTP/1.1 connection, as HAProxy and Envoy serve pipelined requests (RFC 9112 §9.3.2
 * lets a server process them in turn). node:http hands over every pipelined request as soon as it is parsed and
 * queues the responses in order; forwarding each at once let one connection open a thousand upstream requests
 * and starve every other client. Here the next request of a connection is not started until the one before it
 * has finished, so its origin sees at most one request from it in flight, in the order they were sent.
 *
 * Bound: once PAUSE_AT requests wait on a connection, it is asked to stop reading until they drain; but node:http's
 * parser reads straight from the socket's handle, and a pause of the socket does not stop it. So a connection with
 * MAX_WAITING requests waiting is closed: the ones waiting are dropped unanswered (they never reached an origin),
 * counted, and logged once. A browser never pipelines; a client that does so 64 deep is a flood. Each waiting request
 * costs its IncomingMessage and ServerResponse (about 2 KiB), and never an upstream connection.
 */
import type { Socket } from 'node:net';

/** Requests waiting on one connection beyond which it is asked to stop reading. */
export const PAUSE_AT = 16;

/** Requests waiting on one connection beyond which it is closed. */
export const MAX_WAITING = 64;

export interface Startable {
  start(): void;
}

const kWaiting = Symbol('ballast.pipeline');

/** `undefined`: no request of this connection is in flight; `null`: one is, none waits; else the ones waiting. */
interface PipelinedSocket extends Socket {
  [kWaiting]?: Startable[] | null | undefined;
}

/**
 * Start `request` now if its connection has none in flight, else when the ones before it have finished. Past
 * MAX_WAITING the connection is closed (`overflow(dropped, true)`); each request parsed from it after that is dropped
 * too (`overflow(1, false)`).
 */
export function admit(socket: Socket, request: Startable, overflow: (dropped: number, closed: boolean) => void): void {
  const s = socket as PipelinedSocket;
  const waiting = s[kWaiting];
  // The rest of a read that overflowed, parsed after the connection was closed for it.
  if (waiting != null && s.destroyed) {
    overflow(1, false);
    return;
  }
  if (waiting === undefined) {
    s[kWaiting] = null;
    request.start();
    return;
  }
  if (waiting === null) s[kWaiting] = [request];
  else if (waiting.length >= MAX_WAITING) {
    // The one in flight ends as its client gone; the waiting ones, and the rest node:http parses from this read,
    // are dropped here.
    overflow(waiting.length + 1, true);
    s.destroy();
    waiting.length = 0;
    return;
  } else waiting.push(request);
  if (s[kWaiting]!.length === PAUSE_AT) s.pause();
}

/** The connection's request in flight has finished: start the next one waiting, if any. */
export function finished(socket: Socket): void {
  const s = socket as PipelinedSocket;
  const waiting = s[kWaiting];
  if (waiting === null || waiting === undefined || waiting.length === 0) {
    s[kWaiting] = undefined;
    return;
  }
  const next = waiting.shift()!;
  // Not over node:http's own pause (it stops reading while responses queue up unsent), which it lifts itself.
  if (waiting.length === PAUSE_AT - 1 && !s.destroyed && (s as { _paused?: boolean })._paused !== true) s.resume();
  next.start();
}

/** Whether a request of this connection is in flight (or waits). */
export function busy(socket: Socket): boolean {
  return (socket as PipelinedSocket)[kWaiting] !== undefined;
}
