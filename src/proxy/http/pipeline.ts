/**
 * One request at a time per HTTP/1.1 connection, as HAProxy and Envoy serve pipelined requests (RFC 9112 §9.3.2
 * lets a server process them in turn). node:http hands over every pipelined request as soon as it is parsed and
 * queues the responses in order; forwarding each at once let one connection open a thousand upstream requests
 * and starve every other client. Here the next request of a connection is not started until the one before it
 * has finished, so its origin sees at most one request from it in flight, in the order they were sent.
 *
 * Bound: once PAUSE_AT requests wait on a connection, it is not read any further until they drain. Node's parser
 * finishes the read it is in first, so what may wait is PAUSE_AT plus the rest of one read (64 KiB of requests);
 * each waiting request costs its IncomingMessage and ServerResponse, and never an upstream connection.
 */
import type { Socket } from 'node:net';

/** Requests waiting on one connection beyond which it is no longer read. */
export const PAUSE_AT = 16;

export interface Startable {
  start(): void;
}

const kWaiting = Symbol('ballast.pipeline');

/** `undefined`: no request of this connection is in flight; `null`: one is, none waits; else the ones waiting. */
interface PipelinedSocket extends Socket {
  [kWaiting]?: Startable[] | null | undefined;
}

/** Start `request` now if its connection has none in flight, else when the ones before it have finished. */
export function admit(socket: Socket, request: Startable): void {
  const s = socket as PipelinedSocket;
  const waiting = s[kWaiting];
  if (waiting === undefined) {
    s[kWaiting] = null;
    request.start();
    return;
  }
  if (waiting === null) s[kWaiting] = [request];
  else waiting.push(request);
  if (s[kWaiting]!.length >= PAUSE_AT) s.pause();
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
