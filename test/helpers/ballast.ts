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

export { freePort } from './ports.js';
