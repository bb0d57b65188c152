/**
 * The per-core ceiling (issue #18): what share of the minimal node:http + undici proxy (bench/target-undici-minimal.mjs,
 * the ceiling of this design on public Node APIs) Ballast reaches with every feature on, and where both stand against
 * NGINX and HAProxy. Small GETs ("hello") over 50 keep-alive connections from wrk, one NGINX origin.
 *
 *   npm run build && node bench/ceiling.mjs
 *   BENCH_ROUNDS=15 BENCH_DURATION=2 BENCH_WRITE=1 node bench/ceiling.mjs
 *   BENCH_BASE_DIST=/path/to/dist node bench/ceiling.mjs     # adds another build's Ballast (BENCH_BASE_LABEL)
 *
 * Each proxy runs as a user runs it, on one core: Ballast from the compiled CLI (`workers: 1`, metrics on, access log
 * off; and a second one with the access log on, written to a file), NGINX and HAProxy with one worker, keep-alive to
 * the origin. Every figure is compared with the minimal proxy's round by round (pinned-rounds.mjs says why): Ballast
 * and the minimal proxy are measured back to back in every round.
 *
 * Environment: BENCH_DURATION (seconds per measurement, 2), BENCH_WARMUP (seconds of load before each, 1),
 * BENCH_ROUNDS (11), BENCH_CONNECTIONS (50), BENCH_PIN (1), BENCH_WRITE (1: write its section of bench/RESULTS.md; run
 * it after run.js, which rewrites that file whole).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, waitForPort } from './ports.mjs';
import { expectExits, haproxyConfig, measureRounds, median, pairedRatios, pairedTable, PIN, prepare, settings, start, startBallast, withQuartiles } from './pinned-rounds.mjs';
import { nginxProxyConfig, nginxVersion, originConfig } from './tls-servers.mjs';
import { writeSection } from './tls-report.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const DIST = path.resolve(HERE, '..', 'dist');
const { duration: DURATION, warmup: WARMUP, rounds: ROUNDS, connections: CONNECTIONS } = settings({ duration: 2, rounds: 11 });

async function main() {
  const { nginxBin, haproxyBin, dir } = prepare('ballast-ceiling-');

  const originPort = await freePort();
  writeFileSync(path.join(dir, 'origin.conf'), originConfig(dir, originPort));
  const origin = start('nginx origin', [nginxBin, '-c', path.join(dir, 'origin.conf')], { cpu: 1 });
  await waitForPort(originPort, origin, 'nginx origin');

  const ballast = (label, dist, accessLog) => startBallast(dir, label, dist, originPort, { accessLog });
  const minimalPort = await freePort();
  const minimal = {
    label: 'minimal undici proxy',
    port: minimalPort,
    child: start('minimal', [process.execPath, path.join(HERE, 'target-undici-minimal.mjs')], { env: { PORT: String(minimalPort), BENCH_ORIGINS: String(originPort) } }),
  };
  // Ballast and the minimal proxy next to each other, so every round measures them back to back.
  const targets = [await ballast('Ballast', DIST, false), minimal, await ballast('Ballast, access log on', DIST, true)];
  if (process.env.BENCH_BASE_DIST) targets.push(await ballast(process.env.BENCH_BASE_LABEL ?? 'Ballast, base build', path.resolve(process.env.BENCH_BASE_DIST), false));
  {
    const port = await freePort();
    writeFileSync(path.join(dir, 'nginx.conf'), nginxProxyConfig({ dir, port, originPort }));
    targets.push({ label: 'NGINX', port, child: start('nginx', [nginxBin, '-c', path.join(dir, 'nginx.conf')]) });
  }
  if (haproxyBin !== undefined) {
    const port = await freePort();
    writeFileSync(path.join(dir, 'haproxy.cfg'), haproxyConfig(port, originPort, { forwardFor: true }));
    targets.push({ label: 'HAProxy', port, child: start('haproxy', [haproxyBin, '-db', '-f', path.join(dir, 'haproxy.cfg')]) });
  }
  for (const t of targets) await waitForPort(t.port, t.child, t.label);

  console.log(`Per-core ceiling: wrk -t1 -c${CONNECTIONS} keep-alive small GETs → proxy → NGINX origin; ${ROUNDS} rounds of ${DURATION}s; Node ${process.version}${PIN ? '; proxies on CPU 0, wrk and the origin on CPU 1' : ''}`);
  measureRounds(targets, { rounds: ROUNDS, duration: DURATION, warmup: WARMUP, connections: CONNECTIONS });
  expectExits();

  const table = pairedTable(targets, minimal, "the minimal proxy's");
  // Ballast's share of the ceiling, as the issue states its goal (1 would be as cheap and as fast as the minimal proxy).
  const share = (t) => `${t.label} reaches ${withQuartiles(pairedRatios(minimal, t, 'usPerReq'))} of the ceiling by CPU per request (the minimal proxy's ÷ its own) and ${withQuartiles(pairedRatios(t, minimal, 'rps'))} by req/s (its own ÷ the minimal proxy's)`;
  const nginx = targets.find((t) => t.label === 'NGINX');
  const shares = [
    ...targets.filter((t) => t.label.startsWith('Ballast')).map(share),
    `The minimal proxy itself: ${(median(minimal.runs.map((r) => r.usPerReq)) / median(nginx.runs.map((r) => r.usPerReq))).toFixed(2)}× NGINX's CPU per request (medians), ${withQuartiles(pairedRatios(minimal, nginx, 'rps'))} of its req/s`,
  ];
  console.log(`\n${table}\n\n${shares.map((l) => `- ${l}`).join('\n')}`);
  if (process.env.BENCH_WRITE === '1') {
    writeSection(path.join(HERE, 'RESULTS.md'), [
      '## Per-core ceiling: Ballast against the minimal undici proxy, NGINX and HAProxy',
      '',
      `\`BENCH_ROUNDS=${ROUNDS} BENCH_DURATION=${DURATION} node bench/ceiling.mjs\` on ${new Date().toISOString().slice(0, 10)}: Node ${process.version}, nginx ${nginxVersion(nginxBin).join('.')} (one worker answering "hello") as the origin; wrk \`-t1 -c${CONNECTIONS}\` keep-alive small GETs${PIN ? '; the proxies on CPU 0, wrk and the origin on CPU 1' : ''}. Ballast from the CLI (\`workers: 1\`, metrics on; access log off, then on and written to a file), the minimal undici proxy (\`bench/target-undici-minimal.mjs\`), NGINX and HAProxy with one worker and keep-alive to the origin. Every round measures each target once, Ballast and the minimal proxy back to back; the ratio columns are the median of the rounds' ratios to the minimal proxy, with their quartiles. CPU per request is the process tree's user + system time from /proc over the requests wrk counted.`,
      '',
      table,
      '',
      ...shares.map((l) => `- ${l}`),
    ].join('\n'), 'ceiling', 'bench/ceiling.mjs');
    console.log('\nwrote the per-core ceiling section of bench/RESULTS.md');
  }
}

main().then(() => process.exit(0), (err) => {
  console.error(err.message);
  process.exit(1);
});
