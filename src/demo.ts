/**
 * The embedded demo: three local origins and Ballast in front of them, round-robin with active health checks, and
 * two gRPC origins (demo-grpc.ts) reached over HTTP/2 for the calls to `ballast.demo.Echo`.
 * `npm run demo` (or `ballast demo`) runs it; the curl and grpcurl lines it prints show the balancing.
 *
 * It binds 127.0.0.1 only, on ports 8080 (proxy), 9901 (admin), 9001–9003 (origins) and 9004–9005 (gRPC origins)
 * when they are free. A port another program holds (or takes while the demo starts) is replaced by a free one the
 * system picks, and the demo says so: a first run should serve, not stop on someone else's port. BALLAST_DEMO_PORT
 * asks for the proxy's port; that one is not replaced, as it was asked for: if it is taken, the demo fails. Any
 * failure to start is one line on stderr and exit 1, everything it had started closed, so the process never stays
 * behind.
 */
import { createServer as createNetServer } from 'node:net';
import { createServer, type Server } from 'node:http';
import type { Http2Server } from 'node:http2';
import { pathToFileURL } from 'node:url';
import { Ballast } from './ballast.js';
import { parseConfig, formatConfigErrors } from './config/load.js';
import { createCliLogger, type LogFormat } from './log.js';
import { onShutdownSignal } from './signals.js';
import { logStartupSummary } from './startup-summary.js';
import { listen } from './util/listen.js';
import { makeDemoCertificate, type DemoCertificate } from './demo-certificate.js';
import { ECHO_SERVICE, grpcOriginServer } from './demo-grpc.js';

export const DEMO_PORTS = { proxy: 8080, admin: 9901, origins: [9001, 9002, 9003], grpc: [9004, 9005], tls: 8443 } as const;

export interface DemoPorts {
  readonly proxy: number;
  readonly admin: number;
  readonly origins: readonly number[];
  /** The gRPC origins (`ballast.demo.Echo` over h2c). */
  readonly grpc: readonly number[];
  /** With `--tls`: the HTTPS listener's port (HTTP/2 and HTTP/1.1 by ALPN). */
  readonly tls?: number;
}

/** Every listener's routes: gRPC calls (and reflection) to the gRPC origins, all else to the HTTP ones. */
const DEMO_ROUTES = `
    routes:
      - { match: { path_prefix: /${ECHO_SERVICE}/ }, upstream: grpc }
      - { match: { path_prefix: /grpc.reflection. }, upstream: grpc }
      - upstream: demo`;

/**
 * The demo's config: one listener (two with TLS), an upstream over the HTTP origins and one over the gRPC origins.
 * The clear-text listener also takes HTTP/2 with prior knowledge (h2c), so gRPC works there without TLS.
 * Port 0 lets the system pick one.
 */
export function demoConfig(ports: DemoPorts, certificate?: { cert: string; key: string }): string {
  const tlsListener = certificate === undefined || ports.tls === undefined ? '' : `
  - name: web-tls
    protocol: http
    listen: 127.0.0.1:${ports.tls}
    tls: { certificates: [ { cert: ${certificate.cert}, key: ${certificate.key} } ] }${DEMO_ROUTES}`;
  const servers = (list: readonly number[]): string => list.map((p) => `      - { address: 127.0.0.1:${p} }`).join('\n');
  return `
admin: { listen: 127.0.0.1:${ports.admin} }
logging: { level: info, access_log: true }
listeners:
  - name: web
    protocol: http
    listen: 127.0.0.1:${ports.proxy}
    http2: { cleartext: true }${DEMO_ROUTES}${tlsListener}
upstreams:
  - name: demo
    balance: round-robin
    servers:
${servers(ports.origins)}
    health_check: { type: http, path: /healthz, interval: 2s, timeout: 1s, initial_state: healthy }
    retry: { attempts: 3, per_try_timeout: 2s }
  - name: grpc
    protocol: http2
    balance: round-robin
    servers:
${servers(ports.grpc)}
    health_check: { type: http, path: /healthz, interval: 2s, timeout: 1s, initial_state: healthy }
`;
}

/** A reason the demo cannot start, said in one line. */
export class DemoError extends Error {}

/** A tiny origin that says who it is, so the rotation is visible. */
function originServer(name: string): Server {
  const server = createServer((req, res) => {
    if (req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    req.resume();
    const body = `${JSON.stringify({ origin: name, method: req.method, url: req.url, forwardedFor: req.headers['x-forwarded-for'], requestId: req.headers['x-request-id'] })}\n`;
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  return server;
}

const isTaken = (err: unknown): boolean => ['EADDRINUSE', 'EACCES'].includes((err as NodeJS.ErrnoException).code ?? '');

/** Whether a port can be bound now: isFree, or in a test a stand-in for it. */
export type PortProbe = (port: number) => Promise<boolean>;

/** Whether 127.0.0.1:port can be bound now (a moment later another program may take it: Ballast.start then fails). */
export async function isFree(port: number): Promise<boolean> {
  const probe = createNetServer();
  try {
    await listen(probe, '127.0.0.1', port);
  } catch (err) {
    if (isTaken(err)) return false;
    throw err;
  }
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return true;
}

/** The proxy's port: BALLAST_DEMO_PORT exactly, or 8080 when free, else 0 (a free one). */
async function proxyPort(requested: string | undefined, probe: PortProbe): Promise<number> {
  if (requested === undefined || requested === '') return (await probe(DEMO_PORTS.proxy)) ? DEMO_PORTS.proxy : 0;
  const port = Number(requested);
  if (!/^\d+$/.test(requested) || port < 1 || port > 65535) throw new DemoError(`BALLAST_DEMO_PORT must be a port from 1 to 65535 (got "${requested}")`);
  if (!(await probe(port))) throw new DemoError(`port ${port} (BALLAST_DEMO_PORT) is already in use: choose another, or unset it to let the demo pick`);
  return port;
}

/**
 * Ballast on the demo's proxy, admin and TLS ports. Those are probed before Ballast binds them, so another program
 * may take one in between: Ballast.start then fails having closed what it opened, and the ports are probed again
 * (a default one taken now moves to a free one; the port BALLAST_DEMO_PORT asked for fails as taken), twice at most.
 */
async function startBallast(env: NodeJS.ProcessEnv, origins: number[], grpc: number[], certificate: DemoCertificate | undefined, logFormat: LogFormat | undefined, probe: PortProbe): Promise<{ ballast: Ballast; proxy: number; admin: number; tls: number | undefined }> {
  for (let attempt = 1; ; attempt++) {
    const proxy = await proxyPort(env.BALLAST_DEMO_PORT, probe);
    const admin = (await probe(DEMO_PORTS.admin)) ? DEMO_PORTS.admin : 0;
    const tls = certificate === undefined ? undefined : (await probe(DEMO_PORTS.tls)) ? DEMO_PORTS.tls : 0;
    const result = parseConfig(demoConfig({ proxy, admin, origins, grpc, ...(tls === undefined ? {} : { tls }) }, certificate), env);
    if (!result.ok) throw new Error(`demo config is invalid:\n${formatConfigErrors('demo', result.errors)}`);
    try {
      return { ballast: await Ballast.start(result.config, { log: createCliLogger('info', logFormat) }), proxy, admin, tls };
    } catch (err) {
      if (!isTaken(err) || attempt === 3) throw err;
    }
  }
}

export interface RunningDemo {
  readonly ballast: Ballast;
  readonly ports: DemoPorts;
  stop(): Promise<void>;
}

/** Start the origins and Ballast; on any failure close what was started and throw (a DemoError when it is ours). */
export async function startDemo(options: { logFormat?: LogFormat; env?: NodeJS.ProcessEnv; say?: (line: string) => void; tls?: boolean; probe?: PortProbe } = {}): Promise<RunningDemo> {
  // options.probe stands in for isFree in a test that shows a port taken between the probe and the bind.
  const say = options.say ?? ((line: string) => process.stdout.write(`${line}\n`));
  const env = options.env ?? process.env;
  const origins: (Server | Http2Server)[] = [];
  let certificate: DemoCertificate | undefined;
  const closeOrigins = async () => {
    await Promise.all(origins.map((o) => new Promise<void>((resolve) => o.close(() => resolve()))));
    certificate?.remove();
  };
  try {
    if (options.tls === true) certificate = await makeDemoCertificate();
    // Each origin on its preferred port, or on a free one when another program holds that.
    const start = async (server: Server | Http2Server, name: string, preferred: number): Promise<number> => {
      origins.push(server);
      const port = await listen(server, '127.0.0.1', preferred).catch((err: unknown) => {
        if (!isTaken(err)) throw err;
        return listen(server, '127.0.0.1', 0);
      }).then((a) => a.port);
      if (port !== preferred) say(`port ${preferred} is in use: ${name} listens on 127.0.0.1:${port} instead`);
      return port;
    };
    const originPorts: number[] = [];
    for (const [i, preferred] of DEMO_PORTS.origins.entries()) originPorts.push(await start(originServer(`origin-${i + 1}`), `origin-${i + 1}`, preferred));
    const grpcPorts: number[] = [];
    for (const [i, preferred] of DEMO_PORTS.grpc.entries()) grpcPorts.push(await start(grpcOriginServer(`grpc-${i + 1}`), `grpc-${i + 1}`, preferred));
    const { ballast, proxy, admin, tls } = await startBallast(env, originPorts, grpcPorts, certificate, options.logFormat, options.probe ?? isFree);
    const ports: DemoPorts = { proxy: ballast.port('web'), admin: ballast.adminAddress.port, origins: originPorts, grpc: grpcPorts, ...(tls === undefined ? {} : { tls: ballast.port('web-tls') }) };
    if (tls === 0) say(`port ${DEMO_PORTS.tls} is in use: the TLS listener listens on 127.0.0.1:${ports.tls} instead`);
    if (proxy === 0) say(`port ${DEMO_PORTS.proxy} is in use: the proxy listens on 127.0.0.1:${ports.proxy} instead`);
    if (admin === 0) say(`port ${DEMO_PORTS.admin} is in use: the admin endpoint listens on 127.0.0.1:${ports.admin} instead`);
    logStartupSummary(ballast.log, ballast);
    return {
      ballast,
      ports,
      stop: async () => {
        await ballast.stop(5000);
        await closeOrigins();
      },
    };
  } catch (err) {
    await closeOrigins();
    if (isTaken(err)) throw new DemoError(`${(err as Error).message}: another program took the port while the demo started; run it again`);
    throw err;
  }
}

export async function runDemo(options: { logFormat?: LogFormat; tls?: boolean } = {}): Promise<void> {
  process.stdout.write('Ballast demo: starting three origins and two gRPC origins on 127.0.0.1, and Ballast in front of them (round-robin)…\n');
  const demo = await startDemo(options);
  const { proxy, admin, origins, grpc, tls } = demo.ports;
  const tlsLines = tls === undefined ? [] : [
    `  curl -sk --http2 https://localhost:${tls}/hello        # HTTP/2 over TLS (a throw-away self-signed certificate)`,
    `  curl -sk --http1.1 https://localhost:${tls}/hello      # HTTP/1.1 over TLS, same port (ALPN)`,
    `  grpcurl -insecure -d '{"message":"hi"}' localhost:${tls} ${ECHO_SERVICE}/Say   # gRPC over TLS`,
  ];
  process.stdout.write(
    [
      '',
      `Ballast demo: http://127.0.0.1:${proxy} -> origins on ${origins.map((p) => `127.0.0.1:${p}`).join(', ')}`,
      `  gRPC (${ECHO_SERVICE}, config/demo-echo.proto) -> gRPC origins on ${grpc.map((p) => `127.0.0.1:${p}`).join(', ')}`,
      'Try:',
      `  for i in 1 2 3 4 5 6; do curl -s http://127.0.0.1:${proxy}/hello; done`,
      `  grpcurl -plaintext 127.0.0.1:${proxy} list                 # gRPC over HTTP/2 (h2c); the origins answer reflection`,
      `  grpcurl -plaintext -d '{"message":"hi"}' 127.0.0.1:${proxy} ${ECHO_SERVICE}/Say`,
      ...tlsLines,
      `  curl -s http://127.0.0.1:${admin}/status`,
      `  curl -s http://127.0.0.1:${admin}/metrics | grep ballast_requests_total`,
      'Ctrl-C drains and exits.',
      '',
    ].join('\n'),
  );
  onShutdownSignal(() => demo.stop());
}

/** The demo as a program (`node dist/demo.js`, `ballast demo`): a failure is one line and exit 1, never a hang. */
export function demoFailed(err: unknown): void {
  process.stderr.write(`ballast demo: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
  // Everything started was closed, so the process ends by itself; should anything still hold it, it ends anyway.
  setTimeout(() => process.exit(1), 1000).unref();
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // `npm run demo -- --tls` passes the flag here.
  runDemo({ tls: process.argv.slice(2).includes('--tls') }).catch(demoFailed);
}
