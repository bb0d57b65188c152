/**
 * Real TCP origins and a real TcpListener on 127.0.0.1 for the layer-4 tests: no Ballast, no mocks.
 */
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import pino from 'pino';
import { AccessLog } from '../../src/access-log.js';
import { Metrics } from '../../src/admin/metrics.js';
import { formatConfigErrors, parseConfig } from '../../src/config/load.js';
import type { TcpListenerConfig } from '../../src/config/schema.js';
import { TcpListener } from '../../src/proxy/tcp/tcp-listener.js';
import type { Host } from '../../src/upstream/host.js';
import type { Outcome } from '../../src/upstream/outcome.js';
import { Upstream } from '../../src/upstream/upstream.js';
import { sleep, waitFor } from '../helpers/wait.js';

export type OriginBehaviour =
  /** Echo every byte back; a FIN is answered with a FIN once the echo is written. */
  | 'echo'
  /** Write `<name>\n` on connect, then echo. */
  | 'greet'
  /** Count what arrives; on the client's FIN, answer `<bytes>\n` and end. */
  | 'sink';

export interface TcpOrigin {
  readonly name: string;
  readonly port: number;
  readonly address: string;
  readonly server: Server;
  /** Connections accepted so far. */
  accepted: number;
  readonly sockets: Set<Socket>;
  /** With `proxyHeader: true`: the raw PROXY header bytes each connection started with, in order. */
  readonly proxyHeaders: Buffer[];
  /** Stop accepting and destroy every open socket, as a crashed process would. */
  kill(): Promise<void>;
  close(): Promise<void>;
}

/**
 * A TCP origin. With `proxyHeader: true` it takes a PROXY header off each connection first, framed by its own
 * minimal reader (independent of src/), records the raw bytes, then behaves as asked on the rest.
 */
export async function startTcpOrigin(name: string, behaviour: OriginBehaviour = 'echo', options: { proxyHeader?: boolean } = {}): Promise<TcpOrigin> {
  const sockets = new Set<Socket>();
  const proxyHeaders: Buffer[] = [];
  const origin = { name, accepted: 0, sockets, proxyHeaders } as TcpOrigin & { port: number; address: string; server: Server; accepted: number };
  const serve = (socket: Socket, rest: Buffer): void => {
    if (behaviour === 'sink') {
      let bytes = rest.length;
      socket.on('data', (c: Buffer) => {
        bytes += c.length;
      });
      socket.on('end', () => socket.end(`${bytes}\n`));
      socket.resume();
      return;
    }
    if (behaviour === 'greet') socket.write(`${name}\n`);
    if (rest.length > 0) socket.write(rest);
    socket.pipe(socket);
  };
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    origin.accepted++;
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    if (!options.proxyHeader) {
      serve(socket, Buffer.alloc(0));
      return;
    }
    let buf = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      const length = proxyHeaderLength(buf);
      if (length === undefined) return;
      socket.off('data', onData);
      socket.pause();
      proxyHeaders.push(buf.subarray(0, length));
      serve(socket, buf.subarray(length));
    };
    socket.on('data', onData);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin.server = server;
  origin.port = (server.address() as AddressInfo).port;
  origin.address = `127.0.0.1:${origin.port}`;
  origin.kill = async () => {
    const closed = new Promise<void>((r) => server.close(() => r()));
    for (const s of sockets) s.destroy();
    await closed;
  };
  origin.close = async () => {
    if (server.listening) await origin.kill();
    else for (const s of sockets) s.destroy();
  };
  return origin;
}

/** v1: up to and including CRLF; v2: 16 bytes plus the length in bytes 15-16. Undefined until complete. */
function proxyHeaderLength(buf: Buffer): number | undefined {
  if (buf[0] === 0x50) {
    const crlf = buf.indexOf('\r\n');
    return crlf < 0 ? undefined : crlf + 2;
  }
  if (buf.length < 16) return undefined;
  const length = 16 + buf.readUInt16BE(14);
  return buf.length >= length ? length : undefined;
}

export interface TestTcpProxy {
  readonly listener: TcpListener;
  readonly upstream: Upstream;
  readonly metrics: Metrics;
  readonly port: number;
  readonly logs: Record<string, unknown>[];
  /** Batches access lines; `flush()` writes what it holds, as a stopping Ballast does last. */
  readonly accessLog: AccessLog;
  /** Every outcome reported to the upstream's sink. */
  readonly outcomes: { server: string; outcome: Outcome }[];
  accessLogs(): Record<string, unknown>[];
  /** Resolves once `n` access-log lines exist. */
  waitForAccessLogs(n: number, timeoutMs?: number): Promise<Record<string, unknown>[]>;
  stop(drainMs?: number): Promise<void>;
}

/** A TcpListener over the given origins; `listener` and `upstream` are extra YAML keys for each, one per line. */
export async function startTcpProxy(servers: readonly (string | { address: string; backup: boolean })[], opts: { listener?: string; upstream?: string } = {}): Promise<TestTcpProxy> {
  const indent = (text: string | undefined, by: string): string =>
    (text ?? '').split('\n').filter((l) => l.trim() !== '').map((l) => by + l.trim()).join('\n');
  const yaml = `
listeners:
  - name: db
    protocol: tcp
    listen: 127.0.0.1:0
    upstream: pool
${indent(opts.listener, '    ')}
upstreams:
  - name: pool
${indent(opts.upstream, '    ')}
    servers:
${servers.map((s) => (typeof s === 'string' ? `      - { address: "${s}" }` : `      - { address: "${s.address}", backup: ${s.backup} }`)).join('\n')}
`;
  const parsed = parseConfig(yaml, {});
  if (!parsed.ok) throw new Error(formatConfigErrors('test', parsed.errors));
  const config = parsed.config;
  const metrics = new Metrics({ processMetrics: false });
  const upstream = new Upstream(config.upstreams[0]!, { clock: () => performance.now(), random: Math.random, metrics });
  const outcomes: { server: string; outcome: Outcome }[] = [];
  upstream.onOutcome((host: Host, outcome: Outcome) => outcomes.push({ server: host.address, outcome }));
  metrics.track([upstream]);
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const log = pino({ level: 'info' }, sink);
  const accessLog = AccessLog.of(log)!;
  const listener = new TcpListener(config.listeners[0] as TcpListenerConfig, { upstreams: new Map([[upstream.name, upstream]]), metrics, log, accessLog });
  await listener.listen();
  const accessLogs = (): Record<string, unknown>[] => logs.filter((l) => l.kind === 'access');
  let stopped: Promise<void> | undefined;
  return {
    listener,
    upstream,
    metrics,
    port: listener.port,
    logs,
    accessLog,
    outcomes,
    accessLogs,
    async waitForAccessLogs(n, timeoutMs = 5000) {
      await waitFor(() => accessLogs().length >= n, { timeoutMs, intervalMs: 5, what: () => `${n} access-log lines (got ${accessLogs().length})` });
      return accessLogs();
    },
    stop(drainMs = 0) {
      stopped ??= (async () => {
        await listener.close(drainMs);
        await upstream.destroy();
      })();
      return stopped;
    },
  };
}

/** A connected client socket (half-open allowed, so a test can end its side and keep reading). */
export async function connectClient(port: number, localAddress?: string): Promise<Socket> {
  const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true, ...(localAddress !== undefined && { localAddress }) });
  socket.on('error', () => {});
  await once(socket, 'connect');
  return socket;
}

/** Everything the peer sends until it ends or the socket closes. */
export function readAll(socket: Socket): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      resolve(Buffer.concat(chunks));
    };
    socket.once('end', finish);
    socket.once('close', finish);
    socket.resume();
  });
}

/** Reads until at least `n` bytes arrived (or the socket ended), returning what came. */
export function readBytes(socket: Socket, n: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const finish = (): void => {
      socket.off('data', onData);
      socket.off('end', finish);
      socket.off('close', finish);
      socket.pause();
      resolve(Buffer.concat(chunks));
    };
    const onData = (c: Buffer): void => {
      chunks.push(c);
      total += c.length;
      if (total >= n) finish();
    };
    socket.on('data', onData);
    socket.once('end', finish);
    socket.once('close', finish);
    // A previous read may have paused the socket explicitly, and a new 'data' listener does not undo that.
    socket.resume();
  });
}

/** Connect, send `payload`, end, and return everything received until the proxy closes. */
export async function exchange(port: number, payload: string | Buffer, localAddress?: string): Promise<Buffer> {
  const socket = await connectClient(port, localAddress);
  const all = readAll(socket);
  socket.end(payload);
  const out = await all;
  socket.destroy();
  return out;
}

/**
 * Resolves when the peer has closed the connection (end of stream or close); rejects after `ms`. Reads and
 * discards whatever else arrives meanwhile.
 */
/** How a connection ends: a reset (ECONNRESET) or a clean FIN; rejects if it is still open after `ms`. */
export function howItEnds(socket: Socket, ms: number): Promise<'reset' | 'fin'> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`connection still open after ${ms} ms`)), ms);
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(err.code === 'ECONNRESET' ? 'reset' : 'fin');
    });
    socket.once('end', () => {
      clearTimeout(timer);
      resolve('fin');
    });
    socket.on('data', () => {});
    socket.resume();
  });
}

export function endedWithin(socket: Socket, ms: number): Promise<void> {
  if (socket.closed || socket.readableEnded) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`connection still open after ${ms} ms`)), ms);
    const done = (): void => {
      clearTimeout(timer);
      resolve();
    };
    socket.once('end', done);
    socket.once('close', done);
    socket.on('data', () => {});
    socket.resume();
  });
}

export interface Blackhole {
  /** `127.0.0.1:port`: a connect to it gets no answer, so only a connect timeout ends it. */
  readonly address: string;
  close(): Promise<void>;
}

/**
 * A listener whose accept queue is full, so the kernel drops further SYNs (Linux: a full queue drops, it does not
 * refuse): a local stand-in for an unreachable server. The listener lives in a worker thread that blocks right
 * after binding with a backlog of 1, so it never accepts; two connections fill the queue.
 */
export async function startBlackhole(): Promise<Blackhole> {
  const flag = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads');
     const server = require('node:net').createServer();
     server.listen(0, '127.0.0.1', 1, () => {
       parentPort.postMessage(server.address().port);
       Atomics.wait(workerData, 0, 0);
       process.exit(0);
     });`,
    { eval: true, workerData: flag },
  );
  const [port] = (await once(worker, 'message')) as [number];
  const fillers: Socket[] = [];
  for (let i = 0; i < 3; i++) {
    const s = connect({ port, host: '127.0.0.1' });
    s.on('error', () => {});
    fillers.push(s);
  }
  await sleep(100);
  return {
    address: `127.0.0.1:${port}`,
    async close() {
      for (const s of fillers) s.destroy();
      Atomics.store(flag, 0, 1);
      Atomics.notify(flag, 0);
      await once(worker, 'exit');
    },
  };
}
