/**
 * The harness of the pinned benchmarks (ceiling.mjs, h2-upstream.mjs): proxies on CPU 0, wrk and the origin on CPU 1,
 * every target measured in turn, round after round, the order reversed every other round, so two targets next to
 * each other in the list are measured back to back. A peer is compared with Ballast round by round: this machine's
 * speed drifts by 20% or more within a run, and a ratio of two measurements taken seconds apart survives the drift
 * where a ratio of two medians does not.
 *
 * CPU per request: user + system time of the target's process tree (from /proc) over the measured seconds, divided by
 * the requests wrk counted. Only 127.0.0.1 is contacted; every child is killed on the way out; every load is bounded
 * in time.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './ports.mjs';
import { processTree, treeCpuMs } from './proc-cpu.mjs';
import { parseWrk } from './wrk-output.mjs';

const children = new Set();
let stopping = false;
// The whole tree of each child: NGINX's workers outlive a master killed with SIGKILL.
process.on('exit', () => {
  for (const child of children) {
    for (const pid of processTree(child.pid).reverse()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
  }
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(130));

export function onPath(bin) {
  return spawnSync('sh', ['-c', `command -v ${bin}`], { encoding: 'utf8' }).stdout.trim() || undefined;
}

/** BENCH_DURATION and BENCH_ROUNDS (the caller's defaults), BENCH_WARMUP (1 s before each measurement), BENCH_CONNECTIONS (50). */
export function settings(defaults) {
  const env = (name, fallback) => Number(process.env[name] ?? fallback);
  return { duration: env('BENCH_DURATION', defaults.duration), warmup: env('BENCH_WARMUP', 1), rounds: env('BENCH_ROUNDS', defaults.rounds), connections: env('BENCH_CONNECTIONS', 50) };
}

/** nginx and wrk (required), haproxy (measured when on PATH), and a scratch directory removed on exit. */
export function prepare(prefix) {
  const nginxBin = onPath('nginx');
  if (nginxBin === undefined || onPath('wrk') === undefined) throw new Error('nginx and wrk must be on PATH (Debian: apt-get install -y nginx wrk)');
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  return { nginxBin, haproxyBin: onPath('haproxy'), dir };
}

/** HAProxy as a peer: one thread, keep-alive to the origin (`http-reuse always`); `server` adds to its server line. */
export function haproxyConfig(port, originPort, { server = '', forwardFor = false } = {}) {
  return `global
  nbthread 1
  maxconn 4000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
${forwardFor ? '  option forwardfor\n' : ''}frontend fe
  bind 127.0.0.1:${port}
  default_backend origin
backend origin
  server s1 127.0.0.1:${originPort}${server}
`;
}

/** Pinning to CPU 0 (targets) and CPU 1 (load and origin); BENCH_PIN=0 turns it off. */
export const PIN = process.env.BENCH_PIN !== '0';

function pinned(cpu, argv) {
  return PIN ? ['taskset', '-c', String(cpu), ...argv] : argv;
}

/**
 * Starts a child (on CPU `options.cpu`, 0 by default), killed when this process exits; reports an early exit.
 * `options.stdout`: a file descriptor for its standard output (discarded otherwise).
 */
export function start(name, argv, options = {}) {
  const [bin, ...args] = pinned(options.cpu ?? 0, argv);
  const child = spawn(bin, args, { stdio: ['ignore', options.stdout ?? 'ignore', 'pipe'], env: { ...process.env, ...options.env } });
  let stderr = '';
  child.stderr.on('data', (c) => (stderr = (stderr + c).slice(-2000)));
  child.on('exit', (code, signal) => {
    children.delete(child);
    if (!stopping) console.error(`${name} exited (${code ?? signal}): ${stderr.trim()}`);
  });
  children.add(child);
  return child;
}

/**
 * Ballast as a target, as a user runs it: a build's compiled CLI (`dist`), `workers: 1`, metrics on, one upstream of
 * one origin (`protocol`: the upstream's, HTTP/1.1 when absent). Its log goes to a file in `dir`, as a deployment
 * points it at a collector: with `accessLog`, an access line costs what it costs there.
 */
export async function startBallast(dir, label, dist, originPort, { protocol, accessLog = false } = {}) {
  const port = await freePort();
  const name = label.replace(/\W+/g, '-');
  const config = path.join(dir, `${name}.yaml`);
  writeFileSync(config, `workers: 1
admin: { listen: 127.0.0.1:${await freePort()} }
logging: { level: info, access_log: ${accessLog} }
listeners:
  - name: web
    listen: 127.0.0.1:${port}
    routes: [ { upstream: origin } ]
upstreams:
  - name: origin
${protocol === undefined ? '' : `    protocol: ${protocol}\n`}    servers: [ { address: 127.0.0.1:${originPort} } ]
`);
  const stdout = openSync(path.join(dir, `${name}.log`), 'a');
  return { label, port, child: start(label, [process.execPath, path.join(dist, 'cli.js'), '--config', config], { stdout }) };
}

/** The children are about to be stopped: their exits are no longer news. */
export function expectExits() {
  stopping = true;
}

/** wrk for `seconds` against the port, pinned beside the origin; its parsed output. */
export function wrk(port, seconds, connections) {
  const argv = pinned(1, ['wrk', '-t1', `-c${connections}`, `-d${seconds}s`, `http://127.0.0.1:${port}/`]);
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', timeout: (seconds + 30) * 1000 });
  if (r.status !== 0) throw new Error(`wrk failed: ${r.stderr || r.error}`);
  return parseWrk(r.stdout, seconds);
}

/**
 * Measures every target `rounds` times (each after `warmup` seconds of load), the order reversed every other round;
 * each target's `runs` gets one { rps, usPerReq, failed } per round.
 */
export function measureRounds(targets, { rounds, duration, warmup, connections }) {
  for (const t of targets) {
    t.runs = [];
    wrk(t.port, 2, connections);
  }
  for (let round = 1; round <= rounds; round++) {
    for (const t of round % 2 === 1 ? targets : [...targets].reverse()) {
      if (warmup > 0) wrk(t.port, warmup, connections);
      const before = treeCpuMs(t.child.pid);
      const r = wrk(t.port, duration, connections);
      const usPerReq = ((treeCpuMs(t.child.pid) - before) * 1000) / r.requests;
      const failed = r.errors + r.non2xx + r.timeouts;
      t.runs.push({ rps: r.rps, usPerReq, failed });
      console.log(`round ${round}  ${t.label.padEnd(24)} ${Math.round(r.rps).toLocaleString('en-US').padStart(7)} req/s  ${usPerReq.toFixed(1).padStart(6)} µs CPU/req  failed ${failed}`);
    }
  }
}

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** The median of xs with its quartiles (the medians of its lower and upper halves): "0.91× (0.88–0.95)". */
export function withQuartiles(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const half = Math.floor(s.length / 2);
  const lower = s.slice(0, Math.max(1, half));
  const upper = s.slice(s.length - Math.max(1, half));
  return `${median(s).toFixed(2)}× (${median(lower).toFixed(2)}–${median(upper).toFixed(2)})`;
}

/** Each round's ratio of `t`'s figure to `base`'s (`key`: rps or usPerReq). */
export function pairedRatios(t, base, key) {
  return t.runs.map((run, i) => run[key] / base.runs[i][key]);
}

/**
 * The markdown table: each target's median round, and its CPU per request and req/s over `base`'s (Ballast's unless
 * told), round by round: the median of the rounds' ratios and their quartiles.
 */
export function pairedTable(targets, base = targets[0], baseName = "Ballast's") {
  const rows = [
    `| target | req/s | CPU µs/req | CPU per request ÷ ${baseName} | req/s ÷ ${baseName} | failed |`,
    '| --- | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const t of targets) {
    const cpu = t === base ? '' : withQuartiles(pairedRatios(t, base, 'usPerReq'));
    const rps = t === base ? '' : withQuartiles(pairedRatios(t, base, 'rps'));
    rows.push(`| ${t.label} | ${Math.round(median(t.runs.map((r) => r.rps))).toLocaleString('en-US')} | ${median(t.runs.map((r) => r.usPerReq)).toFixed(1)} | ${cpu} | ${rps} | ${t.runs.reduce((s, r) => s + r.failed, 0)} |`);
  }
  return rows.join('\n');
}
