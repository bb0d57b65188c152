/** Starts a real Ballast on ephemeral ports from a YAML config, with logs captured in memory. */
import { Writable } from 'node:stream';
import pino from 'pino';
import { Agent, request, type Dispatcher } from 'undici';
import { Ballast, type BallastOptions } from '../../src/ballast.js';
import { formatConfigErrors, parseConfig } from '../../src/config/load.js';

export interface TestBallast {
  readonly ballast: Ballast;
  readonly port: number;
  readonly adminPort: number;
  readonly logs: Record<string, unknown>[];
  url(path?: string): string;
  stop(): Promise<void>;
}

export async function startBallast(yaml: string, options: BallastOptions = {}): Promise<TestBallast> {
  const result = parseConfig(yaml, {});
  if (!result.ok) throw new Error(formatConfigErrors('test', result.errors));
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const log = pino({ level: result.config.logging.level }, sink);
  const ballast = await Ballast.start(result.config, { log, processMetrics: false, ...options });
  const first = result.config.listeners[0]!;
  const port = ballast.port(first.name);
  return {
    ballast,
    port,
    adminPort: ballast.adminAddress.port,
    logs,
    url: (path = '/') => `http://127.0.0.1:${port}${path}`,
    stop: () => ballast.stop(500),
  };
}

/** A client that opens fresh connections, so tests never share keep-alive state by accident. */
export function freshClient(): Agent {
  return new Agent({ keepAliveTimeout: 10, pipelining: 0 });
}

export async function get(url: string, opts: Partial<Dispatcher.RequestOptions> & { dispatcher?: Dispatcher } = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  const res = await request(url, { dispatcher: opts.dispatcher ?? sharedClient, ...opts } as Parameters<typeof request>[1]);
  const body = await res.body.text();
  return { status: res.statusCode, headers: res.headers, body };
}

const sharedClient = new Agent({ connections: 64 });

/** Minimal YAML for one listener and one upstream over the given origins. */
export function simpleConfig(servers: string[], upstreamExtra = '', listenerExtra = ''): string {
  return `
admin: { listen: 127.0.0.1:0 }
logging: { level: info, access_log: true }
listeners:
  - name: web
    listen: 127.0.0.1:0
${listenerExtra}
    routes:
      - upstream: pool
upstreams:
  - name: pool
    servers:
${servers.map((s) => `      - { address: ${s} }`).join('\n')}
${upstreamExtra}
`;
}

/*
 * Ports for configs a child process (or a later listen) must bind itself. Picked below Linux's ephemeral range
 * (32768–60999 by default), so no outgoing connection's source port and no `listen(0)` of a test running in parallel
 * can take one between the probe and the bind; each vitest worker draws from its own block, so two workers never pick
 * the same port either. A port still held by another program is skipped.
 */
const PORTS_PER_WORKER = 1500;
const FIRST_PORT = 20_000;
// A random start: the files a worker runs one after another rarely reuse a port (one may linger in a child's exit).
let nextPortOffset = Math.floor(Math.random() * PORTS_PER_WORKER);

/** A port that was free a moment ago and that no other test of this run will be handed. */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  const worker = Math.max(0, Number(process.env.VITEST_POOL_ID ?? 1) - 1) % 8;
  for (let tries = 0; tries < PORTS_PER_WORKER; tries++) {
    const port = FIRST_PORT + worker * PORTS_PER_WORKER + (nextPortOffset++ % PORTS_PER_WORKER);
    const server = createServer();
    const bound = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (!bound) continue;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return port;
  }
  throw new Error('no free port in this worker\'s block');
}
