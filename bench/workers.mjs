/**
 * `workers: 1` against `workers: 2`: what a request costs in CPU, beside req/s, on new connections and on keep-alive,
 * side by side in one run, and how evenly the kernel spreads connections over the two workers. The compiled CLI
 * (`node dist/cli.js --config F`), as a user runs it, in front of three origins.
 *
 *   npm run build && node bench/workers.mjs
 *   BENCH_ROUNDS=5 BENCH_DURATION=5 node bench/workers.mjs
 *   /path/to/node22 bench/workers.mjs          # Ballast runs on the Node that runs this file (process.execPath)
 *
 * Loads (wrk, one thread, `GET /` answered "hello"): `newconn`, a new TCP connection per request (`-H "Connection:
 * close"`, 32 connections), the load of issue #18's table; `keepalive`, 50 keep-alive connections. Without wrk on
 * PATH, bench/load.mjs stands in (a node:http client with `agent: false`, and autocannon), at a higher CPU cost.
 *
 * Rounds: each round measures every load on both targets, the order of the targets alternating from one round to the
 * next, so drift on a shared machine falls on both. Reported per load and target: the median round; and the ratio of
 * `workers: 2` to `workers: 1` CPU per request, round by round (the two measured back to back) and its median.
 *
 * CPU per request is the user + system time (from /proc/PID/stat) of every Ballast process — the primary and its
 * workers for `workers: 2` — over the measured seconds, divided by the requests wrk counted. The primary's own share
 * is shown apart: it accepts no connection, so it should be near zero. The spread is each worker's share of the
 * requests (its access lines, `worker` on each, counted over the measured seconds) and of the workers' CPU. The
 * origins' and wrk's CPU are measured too (wrk's from the shell's `times`), and so is CPU used by processes outside
 * the benchmark (from /proc/stat): a round where that exceeded 0.15 cores is marked †.
 *
 * Two more targets on request, measured in the same alternating rounds: BENCH_BASE_DIST=/path/to/dist adds
 * `workers: 2` of another build (say, the one before #18, whose primary accepted and handed connections out;
 * BENCH_BASE_LABEL names it in the output), and
 * BENCH_REFERENCE=1 adds node:http answering "hello" itself, one process against two that accept the way Ballast's
 * workers do here: what two processes cost on this machine with no proxy at all.
 *
 * Environment: BENCH_DURATION (seconds per measurement, 5), BENCH_WARMUP (seconds of load before each, 1),
 * BENCH_PREWARM (seconds of each load every target gets once before the first round, 2), BENCH_ROUNDS (3),
 * BENCH_LOADS (newconn,keepalive), BENCH_NEWCONN_CONNECTIONS (32), BENCH_KEEPALIVE_CONNECTIONS (50),
 * BENCH_ACCESS_LOG (1: on, as Ballast's default, written to a file; 0: off, and the spread is the CPU share only),
 * BENCH_QUIET_WAIT (seconds, 30: before each measurement, wait up to this long for processes outside the benchmark
 * to use less than 0.15 cores; a measurement they disturbed anyway is taken again, once),
 * BENCH_WRITE (1: write bench/results/workers-node<major>.json and the workers section of bench/RESULTS.md).
 * Only 127.0.0.1 is contacted; every child is killed on the way out; every load is bounded in time.
 */
import { fork, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync, readSync, closeSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLK_TCK, FOREIGN_LIMIT, processTree, systemBusyMs, ticksOf } from './proc-cpu.mjs';
import { parseWrk as parseWrkOutput } from './wrk-output.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CLI = path.resolve(HERE, '..', 'dist', 'cli.js');

if (process.argv.includes('--origins')) runOrigins();
else if (process.argv.includes('--bare')) await runBare();
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
// The reference: node:http answering "hello" itself, in BARE_PROCESSES processes that accept as Ballast's workers do
// on this Node (a socket each with SO_REUSEPORT, else one socket shared through SCHED_NONE).

async function runBare() {
  const cluster = (await import('node:cluster')).default;
  const processes = Number(process.env.BARE_PROCESSES ?? 1);
  const port = Number(process.env.BARE_PORT);
  const reusePort = process.env.BARE_REUSEPORT === '1';
  if (processes > 1 && cluster.isPrimary) {
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    for (let i = 0; i < processes; i++) cluster.fork();
    process.on('SIGTERM', () => process.exit(0));
    return;
  }
  const HELLO = Buffer.from('hello');
  const server = http.createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': HELLO.length });
    res.end(HELLO);
  });
  server.keepAliveTimeout = 65_000;
  server.listen({ host: '127.0.0.1', port, ...(reusePort && processes > 1 ? { reusePort: true, exclusive: true } : {}) });
}

// ---------------------------------------------------------------------------------------------------------------
// The driver.

async function main() {
  const DURATION = number('BENCH_DURATION', 5);
  const WARMUP = number('BENCH_WARMUP', 1);
  const PREWARM = number('BENCH_PREWARM', 2);
  const ROUNDS = Math.max(1, Math.round(number('BENCH_ROUNDS', 3)));
  const ACCESS_LOG = process.env.BENCH_ACCESS_LOG !== '0';
  const WRITE = process.env.BENCH_WRITE === '1';
  const QUIET_WAIT = number('BENCH_QUIET_WAIT', 30);
  const BASE_DIST = process.env.BENCH_BASE_DIST || undefined;
  const BASE_LABEL = process.env.BENCH_BASE_LABEL || 'the build in BENCH_BASE_DIST';
  const REFERENCE = process.env.BENCH_REFERENCE === '1';
  const LOADS = {
    newconn: { name: 'newconn', title: 'new connection per request', connections: Math.max(1, Math.round(number('BENCH_NEWCONN_CONNECTIONS', 32))), close: true },
    keepalive: { name: 'keepalive', title: 'keep-alive', connections: Math.max(1, Math.round(number('BENCH_KEEPALIVE_CONNECTIONS', 50))), close: false },
  };
  const loads = (process.env.BENCH_LOADS ?? 'newconn,keepalive').split(',').map((n) => {
    const load = LOADS[n.trim()];
    if (load === undefined) throw new Error(`BENCH_LOADS: unknown load ${n} (known: ${Object.keys(LOADS).join(', ')})`);
    return load;
  });
  if (!existsSync(CLI)) {
    process.stderr.write(`${CLI} not found: run \`npm run build\` first\n`);
    process.exit(2);
  }
  const wrk = onPath('wrk');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ballast-bench-workers-'));
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

    // Ballast's two, then the optional ones; `pair` is the target whose CPU per request each is compared with.
    const specs = [
      { key: 'ballast-1', label: 'Ballast, workers: 1', workers: 1, cli: CLI },
      { key: 'ballast-2', label: 'Ballast, workers: 2', workers: 2, cli: CLI, pair: 'ballast-1' },
    ];
    if (BASE_DIST !== undefined) specs.push({ key: 'base-2', label: 'Ballast, workers: 2, base build', workers: 2, cli: path.resolve(BASE_DIST, 'cli.js'), pair: 'ballast-1' });
    if (REFERENCE) {
      specs.push({ key: 'bare-1', label: 'node:http, 1 process', workers: 1, bare: true });
      specs.push({ key: 'bare-2', label: 'node:http, 2 processes', workers: 2, bare: true, pair: 'bare-1' });
    }
    const reusePort = nodeHasReusePort();
    const targets = [];
    for (const spec of specs) {
      const port = await freePort();
      const adminPort = await freePort();
      const log = path.join(dir, `${spec.key}.log`);
      const fd = openSync(log, 'w');
      let child;
      if (spec.bare) {
        const env = { ...process.env, BARE_PROCESSES: String(spec.workers), BARE_PORT: String(port), BARE_REUSEPORT: reusePort ? '1' : '0' };
        child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--bare'], { stdio: ['ignore', fd, fd], env });
      } else {
        const file = path.join(dir, `${spec.key}.yaml`);
        writeFileSync(file, config({ workers: spec.workers, port, adminPort, origins: ports, accessLog: ACCESS_LOG }));
        child = spawn(process.execPath, [spec.cli, '--config', file], { stdio: ['ignore', fd, fd] });
      }
      closeSync(fd);
      children.add(child);
      targets.push({ ...spec, port, adminPort, child, log, runs: new Map(loads.map((l) => [l.name, []])) });
    }
    for (const t of targets) await ready(t, 20_000);
    const ctx = { wrk, children, originsPid: origins.pid, quietWait: QUIET_WAIT };
    const accept = acceptOf(targets[1]);

    const header = [
      `Ballast workers: 1 vs 2 — GET / ("hello") through three origins; loads: ${loads.map((l) => `${l.name} (${l.title}, ${l.connections} connections)`).join(', ')}`,
      `${DURATION}s measured after ${WARMUP}s warm-up, ${ROUNDS} round(s), targets alternating; access log ${ACCESS_LOG ? 'on (to a file)' : 'off'}; load from ${wrk ? 'wrk -t1' : 'bench/load.mjs (wrk not on PATH)'}`,
      `machine: ${os.availableParallelism()} cores (${os.cpus()[0]?.model ?? 'unknown CPU'}), Node ${process.version}, workers accept: ${accept}`,
      `targets: ${targets.map((t) => t.label + (t.key === 'base-2' ? ` (${BASE_LABEL}; accept: ${acceptOf(t)})` : '')).join('; ')}`,
    ];
    process.stdout.write(`${header.join('\n')}\n\n`);

    // Once per target and load: JIT-warm every process (each worker compiles its own code) before anything is measured.
    if (PREWARM > 0) for (const t of targets) for (const load of loads) await measure(t, load, { duration: PREWARM, warmup: 0 }, ctx);
    for (let round = 1; round <= ROUNDS; round++) {
      for (const load of loads) {
        for (const t of round % 2 === 1 ? targets : [...targets].reverse()) {
          const run = await measure(t, load, { duration: DURATION, warmup: WARMUP }, ctx);
          t.runs.get(load.name).push(run);
          process.stdout.write(`round ${round}  ${load.name.padEnd(9)}  ${line(t, run)}\n`);
          if (run.remeasured) process.stdout.write(`         (measured again: other work used ${fmt(run.firstForeignCores, 2)} cores during the first try)\n`);
        }
      }
    }

    const summary = loads.map((load) => summarise(load, targets));
    const write = { report: { date: new Date().toISOString(), node: process.version, cores: os.availableParallelism(), cpu: os.cpus()[0]?.model, accept, settings: { duration: DURATION, warmup: WARMUP, prewarm: PREWARM, rounds: ROUNDS, accessLog: ACCESS_LOG, quietWait: QUIET_WAIT, base: BASE_DIST === undefined ? null : BASE_LABEL, reference: REFERENCE, loadGenerator: wrk ? 'wrk -t1' : 'bench/load.mjs' }, loads: summary } };
    process.stdout.write(`\n${table(summary)}\n`);

    if (WRITE) {
      const { report } = write;
      const major = process.versions.node.split('.')[0];
      const json = path.join(HERE, 'results', `workers-node${major}.json`);
      writeFileSync(json, `${JSON.stringify(report, null, 2)}\n`);
      writeResultsSection(header, summary);
      process.stdout.write(`\nwrote ${path.relative(process.cwd(), json)} and the workers section of bench/RESULTS.md\n`);
    }

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

/** How the workers of `workers: 2` accept, from its `cluster ready` line. */
function acceptOf(target) {
  for (const l of readFileSync(target.log, 'utf8').split('\n')) {
    if (!l.includes('"cluster ready"')) continue;
    try {
      return JSON.parse(l).accept ?? 'hand-off (no `accept` in its `cluster ready`: a build from before #18)';
    } catch {
      // not JSON
    }
  }
  return 'unknown';
}

// ---------------------------------------------------------------------------------------------------------------
// One measurement.

/**
 * `measureOnce`, after waiting (up to ctx.quietWait seconds) for a quiet machine; taken again, once, if other work
 * used more than FOREIGN_LIMIT cores during it anyway (the less disturbed of the two is kept).
 */
async function measure(target, load, options, ctx) {
  await waitForQuiet(ctx);
  const first = await measureOnce(target, load, options, ctx);
  if (ctx.quietWait <= 0 || first.foreignCores <= FOREIGN_LIMIT) return first;
  await waitForQuiet(ctx);
  const second = await measureOnce(target, load, options, ctx);
  const kept = second.foreignCores <= first.foreignCores ? second : first;
  return { ...kept, remeasured: true, firstForeignCores: first.foreignCores };
}

/** Waits until processes outside the benchmark use less than FOREIGN_LIMIT cores over a second, or ctx.quietWait passes. */
async function waitForQuiet(ctx) {
  const until = Date.now() + ctx.quietWait * 1000;
  for (;;) {
    // Between measurements only the targets' idle timers and the origins run: all the busy CPU there is, is foreign.
    const s0 = systemBusyMs();
    const t0 = performance.now();
    await sleep(1000);
    const foreign = (systemBusyMs() - s0) / (performance.now() - t0);
    if (foreign < FOREIGN_LIMIT || Date.now() > until) return;
  }
}

/** A warm-up, then `duration` seconds of `load` against `target`, with the CPU of every process involved around it. */
async function measureOnce(target, load, { duration, warmup }, ctx) {
  const url = `http://127.0.0.1:${target.port}/`;
  if (warmup > 0) await generate(load, url, warmup, ctx);
  const ballastPids = processTree(target.child.pid);
  const before = snapshot(ballastPids, ctx.originsPid);
  const logFrom = statSync(target.log).size;
  const r = await generate(load, url, duration, ctx);
  const after = snapshot(ballastPids, ctx.originsPid);
  // Access lines are handed to the log in batches at most 50 ms apart.
  await sleep(150);
  const served = target.workers > 1 && !target.bare ? accessCounts(target.log, logFrom) : new Map();

  const wallS = (after.at - before.at) / 1000;
  const ms = (pid) => ((after.ticks.get(pid) ?? 0) - (before.ticks.get(pid) ?? 0)) * (1000 / CLK_TCK);
  const primaryPid = target.child.pid;
  const workerPids = ballastPids.filter((p) => p !== primaryPid);
  const ballastMs = ballastPids.reduce((a, p) => a + ms(p), 0);
  const workerMs = workerPids.map(ms);
  const workerCpuTotal = workerMs.reduce((a, b) => a + b, 0);
  const origins = ms(ctx.originsPid);
  const self = after.self - before.self;
  const system = after.system - before.system;
  const foreign = Math.max(0, system - ballastMs - origins - self - r.loadGenCpuMs) / 1000 / wallS;
  const requests = Math.max(1, r.requests);
  return {
    rps: r.rps,
    requests: r.requests,
    errors: r.errors,
    p50: r.p50,
    p99: r.p99,
    cpuUsPerReq: (ballastMs * 1000) / requests,
    primaryUsPerReq: target.workers > 1 ? (ms(primaryPid) * 1000) / requests : NaN,
    ballastCores: ballastMs / 1000 / wallS,
    loadGenCores: r.loadGenCpuMs / 1000 / r.seconds,
    originCores: origins / 1000 / wallS,
    foreignCores: foreign,
    workerCpuShare: target.workers > 1 ? workerMs.map((w) => w / Math.max(1e-9, workerCpuTotal)) : [],
    workerRequestShare: shares(served),
  };
}

/** Each worker's share of the access lines counted, in worker-id order. */
function shares(counts) {
  const total = [...counts.values()].reduce((a, b) => a + b, 0);
  return [...counts.entries()].sort((a, b) => a[0] - b[0]).map(([, n]) => n / Math.max(1, total));
}

/** Access lines per worker id written to `file` after byte `from`. */
function accessCounts(file, from) {
  const counts = new Map();
  const size = statSync(file).size;
  if (size <= from) return counts;
  const fd = openSync(file, 'r');
  const buf = Buffer.alloc(size - from);
  readSync(fd, buf, 0, buf.length, from);
  closeSync(fd);
  const text = buf.toString('utf8');
  const re = /"worker":(\d+)[^\n]*"kind":"access"|"kind":"access"[^\n]*"worker":(\d+)/g;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const w = Number(m[1] ?? m[2]);
    counts.set(w, (counts.get(w) ?? 0) + 1);
  }
  return counts;
}

/** Run the load generator for `seconds`: wrk through `sh -c '…; times'` (so its CPU is known), or bench/load.mjs. */
function generate(load, url, seconds, ctx) {
  if (ctx.wrk) return runWrk(load, url, seconds, ctx);
  return runLoadMjs(load, url, seconds, ctx);
}

function runWrk(load, url, seconds, ctx) {
  const argv = ['-t1', `-c${load.connections}`, `-d${seconds}s`, '--latency', '--timeout', '10s', ...(load.close ? ['-H', "'Connection: close'"] : []), url];
  return new Promise((resolve, reject) => {
    const cp = spawn('sh', ['-c', `${ctx.wrk} ${argv.join(' ')}; status=$?; times; exit $status`], { stdio: ['ignore', 'pipe', 'pipe'] });
    ctx.children.add(cp);
    let out = '';
    cp.stdout.on('data', (c) => (out += c));
    cp.stderr.on('data', (c) => (out += c));
    const timer = setTimeout(() => cp.kill('SIGKILL'), (seconds + 30) * 1000);
    cp.once('exit', (code) => {
      clearTimeout(timer);
      ctx.children.delete(cp);
      if (code !== 0) reject(new Error(`wrk exited ${code}: ${out}`));
      else resolve(parseWrk(out, seconds));
    });
  });
}

/** wrk's figures (wrk-output.mjs); every failure counts as an error here, a non-2xx answer and a timeout too. */
function parseWrk(text, seconds) {
  const r = parseWrkOutput(text, seconds);
  return { requests: r.requests, seconds: r.seconds, rps: r.rps, p50: r.p50, p99: r.p99, errors: r.errors + r.timeouts + r.non2xx, loadGenCpuMs: r.loadGenCpuMs };
}

/** Without wrk: bench/load.mjs (its node:http new-connection client, or autocannon), which reports its own CPU. */
async function runLoadMjs(load, url, seconds, ctx) {
  const child = fork(path.join(HERE, 'load.mjs'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  ctx.children.add(child);
  const result = new Promise((resolve, reject) => {
    child.on('message', (m) => {
      if (m?.type === 'result') resolve(m.result);
      else if (m?.type === 'error') reject(new Error(m.error));
    });
    child.on('exit', (code) => reject(new Error(`load generator exited with ${code}`)));
  });
  child.send({ kind: load.close ? 'newconn' : 'autocannon', url: url.slice(0, -1), path: '/', method: 'GET', connections: load.connections, duration: seconds, warmup: 0, maxRequests: 1e9 });
  const r = await withTimeout(result, seconds * 1000 + 30_000, 'load generator');
  ctx.children.delete(child);
  return { requests: r.requests, seconds: r.seconds, rps: r.rps, p50: r.p50, p99: r.p99, errors: (r.errors ?? 0) + (r.timeouts ?? 0) + (r.non2xx ?? 0), loadGenCpuMs: r.loadGenCpuMs };
}

// ---------------------------------------------------------------------------------------------------------------
// CPU from /proc (processTree, ticksOf, systemBusyMs: proc-cpu.mjs).

function snapshot(ballastPids, originsPid) {
  const ticks = new Map([...ballastPids, originsPid].map((p) => [p, ticksOf(p)]));
  const self = process.cpuUsage();
  return { at: performance.now(), ticks, self: (self.user + self.system) / 1000, system: systemBusyMs() };
}

// ---------------------------------------------------------------------------------------------------------------
// Reporting.

function line(t, r) {
  const requests = r.workerRequestShare.length > 0 ? `requests ${pcts(r.workerRequestShare)}, ` : '';
  const spread = t.workers > 1 ? `  per worker: ${requests}CPU ${pcts(r.workerCpuShare)}  primary ${fmt(r.primaryUsPerReq, 2)} µs/req` : '';
  return (
    `${t.label.padEnd(33)} ${fmt(r.rps, 0).padStart(6)} req/s  ${fmt(r.cpuUsPerReq, 1).padStart(6)} µs CPU/req  ` +
    `cores: target ${fmt(r.ballastCores, 2)}, wrk ${fmt(r.loadGenCores, 2)}, origins ${fmt(r.originCores, 2)}, other ${fmt(r.foreignCores, 2)}${r.foreignCores > FOREIGN_LIMIT ? ' †' : ''}` +
    `  p99 ${fmt(r.p99, 2)} ms  errors ${r.errors}${spread}`
  );
}

function median(xs) {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/**
 * Per target, the median of its rounds; per target with a `pair`, its CPU per request over the pair's, round by round.
 * Medians leave out the rounds other work disturbed (†), unless every round was: a busy neighbour inflates CPU per
 * request through the caches and the scheduler even when it takes no time of ours.
 */
function summarise(load, targets) {
  const quiet = (r) => r.foreignCores <= FOREIGN_LIMIT;
  const runsOf = (t) => t.runs.get(load.name);
  const of = (runs, k) => median((runs.some(quiet) ? runs.filter(quiet) : runs).map((r) => r[k]));
  const shareMedian = (runs, k) => {
    const n = Math.max(0, ...runs.map((r) => r[k].length));
    return Array.from({ length: n }, (_, i) => median(runs.map((r) => r[k][i] ?? NaN)));
  };
  const sides = targets.map((t) => {
    const runs = runsOf(t);
    const pair = t.pair === undefined ? undefined : targets.find((p) => p.key === t.pair);
    const ratios = pair === undefined ? [] : runs.map((r, i) => ({ ratio: r.cpuUsPerReq / runsOf(pair)[i].cpuUsPerReq, quiet: quiet(r) && quiet(runsOf(pair)[i]) }));
    const counted = ratios.some((x) => x.quiet) ? ratios.filter((x) => x.quiet) : ratios;
    return {
      key: t.key,
      label: t.label,
      workers: t.workers,
      rps: of(runs, 'rps'),
      cpuUsPerReq: of(runs, 'cpuUsPerReq'),
      primaryUsPerReq: of(runs, 'primaryUsPerReq'),
      targetCores: of(runs, 'ballastCores'),
      p99: of(runs, 'p99'),
      errors: runs.reduce((a, r) => a + r.errors, 0),
      workerRequestShare: shareMedian(runs, 'workerRequestShare'),
      workerCpuShare: shareMedian(runs, 'workerCpuShare'),
      disturbedRounds: runs.filter((r) => r.foreignCores > FOREIGN_LIMIT).length,
      ...(pair === undefined
        ? {}
        : {
            pair: pair.key,
            cpuRatio: median(counted.map((x) => x.ratio)),
            quietRounds: ratios.filter((x) => x.quiet).length,
            cpuRatioByRound: ratios.map((x) => ({ ratio: round3(x.ratio), quiet: x.quiet })),
            rpsRatio: of(runs, 'rps') / of(runsOf(pair), 'rps'),
          }),
      rounds: runs.map((r) => ({ rps: Math.round(r.rps), cpuUsPerReq: round1(r.cpuUsPerReq), requestShare: r.workerRequestShare.map(round3), cpuShare: r.workerCpuShare.map(round3), otherCores: round3(r.foreignCores) })),
    };
  });
  return { load: load.name, title: load.title, connections: load.connections, targets: sides };
}

function table(summary) {
  const rows = ['| load | target | req/s | CPU µs/req | ÷ workers: 1 (by round) | target cores | primary µs/req | per-worker requests | per-worker CPU | p99 ms | errors |', '|---|---|---:|---:|---|---:|---:|---|---|---:|---:|'];
  for (const s of summary) {
    for (const t of s.targets) {
      const dagger = t.disturbedRounds > 0 ? ` (${t.disturbedRounds} †)` : '';
      const ratio = t.cpuRatio === undefined ? '–' : `**${fmt(t.cpuRatio, 2)}×** (${t.cpuRatioByRound.map((r) => `${fmt(r.ratio, 2)}${r.quiet ? '' : '†'}`).join(', ')})`;
      const many = t.workers > 1;
      rows.push(
        `| ${s.load} (${s.connections} conns) | ${t.label} | ${fmtInt(t.rps)} | ${fmt(t.cpuUsPerReq, 1)}${dagger} | ${ratio} | ${fmt(t.targetCores, 2)} | ${many ? fmt(t.primaryUsPerReq, 2) : '–'} | ${many && t.workerRequestShare.length > 0 ? pcts(t.workerRequestShare) : '–'} | ${many ? pcts(t.workerCpuShare) : '–'} | ${fmt(t.p99, 2)} | ${t.errors} |`,
      );
    }
  }
  return [
    rows.join('\n'),
    '',
    'Medians over the rounds other work left alone (all of them if it disturbed every one). "÷ workers: 1": CPU per request over that of the one-process target of the same kind (Ballast, or node:http), the median over the rounds in which neither was disturbed, then each round (the two measured back to back). "per-worker requests": each worker\'s share of the access lines; "per-worker CPU": of the workers\' CPU; both over every round. "primary": the cluster primary\'s CPU per request. † a round (or, after a figure, the number of rounds) during which processes outside the benchmark used more than 0.15 cores.',
  ].join('\n');
}

/** Replace (or append) this Node major's workers section of bench/RESULTS.md, between its two markers. */
function writeResultsSection(header, summary) {
  const file = path.join(HERE, 'RESULTS.md');
  const major = process.versions.node.split('.')[0];
  const begin = `<!-- workers, Node ${major}: written by bench/workers.mjs -->`;
  const end = `<!-- /workers, Node ${major} -->`;
  const section = [
    begin,
    `## Workers: \`workers: 1\` against \`workers: 2\` on Node ${process.version}`,
    '',
    `\`${[...Object.entries(process.env).filter(([k]) => k.startsWith('BENCH_') && k !== 'BENCH_BASE_LABEL').map(([k, v]) => `${k}=${k === 'BENCH_BASE_DIST' ? '…' : v}`).sort(), 'node bench/workers.mjs'].join(' ')}\` on ${new Date().toISOString().slice(0, 10)}:`,
    '',
    ...header.map((h) => `- ${h}`),
    '',
    table(summary),
    end,
  ].join('\n');
  const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const at = text.indexOf(begin);
  const until = text.indexOf(end);
  const next = at >= 0 && until > at ? text.slice(0, at) + section + text.slice(until + end.length) : `${text.trimEnd()}\n\n${section}\n`;
  writeFileSync(file, next);
}

function pcts(xs) {
  return xs.length === 0 ? '–' : xs.map((x) => `${fmt(x * 100, 0)}%`).join(' / ');
}

// ---------------------------------------------------------------------------------------------------------------
// Plumbing.

/** Polls /ready on the admin port until 200 (the cluster primary answers it once its workers serve); `GET /` for node:http. */
async function ready(target, timeoutMs) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (target.child.exitCode !== null) throw new Error(`${target.label} exited (${target.child.exitCode}); see ${target.log}`);
    const status = await new Promise((resolve) => {
      const where = target.bare ? { port: target.port, path: '/' } : { port: target.adminPort, path: '/ready' };
      const req = http.get({ host: '127.0.0.1', ...where, agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode);
      });
      req.on('error', () => resolve(0));
    });
    if (status === 200) return;
    if (Date.now() > until) throw new Error(`${target.label} not ready within ${timeoutMs} ms; see ${target.log}`);
    await sleep(100);
  }
}

/** Whether this Node has `reusePort` for net listeners (22.12 and later in 22, 23.1 and later). */
function nodeHasReusePort() {
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  return major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
}

function onPath(bin) {
  const r = spawnSync('sh', ['-c', `command -v ${bin}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
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

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
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

function fmtInt(x) {
  return Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '—';
}

function round1(x) {
  return Math.round(x * 10) / 10;
}

function round3(x) {
  return Math.round(x * 1000) / 1000;
}
