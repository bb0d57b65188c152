/**
 * Ballast under test, compiled (../dist, or BENCH_BALLAST_DIST), in its own process: one listener round-robin over the origins given in
 * BENCH_ORIGINS (comma-separated ports), access log per BENCH_ACCESS_LOG (0/1), process metrics on; BENCH_RATE_LIMIT=1 adds
 * a client.rate_limit per client IP that never refuses (what its lookup costs).
 * Logs go to this process's stdout, which bench/run.js points at a file (as a deployment would point it at a
 * collector), so an access log line costs what it costs in production. Reports its port over IPC; `stop` drains and
 * exits (which is also when `node --cpu-prof` writes its profile).
 */
import { pathToFileURL } from 'node:url';
import path from 'node:path';

// BENCH_BALLAST_DIST points at another build (e.g. a patched copy of dist/) for A/B runs; default ../dist.
const dist = process.env.BENCH_BALLAST_DIST ? pathToFileURL(path.resolve(process.env.BENCH_BALLAST_DIST) + '/').href : new URL('../dist/', import.meta.url).href;
const { Ballast } = await import(new URL('ballast.js', dist).href);
const { formatConfigErrors, parseConfig } = await import(new URL('config/load.js', dist).href);

const origins = (process.env.BENCH_ORIGINS ?? '').split(',').filter(Boolean);
const accessLog = process.env.BENCH_ACCESS_LOG === '1';
const rateLimit = process.env.BENCH_RATE_LIMIT === '1' ? '\n    client: { rate_limit: { rate: 1000000000, per: 1s, burst: 1000000000 } }' : '';

export const yaml = `
admin: { listen: 127.0.0.1:0 }
logging: { level: info, access_log: ${accessLog} }
listeners:
  - name: bench
    protocol: http
    listen: 127.0.0.1:0${rateLimit}
    routes:
      - upstream: origins
upstreams:
  - name: origins
    balance: round-robin
    servers:
${origins.map((p) => `      - { address: 127.0.0.1:${p} }`).join('\n')}
`;

const parsed = parseConfig(yaml, {});
if (!parsed.ok) {
  process.stderr.write(formatConfigErrors('bench', parsed.errors) + '\n');
  process.exit(2);
}
const ballast = await Ballast.start(parsed.config, { processMetrics: true });
process.send?.({ type: 'ready', port: ballast.port('bench'), adminPort: ballast.adminAddress.port });

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  await ballast.stop(1000);
  process.exit(0);
}
process.on('message', (m) => {
  if (m?.type === 'stop') void stop();
});
process.on('disconnect', () => void stop());
