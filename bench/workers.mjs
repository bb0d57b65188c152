/**
 * `workers: 1` against `workers: 2`, side by side in the same run: the compiled CLI (`node dist/cli.js --config F`),
 * as a user runs it, in front of three origins, under the same keep-alive small-GET load.
 *
 *   npm run build && node bench/workers.mjs
 *   BENCH_DURATION=10 BENCH_ROUNDS=5 node bench/workers.mjs
 *
 * Process layout: the three origins share one child process (this file with `--origins`); each Ballast is its own
 * process tree (for `workers: 2`, a primary and two workers); the load generator is a fresh child per measurement
 * (bench/load.mjs: autocannon, 50 connections, pipelining 1, `GET /` answered "hello"). Everything shares the machine's
 * cores, the load generator included, so on a 2-core machine a second worker competes with it and with the origins:
 * the ratio printed is what this machine gives, not what a machine with spare cores would.
 *
 * The two configurations are measured alternately, BENCH_ROUNDS times each, and the median round is reported.
 * CPU is read from /proc for the proxy's whole process tree (primary and workers), so "CPU µs/req" compares the cost
 * per request, and for the origins process; the load generator reports its own. Their sum against the core count
 * shows whether the machine, rather than Ballast, was the limit. Logs go to files in a temp dir (access log per BENCH_ACCESS_LOG, default off).
 *
 * Environment: BENCH_DURATION (seconds per measurement, default 5), BENCH_WARMUP (seconds of load before each, 1),
 * BENCH_PREWARM (seconds of load each target gets once, before the first round, so every process's JIT is warm; 3),
 * BENCH_ROUNDS (3), BENCH_CONNECTIONS (50), BENCH_ACCESS_LOG (0/1, default 0).
 * Only 127.0.0.1 is contacted; every child is killed on the way out; every load is bounded in time.
 */
import { fork, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import http from 'node:http';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CLI = path.resolve(HERE, '..', 'dist', 'cli.js');
const CLOCK_TICKS = 100; // USER_HZ on Linux, the unit of /proc/PID/stat times

if (process.argv.includes('--origins')) runOrigins();
else await main();

// ---------------------------------------------------------------------------------------------------------------
// The origins child: three servers in one process, `GET /` → "hello", `/healthz` → "ok".

function runOrigins() {
  const HELLO = Buffer.from('hello');
  const OK = Buffer.from('ok');
  const servers = [0, 1, 2].map(() => {
    const server = http.createServer((req, res) => {
      req.resume();
      const body = req.url === '/healthz' ? OK : HELLO;
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
      res.end(body);
    });
    server.keepAliveTimeout = 65_000;
    server.on('clientError', (_err, socket) => socket.destroy());
    return server;
  });
  void Promise.all(servers.map((s) => new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve(s.address().port))))).then((ports) => {
    process.send({ type: 'ready', ports });
  });
  process.on('disconnect', () => process.exit(0));
}

// ---------------------------------------------------------------------------------------------------------------
// The driver.

async function main() {
  const DURATION = number('BENCH_DURATION', 5);
  const WARMUP = number('BENCH_WARMUP', 1);
  const ROUNDS = Math.max(1, Math.round(number('BENCH_ROUNDS', 3)));
  const CONNECTIONS = Math.max(1, Math.round(number('BENCH_CONNECTIONS', 50)));
  const ACCESS_LOG = process.env.BENCH_ACCESS_LOG === '1';
  const PREWARM = number('BENCH_PREWARM', 3);
  if (!existsSync(CLI)) {
    process.stderr.write(`${CLI} not found: run \`npm run build\` first\n`);
    process.exit(2);
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'ballast-bench-workers-'));
  const children = new Set();
  const cleanup = () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  };
  process.on('exit', cleanup);
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.on(signal, () => {
      cleanup();
      process.exit(130);
    });
  }

  try {
    const origins = fork(fileURLToPath(import.meta.url), ['--origins'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.add(origins);
    const { ports } = await message(origins, 'ready', 10_000);

    const targets = [];
    for (const workers of [1, 2]) {
      const port = await freePort();
      const adminPort = await freePort();
      const file = path.join(dir, `workers-${workers}.yaml`);
      writeFileSync(file, config({ workers, port, adminPort, origins: ports, accessLog: ACCESS_LOG }));
      const log = openSync(path.join(dir, `workers-${workers}.log`), 'w');
      const child = spawn(process.execPath, [CLI, '--config', file], { stdio: ['ignore', log, log] });
      children.add(child);
      targets.push({ workers, port, adminPort, child, log: path.join(dir, `workers-${workers}.log`), runs: [] });
    }
    for (const t of targets) await ready(t, 20_000);

    process.stdout.write(`Ballast workers: 1 vs 2 — GET / ("hello"), keep-alive, ${CONNECTIONS} connections, ${DURATION}s measured after ${WARMUP}s warm-up, ${ROUNDS} round(s), access log ${ACCESS_LOG ? 'on' : 'off'}\n`);
    process.stdout.write(`machine: ${(await import('node:os')).availableParallelism()} cores, Node ${process.version}\n\n`);
    // Once per target: JIT-warm every process (each worker compiles its own code) before anything is measured.
    for (const t of targets) if (PREWARM > 0) await measure(t, { duration: PREWARM, warmup: 0, connections: CONNECTIONS }, children);
    for (let round = 1; round <= ROUNDS; round++) {
      for (const t of round % 2 === 1 ? targets : [...targets].reverse()) {
        const run = await measure(t, { duration: DURATION, warmup: WARMUP, connections: CONNECTIONS, originsPid: origins.pid }, children);
        t.runs.push(run);
        process.stdout.write(
          `round ${round}  workers: ${t.workers}  ${fmt(run.rps, 0).padStart(7)} req/s  p50 ${fmt(run.p50, 2)} ms  p99 ${fmt(run.p99, 2)} ms  ` +
            `CPU cores: proxy ${fmt(run.cpuCores, 2)}, load gen ${fmt(run.loadGenCores, 2)}, origins ${fmt(run.originCores, 2)}  errors ${run.errors + run.timeouts}  non-2xx ${run.non2xx}\n`,
        );
      }
    }

    const median = (t) => [...t.runs].sort((a, b) => a.rps - b.rps)[Math.floor((t.runs.length - 1) / 2)];
    const [one, two] = targets.map(median);
    process.stdout.write('\n| workers | req/s | p50 ms | p99 ms | proxy CPU (cores) | proxy CPU µs/req | load gen CPU (cores) | origins CPU (cores) | errors |\n|---|---|---|---|---|---|---|---|---|\n');
    for (const [t, r] of [[targets[0], one], [targets[1], two]]) {
      process.stdout.write(
        `| ${t.workers} | ${fmt(r.rps, 0)} | ${fmt(r.p50, 2)} | ${fmt(r.p99, 2)} | ${fmt(r.cpuCores, 2)} | ${fmt(r.cpuUsPerReq, 1)} | ${fmt(r.loadGenCores, 2)} | ${fmt(r.originCores, 2)} | ${r.errors + r.timeouts + r.non2xx} |\n`,
      );
    }
    process.stdout.write(`\nratio workers 2 / workers 1 (median rounds): ${fmt(two.rps / one.rps, 2)}× req/s\n`);

    for (const t of targets) {
      t.child.kill('SIGTERM');
      await exit(t.child, 20_000);
    }
    rmSync(dir, { recursive: true, force: true });
  } finally {
    cleanup();
  }
}

function config({ workers, port, adminPort, origins, accessLog }) {
  return `
admin: { listen: 127.0.0.1:${adminPort} }
logging: { level: info, access_log: ${accessLog} }
workers: ${workers}
shutdown: { drain_timeout: 2s }
listeners:
  - name: bench
    listen: 127.0.0.1:${port}
    routes:
      - upstream: origins
upstreams:
  - name: origins
    balance: round-robin
    servers:
${origins.map((p) => `      - { address: 127.0.0.1:${p} }`).join('\n')}
`;
}

/** One warm-up plus measured run from a fresh load-generator process; CPU of the proxy's process tree over the measured part. */
async function measure(target, { duration, warmup, connections, originsPid }, children) {
  const load = fork(path.join(HERE, 'load.mjs'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(load);
  const pids = processTree(target.child.pid);
  let cpuBefore;
  let originsBefore;
  let startedAt;
  const result = new Promise((resolve, reject) => {
    load.on('message', (m) => {
      if (m?.type === 'measuring') {
        cpuBefore = cpuTicks(pids);
        originsBefore = originsPid === undefined ? 0 : cpuTicks([originsPid]);
        startedAt = performance.now();
      } else if (m?.type === 'result') resolve(m.result);
      else if (m?.type === 'error') reject(new Error(m.error));
    });
    load.on('exit', (code) => reject(new Error(`load generator exited with ${code}`)));
  });
  load.send({ kind: 'autocannon', url: `http://127.0.0.1:${target.port}`, path: '/', method: 'GET', connections, duration, warmup });
  const r = await withTimeout(result, (duration + warmup) * 1000 + 30_000, 'load generator');
  const seconds = (performance.now() - startedAt) / 1000;
  const cpuMs = ((cpuTicks(pids) - cpuBefore) * 1000) / CLOCK_TICKS;
  const originsMs = originsPid === undefined ? NaN : ((cpuTicks([originsPid]) - originsBefore) * 1000) / CLOCK_TICKS;
  children.delete(load);
  return {
    ...r,
    cpuCores: cpuMs / 1000 / seconds,
    cpuUsPerReq: (cpuMs * 1000) / Math.max(1, r.requests),
    loadGenCores: r.loadGenCpuMs / 1000 / r.seconds,
    originCores: originsMs / 1000 / seconds,
  };
}

/** `pid` and its descendants (the cluster workers), from /proc. */
function processTree(pid) {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    try {
      const children = readFileSync(`/proc/${out[i]}/task/${out[i]}/children`, 'utf8').trim();
      if (children) out.push(...children.split(/\s+/).map(Number));
    } catch {
      // not Linux, or gone
    }
  }
  return out;
}

/** utime + stime of every pid, in clock ticks; 0 where /proc cannot tell. */
function cpuTicks(pids) {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // gone
    }
  }
  return ticks;
}

/** Polls /ready on the admin port until 200 (the cluster primary answers it once its workers serve). */
async function ready(target, timeoutMs) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (target.child.exitCode !== null) throw new Error(`workers: ${target.workers} exited (${target.child.exitCode}); see ${target.log}`);
    const status = await new Promise((resolve) => {
      const req = http.get({ host: '127.0.0.1', port: target.adminPort, path: '/ready', agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode);
      });
      req.on('error', () => resolve(0));
    });
    if (status === 200) return;
    if (Date.now() > until) throw new Error(`workers: ${target.workers} not ready within ${timeoutMs} ms; see ${target.log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function message(child, type, timeoutMs) {
  return withTimeout(
    new Promise((resolve, reject) => {
      child.on('message', (m) => m?.type === type && resolve(m));
      child.on('exit', (code) => reject(new Error(`child exited with ${code}`)));
    }),
    timeoutMs,
    type,
  );
}

function exit(child, timeoutMs) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return withTimeout(new Promise((resolve) => child.once('exit', resolve)), timeoutMs, 'exit').catch(() => child.kill('SIGKILL'));
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([promise, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}

async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function number(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const v = Number(raw);
  return Number.isFinite(v) && v >= 0 ? v : fallback;
}

function fmt(x, digits) {
  return Number.isFinite(x) ? x.toFixed(digits) : '—';
}
