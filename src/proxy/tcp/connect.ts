/**
 * One TCP connect with a deadline: the building block of the layer-4 data path's failover and of a TCP health probe.
 *
 * node:net has no connect timeout of its own (`socket.setTimeout` measures inactivity, and the kernel's SYN
 * retries take minutes), so a timer destroys the socket; the error carries `code: 'ETIMEDOUT'`, as the kernel's
 * own timeout would.
 */
import { connect, type Socket } from 'node:net';

export class ConnectError extends Error {
  readonly code: string;

  constructor(message: string, code: string, options?: { cause: unknown }) {
    super(message, options);
    this.name = 'ConnectError';
    this.code = code;
  }
}

const noop = (): void => {};

/**
 * Cancels a pending connect (the client left, or shutdown). Not an AbortController: that costs an EventTarget per
 * connection and a DOMException per abort, which showed up at a few percent of CPU under connection churn
 * (bench/tcp.mjs), for a signal with exactly one listener at a time.
 */
export class ConnectCancel {
  #cancelled = false;
  #hook: (() => void) | undefined;

  get cancelled(): boolean {
    return this.#cancelled;
  }

  cancel(): void {
    if (this.#cancelled) return;
    this.#cancelled = true;
    const hook = this.#hook;
    this.#hook = undefined;
    hook?.();
  }

  /** The pending connect's abort; one at a time. */
  set hook(fn: (() => void) | undefined) {
    this.#hook = fn;
  }
}

export interface ConnectOptions {
  readonly timeoutMs: number;
  readonly cancel?: ConnectCancel;
  /** net.Socket's `onread`; the socket then resolves paused, and reads nothing until resumed. */
  readonly onread?: { buffer: () => Buffer; callback: (bytes: number, buffer: Buffer) => boolean } | undefined;
}

/**
 * Resolves with the connected socket: half-open allowed (each direction is ended on its own, see relay.ts), Nagle
 * off (a proxy must not add its own delay to small writes). The socket keeps a no-op `error` listener for its whole
 * life, so an error between this promise settling and the caller's listeners being attached cannot crash the
 * process; callers add their own listeners to act on errors.
 * Rejects with a ConnectError (`ETIMEDOUT`, `ABORT_ERR`, or the system's code, e.g. `ECONNREFUSED`).
 */
export function connectTcp(host: string, port: number, options: ConnectOptions): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    const cancel = options.cancel;
    if (cancel?.cancelled) {
      reject(new ConnectError('connect aborted', 'ABORT_ERR'));
      return;
    }
    const socket = connect({ host, port, allowHalfOpen: true, noDelay: true, ...(options.onread !== undefined && { onread: options.onread }) });
    // Reads into a caller's buffer wait until the caller is ready for them (relay.ts UpstreamReads).
    if (options.onread !== undefined) socket.pause();
    socket.on('error', noop);
    const settle = (err: ConnectError | undefined): void => {
      clearTimeout(timer);
      if (cancel !== undefined) cancel.hook = undefined;
      socket.off('connect', onConnect);
      socket.off('error', onError);
      if (err === undefined) {
        resolve(socket);
        return;
      }
      socket.destroy();
      reject(err);
    };
    const onConnect = (): void => settle(undefined);
    const onError = (err: Error & { code?: string }): void => {
      settle(new ConnectError(`connect to ${host}:${port} failed: ${err.message}`, err.code ?? 'ECONNRESET', { cause: err }));
    };
    const onAbort = (): void => settle(new ConnectError('connect aborted', 'ABORT_ERR'));
    const timer = setTimeout(() => {
      settle(new ConnectError(`connect to ${host}:${port} timed out after ${options.timeoutMs} ms`, 'ETIMEDOUT'));
    }, options.timeoutMs);
    socket.once('connect', onConnect);
    socket.once('error', onError);
    if (cancel !== undefined) cancel.hook = onAbort;
  });
}
