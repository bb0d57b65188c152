/**
 * The embedded demo: three local origins and Ballast in front of them, round-robin with active health checks.
 * `npm run demo` (or `ballast` with no --config) runs it; the curl lines it prints show the balancing.
 */
import { createServer, type Server } from 'node:http';
import { pathToFileURL } from 'node:url';
import { Ballast } from './ballast.js';
import { parseConfig, formatConfigErrors } from './config/load.js';
import { onShutdownSignal } from './signals.js';

const PORT = Number(process.env.BALLAST_DEMO_PORT ?? 8080);
const ORIGIN_PORTS = [9001, 9002, 9003];

export const DEMO_CONFIG = `
admin: { listen: 127.0.0.1:9901 }
logging: { level: info, access_log: true }
listeners:
  - name: web
    protocol: http
    listen: 127.0.0.1:${PORT}
    routes:
      - upstream: demo
upstreams:
  - name: demo
    balance: round-robin
    servers:
${ORIGIN_PORTS.map((p) => `      - { address: 127.0.0.1:${p} }`).join('\n')}
    health_check: { type: http, path: /healthz, interval: 2s, timeout: 1s, initial_state: healthy }
    retry: { attempts: 3, per_try_timeout: 2s }
`;

/** A tiny origin that says who it is, so the rotation is visible. */
function startOrigin(name: string, port: number): Promise<Server> {
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
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

export async function runDemo(): Promise<void> {
  const result = parseConfig(DEMO_CONFIG);
  if (!result.ok) throw new Error(`demo config is invalid:\n${formatConfigErrors('demo', result.errors)}`);
  const origins = await Promise.all(ORIGIN_PORTS.map((p, i) => startOrigin(`origin-${i + 1}`, p)));
  const ballast = await Ballast.start(result.config);
  process.stdout.write(
    [
      '',
      `Ballast demo: http://127.0.0.1:${PORT} -> origins on ${ORIGIN_PORTS.map((p) => `127.0.0.1:${p}`).join(', ')}`,
      'Try:',
      `  for i in 1 2 3 4 5 6; do curl -s http://127.0.0.1:${PORT}/hello; done`,
      '  curl -s http://127.0.0.1:9901/status',
      '  curl -s http://127.0.0.1:9901/metrics | grep ballast_requests_total',
      'Ctrl-C drains and exits.',
      '',
    ].join('\n'),
  );
  onShutdownSignal(async () => {
    await ballast.stop(5000);
    for (const o of origins) o.close();
  });
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runDemo().catch((err: unknown) => {
    process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
