/**
 * Real origin servers on 127.0.0.1 (or another loopback address) for end-to-end tests, whose behaviour can be switched on cue:
 * answer normally, fail with a status, hang, reset the connection, or die.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { freePort } from './ports.js';

export type OriginMode = 'ok' | 'hang' | 'reset' | 'reset-after-body' | { status: number; headers?: Record<string, string> };

export interface ReceivedRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  rawHeaders: string[];
  bodyBytes: number;
}

export interface Origin {
  readonly name: string;
  readonly port: number;
  readonly address: string;
  readonly server: Server;
  readonly received: ReceivedRequest[];
  mode: OriginMode;
  /** Replace the default handler entirely (after the request is recorded). */
  handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  healthy: boolean;
  /** Stop accepting and destroy every open socket, as a crashed process would. */
  kill(): Promise<void>;
  /** Listen again on the same port. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

/** `host`: the loopback address to bind (127.0.0.2 and up let several origins share one port, as DNS A records need). */
export async function startOrigin(name: string, port = 0, host = '127.0.0.1'): Promise<Origin> {
  const sockets = new Set<Socket>();
  const received: ReceivedRequest[] = [];
  const origin = {
    name,
    port: 0,
    address: '',
    received,
    mode: 'ok' as OriginMode,
    handler: undefined as Origin['handler'],
    healthy: true,
  } as Origin & { port: number; address: string; server: Server };

  const server = createServer((req, res) => {
    if (req.url === '/healthz') {
      req.resume();
      res.writeHead(origin.healthy ? 200 : 503, { 'content-type': 'text/plain' }).end(origin.healthy ? 'ok' : 'unhealthy');
      return;
    }
    const record: ReceivedRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, bodyBytes: 0 };
    received.push(record);
    const mode = origin.mode;
    if (mode === 'hang') return;
    if (mode === 'reset') {
      req.socket.destroy();
      return;
    }
    req.on('data', (c: Buffer) => {
      record.bodyBytes += c.length;
    });
    req.on('end', () => {
      if (mode === 'reset-after-body') {
        req.socket.destroy();
        return;
      }
      if (origin.handler) {
        origin.handler(req, res);
        return;
      }
      const status = typeof mode === 'object' ? mode.status : 200;
      const body = JSON.stringify({ origin: name, method: req.method, url: req.url, bodyBytes: record.bodyBytes });
      res.writeHead(status, { 'content-type': 'application/json', 'x-origin': name, ...(typeof mode === 'object' ? mode.headers : {}) });
      res.end(body);
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('clientError', (_e, s) => s.destroy());

  const listen = (p: number) =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(p, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  // Not port 0: a killed origin's port must still be free when the test restarts it (see ports.ts).
  await listen(port === 0 ? await freePort() : port);
  origin.port = (server.address() as AddressInfo).port;
  origin.address = `${host}:${origin.port}`;
  origin.server = server;
  origin.kill = async () => {
    const closed = new Promise<void>((r) => server.close(() => r()));
    for (const s of sockets) s.destroy();
    await closed;
  };
  origin.restart = () => listen(origin.port);
  origin.close = async () => {
    if (server.listening) await origin.kill();
  };
  return origin;
}

/**
 * One origin on each of `hosts` (127.0.0.2, 127.0.0.3, ...), all on the same port, as servers found through DNS A
 * records are (the port comes from the config). Tries another port when one is taken on some address.
 */
export async function startOriginsOnOnePort(hosts: readonly string[]): Promise<Origin[]> {
  for (let attempt = 0; ; attempt++) {
    const first = await startOrigin(hosts[0]!, 0, hosts[0]);
    const origins = [first];
    try {
      for (const host of hosts.slice(1)) origins.push(await startOrigin(host, first.port, host));
      return origins;
    } catch (err) {
      await Promise.all(origins.map((o) => o.close()));
      if (attempt >= 5) throw err;
    }
  }
}
