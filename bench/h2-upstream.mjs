/**
 * HTTP/2 to origins: what a request costs Ballast with `protocol: http2` (src/upstream/http2-pool.ts: node:http2
 * sessions, streams multiplexed) beside HAProxy (`proto h2` on its server line, which multiplexes too) and the
 * minimal node:http + node:http2 proxy (bench/target-h2up-minimal.mjs, the ceiling of this path in Node), side by side
 * in one run, alternating rounds. The origin is one NGINX worker speaking h2c (prior knowledge) and answering "hello";
 * the client wrk, one thread, 50 keep-alive HTTP/1.1 connections. Each proxy runs as a user runs it: Ballast from
 * the compiled CLI (`workers: 1`, access log off, metrics on), HAProxy with `nbthread 1`.
 *
 *   npm run build && node bench/h2-upstream.mjs
 *   BENCH_ROUNDS=5 BENCH_DURATION=5 node bench/h2-upstream.mjs
 *   BENCH_BASE_DIST=/path/to/dist node bench/h2-upstream.mjs     # adds another build's Ballast (BENCH_BASE_LABEL)
 *
 * CPU per request: user + system time of the proxy's process (from /proc) over the measured seconds, divided by the
 * requests wrk counted. The proxies run on CPU 0, wrk and the origin on CPU 1 (BENCH_PIN=0: unpinned). Reported: the
 * median round per target, and each peer's CPU per request over Ballast's, round by round (measured back to back).
 * Needs nginx and wrk on PATH (Debian: nginx, wrk); HAProxy is measured when `haproxy` is on PATH.
 *
 * Environment: BENCH_DURATION (seconds per measurement, 3), BENCH_WARMUP (seconds of load before each, 1),
 * BENCH_ROUNDS (3), BENCH_CONNECTIONS (50), BENCH_PIN (1), BENCH_WRITE (1: write its section of bench/RESULTS.md; run
 * it after run.js, which rewrites that file whole). Only 127.0.0.1 is contacted; every child is killed on the way out;
 * every load is bounded in time.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, waitForPort } from './ports.mjs';
import { expectExits, haproxyConfig, measureRounds, pairedTable, PIN, prepare, settings, start, startBallast } from './pinned-rounds.mjs';
import { nginxVersion, originConfig } from './tls-servers.mjs';
import { writeSection } from './tls-report.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const DIST = path.resolve(HERE, '..', 'dist');
const { duration: DURATION, warmup: WARMUP, rounds: ROUNDS, connections: CONNECTIONS } = settings({ duration: 3, rounds: 3 });

async function main() {
  const { nginxBin, haproxyBin, dir } = prepare('ballast-h2up-');

  const originPort = await freePort();
  writeFileSync(path.join(dir, 'origin.conf'), originConfig(dir, originPort, { h2c: nginxVersion(nginxBin) }));
  const origin = start('nginx origin', [nginxBin, '-c', path.join(dir, 'origin.conf')], { cpu: 1 });
  await waitForPort(originPort, origin, 'nginx origin');

  const targets = [];
  const ballast = async (label, dist) => targets.push(await startBallast(dir, label, dist, originPort, { protocol: 'http2' }));
  await ballast('Ballast', DIST);
  if (process.env.BENCH_BASE_DIST) await ballast(process.env.BENCH_BASE_LABEL ?? 'base', path.resolve(process.env.BENCH_BASE_DIST));
  if (haproxyBin !== undefined) {
    const port = await freePort();
    writeFileSync(path.join(dir, 'haproxy.cfg'), haproxyConfig(port, originPort, { server: ' proto h2' }));
    targets.push({ label: 'HAProxy', port, child: start('haproxy', [haproxyBin, '-db', '-f', path.join(dir, 'haproxy.cfg')]) });
  }
  {
    const port = await freePort();
    targets.push({ label: 'minimal (reference)', port, child: start('minimal', [process.execPath, path.join(HERE, 'target-h2up-minimal.mjs')], { env: { PORT: String(port), BENCH_ORIGIN_PORT: String(originPort) } }) });
  }
  for (const t of targets) await waitForPort(t.port, t.child, t.label);

  console.log(`HTTP/2 to origins: wrk -t1 -c${CONNECTIONS} keep-alive → proxy → NGINX h2c origin; ${ROUNDS} rounds of ${DURATION}s; Node ${process.version}${PIN ? '; proxies on CPU 0, wrk and the origin on CPU 1' : ''}`);
  measureRounds(targets, { rounds: ROUNDS, duration: DURATION, warmup: WARMUP, connections: CONNECTIONS });
  expectExits();
  const table = pairedTable(targets);
  console.log(`\n${table}`);
  if (process.env.BENCH_WRITE === '1') {
    const haproxy = haproxyBin === undefined ? 'not on PATH' : spawnSync(haproxyBin, ['-v'], { encoding: 'utf8' }).stdout.split('\n')[0];
    writeSection(path.join(HERE, 'RESULTS.md'), [
      '## HTTP/2 to origins: Ballast against HAProxy and the minimal node:http2 proxy',
      '',
      `\`BENCH_ROUNDS=${ROUNDS} BENCH_DURATION=${DURATION} node bench/h2-upstream.mjs\` on ${new Date().toISOString().slice(0, 10)}: Node ${process.version}, ${haproxy}, nginx ${nginxVersion(nginxBin).join('.')} as the h2c origin (one worker answering "hello"); wrk \`-t1 -c${CONNECTIONS}\` keep-alive HTTP/1.1 to the proxy${PIN ? '; the proxies on CPU 0, wrk and the origin on CPU 1' : ''}. Ballast from the CLI with \`protocol: http2\` (\`workers: 1\`, access log off, metrics on), HAProxy \`nbthread 1\` with \`proto h2\` on its server line, and the minimal proxy (\`bench/target-h2up-minimal.mjs\`: node:http in, one node:http2 session out, nothing else), measured in alternating rounds; each row is its median round, and the ratio columns the median of the rounds\' ratios to Ballast with their quartiles. CPU per request is the proxy process\'s user + system time from /proc over the requests wrk counted.`,
      '',
      table,
    ].join('\n'), 'h2-upstream', 'bench/h2-upstream.mjs');
    console.log('\nwrote the HTTP/2-to-origins section of bench/RESULTS.md');
  }
}

main().then(() => process.exit(0), (err) => {
  console.error(err.message);
  process.exit(1);
});
