/**
 * Memory under two loads, read from /proc/<pid>/status (VmRSS) of the Ballast process:
 *   1. BENCH_IDLE_CONNECTIONS (default 10,000) client keep-alive connections, each after one request, held idle;
 *   2. a soak of BENCH_SOAK_REQUESTS (default 1,000,000) small keep-alive GETs over 50 connections, RSS sampled
 *      as it goes, to show whether it grows with the request count.
 * Ballast runs compiled (dist/, `npm run build` first) as `node dist/cli.js --config <temp file>`, in front of three
 * bench/origin.mjs processes; the load comes from this process. Only 127.0.0.1; every phase is bounded.
 *
 *   node bench/memory.mjs          # writes bench/results/memory.json and prints a table
 */
import { fork, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync, mkdirSync } from 'node:fs';
import { connect } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const IDLE = Number(process.env.BENCH_IDLE_CONNECTIONS ?? 10_000);
const SOAK = Number(process.env.BENCH_SOAK_REQUESTS ?? 1_000_000);
const SOAK_LIMIT_S = Number(process.env.BENCH_SOAK_MAX_SECONDS ?? 240);
const children = new Set();
const tmp = mkdtempSync(path.join(os.tmpdir(), 'ballast-memory-'));

function cleanup() {
  for (const c of children) c.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => process.exit(130));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const rssMiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;

async function origin(name) {
  const cp = fork(path.join(HERE, 'origin.mjs'), [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  children.add(cp);
  const [m] = await new Promise((resolve) => cp.once('message', (...a) => resolve(a)));
  return m.port;
}

async function freePort() {
  const { createServer } = await import('node:net');
  const s = createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

async function startBallast(originPorts) {
  const port = await freePort();
  const file = path.join(tmp, 'ballast.yaml');
  writeFileSync(file, `
admin: { listen: 127.0.0.1:0 }
logging: { level: warn, access_log: false }
listeners:
  - name: bench
    listen: 127.0.0.1:${port}
    client: { keep_alive_timeout: 10m, max_connections: ${IDLE + 1000} }
    routes: [{ upstream: origins }]
upstreams:
  - name: origins
    servers:
${originPorts.map((p) => `      - { address: 127.0.0.1:${p} }`).join('\n')}
`);
  const cp = spawn(process.execPath, [path.join(HERE, '..', 'dist', 'cli.js'), '--config', file], { stdio: ['ignore', 'inherit', 'inherit'] });
  children.add(cp);
  for (let i = 0; i < 100; i++) {
    const ok = await fetch(`http://127.0.0.1:${port}/`).then((r) => r.ok, () => false);
    if (ok) return { pid: cp.pid, port };
    await sleep(100);
  }
  throw new Error('Ballast did not start');
}

/** Open `n` connections, send one GET on each, read its response, and keep the socket open and idle. */
async function holdIdle(port, n) {
  const sockets = [];
  const one = () =>
    new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1');
      s.setNoDelay(true);
      s.once('error', reject);
      s.once('connect', () => s.write('GET / HTTP/1.1\r\nHost: bench\r\n\r\n'));
      s.once('data', () => resolve(s));
    });
  for (let i = 0; i < n; i += 200) {
    const batch = await Promise.all(Array.from({ length: Math.min(200, n - i) }, one));
    sockets.push(...batch);
  }
  return sockets;
}

async function soak(port, pid, amount) {
  const samples = [];
  let done = 0;
  const started = Date.now();
  const instance = autocannon({ url: `http://127.0.0.1:${port}/`, connections: 50, amount, duration: SOAK_LIMIT_S });
  instance.on('response', () => done++);
  const timer = setInterval(() => samples.push({ requests: done, seconds: (Date.now() - started) / 1000, rssMiB: rssMiB(pid) }), 2000);
  const result = await instance;
  clearInterval(timer);
  samples.push({ requests: done, seconds: (Date.now() - started) / 1000, rssMiB: rssMiB(pid) });
  return { result, samples };
}

const origins = await Promise.all([1, 2, 3].map((i) => origin(`origin-${i}`)));
const { pid, port } = await startBallast(origins);
await autocannon({ url: `http://127.0.0.1:${port}/`, connections: 50, duration: 2 });
await sleep(1000);
const baseline = rssMiB(pid);

const idleStarted = Date.now();
const sockets = await holdIdle(port, IDLE);
await sleep(3000);
const withIdle = rssMiB(pid);
const idleSeconds = (Date.now() - idleStarted) / 1000;
for (const s of sockets) s.destroy();
await sleep(3000);
const afterIdle = rssMiB(pid);

const { result, samples } = await soak(port, pid, SOAK);
const tenth = samples.find((s) => s.requests >= SOAK / 10) ?? samples[0];
const last = samples[samples.length - 1];

const report = {
  date: new Date().toISOString(),
  node: process.version,
  cores: os.availableParallelism(),
  idle: { connections: IDLE, baselineMiB: baseline, withIdleMiB: withIdle, perConnectionKiB: ((withIdle - baseline) * 1024) / IDLE, afterCloseMiB: afterIdle, seconds: idleSeconds },
  soak: {
    requests: result.requests.total,
    errors: result.errors,
    non2xx: result.non2xx,
    seconds: result.duration,
    reqPerSec: result.requests.average,
    rssAtTenthMiB: tenth.rssMiB,
    rssAtEndMiB: last.rssMiB,
    rssMaxMiB: Math.max(...samples.map((s) => s.rssMiB)),
    samples,
  },
};
mkdirSync(path.join(HERE, 'results'), { recursive: true });
writeFileSync(path.join(HERE, 'results', 'memory.json'), `${JSON.stringify(report, null, 2)}\n`);
const f = (x) => x.toFixed(1);
console.log(`Ballast RSS (MiB), Node ${process.version}, ${os.availableParallelism()} cores`);
console.log(`  baseline after warm-up              ${f(baseline)}`);
console.log(`  ${IDLE} idle keep-alive connections   ${f(withIdle)}  (+${f(report.idle.perConnectionKiB)} KiB each)`);
console.log(`  after they closed                    ${f(afterIdle)}`);
console.log(`  soak: ${report.soak.requests} requests in ${report.soak.seconds} s (${Math.round(report.soak.reqPerSec)} req/s), errors ${report.soak.errors}, non-2xx ${report.soak.non2xx}`);
console.log(`  soak RSS at ${tenth.requests} requests   ${f(tenth.rssMiB)}`);
console.log(`  soak RSS at the end                  ${f(last.rssMiB)}  (max ${f(report.soak.rssMaxMiB)})`);
process.exit(0);
