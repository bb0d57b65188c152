/**
 * Ballast benchmark: the same load, in the same run, against Ballast and its peers.
 *
 *   npm run bench                                   full run: writes bench/results/latest.json and bench/RESULTS.md
 *   BENCH_DURATION=1 node bench/run.js --only small-50            quick smoke test (writes bench/results/filtered.json)
 *   node bench/run.js --only small-50,new-conn --targets ballast,nginx
 *   node bench/run.js --only tcp-relay              the layer-4 scenario alone (bench/tcp.mjs, run as a child)
 *   node bench/run.js --profile                     Ballast under `node --cpu-prof` with the small-GET load;
 *                                                   writes bench/results/profile/*.cpuprofile and bench/PROFILE.md
 *   node bench/run.js --render                      rewrite bench/RESULTS.md from bench/results/latest.json
 *
 * Process layout (nothing under test shares an event loop with anything else):
 *   - 3 origins, each its own process (bench/origin.mjs), on 127.0.0.1 ephemeral ports;
 *   - every proxy its own process: Ballast from ../dist (bench/target-ballast.mjs), http-proxy
 *     (bench/target-http-proxy.mjs), @fastify/http-proxy (bench/target-fastify.mjs), and NGINX / HAProxy when they
 *     are on PATH (configs generated into a temp dir; skipped with a note when absent — this script installs nothing);
 *   - the load generator, a fresh process per measurement (bench/load.mjs: autocannon, or the new-connection client;
 *     `wrk -H "Connection: close"` instead for the new-connection scenario when wrk is on PATH).
 * Every child is killed on the way out, also on errors and signals. Only 127.0.0.1 is ever contacted, and every load
 * is bounded in time (and the new-connection client in count too).
 *
 * Environment: BENCH_DURATION (seconds measured, default 4), BENCH_WARMUP (seconds, default 1),
 * BENCH_BASE_DIST (the dist/ of another build: target `ballast-base`, for an A/B against this tree's),
 * BENCH_NEWCONN_MAX (request cap of the new-connection client, default 50000),
 * BENCH_NEWCONN_CLIENT (auto | node | wrk, default auto), BENCH_PROFILE_DURATION (seconds, default 10),
 * BENCH_PROFILE_INTERVAL_US (sampling interval of --cpu-prof, default 250),
 * BENCH_PREWARM (seconds of small-GET load each target gets once, after it starts, so its JIT is warm before the
 * first scenario; default 2), BENCH_ROUNDS (measure every scenario this many times, the targets' order alternating
 * between rounds, and report each target's median round; default 1, and 3 for the paired access-log scenario), BENCH_QUIET_WAIT (seconds, default 0): on a shared machine, wait up to this long before each measurement for other
 * work to stop using the CPU, and measure a run again (once) when other work competed with it.
 */
import { fork, spawn, spawnSync } from 'node:child_process';
import { openSync, closeSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { summarizeProfile, formatSummary } from './profile-summary.mjs';
import { parseWrk as parseWrkOutput } from './wrk-output.mjs';
import { freePort, waitForPort } from './ports.mjs';
import { FOREIGN_LIMIT, selfCpuMs, systemBusyMs, treeCpuMs, waitForQuiet as waitForQuietShared } from './proc-cpu.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');
const RESULTS_DIR = path.join(HERE, 'results');
const require = createRequire(import.meta.url);

// ---------------------------------------------------------------------------------------------------------------
// Settings

const args = parseArgs(process.argv.slice(2));
if (args.help) {
  process.stdout.write(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('*/')[0].replace(/^\/\*\*?|^ \* ?/gm, '') + '\n');
  process.exit(0);
}
const DURATION = positive(process.env.BENCH_DURATION, 4);
const WARMUP = nonNegative(process.env.BENCH_WARMUP, 1);
const NEWCONN_MAX = positive(process.env.BENCH_NEWCONN_MAX, 50_000);
const NEWCONN_CLIENT = process.env.BENCH_NEWCONN_CLIENT ?? 'auto';
const PROFILE_DURATION = positive(process.env.BENCH_PROFILE_DURATION, 10);
const PROFILE_INTERVAL_US = positive(process.env.BENCH_PROFILE_INTERVAL_US, 250);
const QUIET_WAIT = nonNegative(process.env.BENCH_QUIET_WAIT, 0);
const PREWARM = nonNegative(process.env.BENCH_PREWARM, 2);
const ROUNDS = positive(process.env.BENCH_ROUNDS, 1);

/** @typedef {{ name: string, title: string, kind: 'autocannon' | 'newconn' | 'wrk' | 'ws', method: string, path: string, connections: number, bodySize?: number, targets?: string[] }} Scenario */
/** @type {Scenario[]} */
const SCENARIOS = [
  { name: 'small-50', title: 'Small GET ("hello", 5 B), keep-alive, 50 connections', kind: 'autocannon', method: 'GET', path: '/', connections: 50 },
  {
    name: 'small-50-wrk',
    title: 'Small GET ("hello", 5 B), keep-alive, 50 connections, load from wrk',
    kind: 'wrk',
    method: 'GET',
    path: '/',
    connections: 50,
    note: 'The same load as `small-50`, generated by wrk (one thread) instead of autocannon: the load generator of the table in the performance issue. wrk needs about a third of the CPU autocannon needs per request, so more of the second core is left to the proxy and the origins. Skipped when wrk is not on PATH.',
  },
  { name: 'small-500', title: 'Small GET ("hello", 5 B), keep-alive, 500 connections', kind: 'autocannon', method: 'GET', path: '/', connections: 500 },
  { name: 'large-64k', title: '64 KiB responses, keep-alive, 50 connections', kind: 'autocannon', method: 'GET', path: '/64k', connections: 50 },
  {
    name: 'upload-1m',
    title: '1 MiB uploads (POST, drained by the origin), keep-alive, 16 connections',
    kind: 'autocannon',
    method: 'POST',
    path: '/upload',
    connections: 16,
    bodySize: 1024 * 1024,
    note: 'Uploads allocate about 1 MiB of buffers per request in every Node proxy, so when V8 runs its major collections decides a good part of the cost: this scenario varies more between runs than the others (Ballast from 1.1 to 1.7 ms CPU per upload across runs on one quiet machine). Compare several runs before reading much into it.',
  },
  { name: 'new-conn', title: 'Small GET, a new TCP connection per request (`Connection: close`), 32 concurrent', kind: 'newconn', method: 'GET', path: '/', connections: 32 },
  {
    name: 'ws-echo',
    title: 'WebSocket echo: 50 connections, each a 32-byte message and its echo at a time',
    kind: 'ws',
    method: 'GET',
    path: '/ws',
    connections: 50,
    targets: ['ballast', 'direct', 'nginx', 'haproxy', 'http-proxy', 'fastify'],
    note: 'A "request" here is one message and its echo: req/s is messages per second, and the CPU column is per message. The connections are opened before the measurement starts. @fastify/http-proxy relays WebSockets message by message (decoded and sent again) to one origin; the others tunnel the bytes, round robin over the three. The minimal undici proxy has no WebSocket support and is left out.',
  },
  { name: 'rate-limit', title: 'Ballast client.rate_limit ON vs OFF (small GET, keep-alive, 50 connections)', kind: 'autocannon', method: 'GET', path: '/', connections: 50, targets: ['ballast', 'ballast-ratelimit'], rounds: 3, note: 'The ratio columns compare Ballast without a rate limit (the `Ballast` row) with the same build under `client.rate_limit` keyed on the client IP, set so high that nothing is refused: what a token-bucket lookup costs every request. Alternating rounds, median round per row.' },
  { name: 'access-log', title: 'Ballast access log ON vs OFF (small GET, keep-alive, 50 connections)', kind: 'autocannon', method: 'GET', path: '/', connections: 50, targets: ['ballast', 'ballast-accesslog'], rounds: 3, note: 'Here the ratio columns compare Ballast with its access log off (the `Ballast` row) to the same build with it on. The two alternate over 3 rounds (off, on / on, off / off, on) and each row is its median round: one run of a target can differ from its next by 10% or more on this shared 2-core machine (the same Ballast process measured 20,449 and 17,899 req/s in one run), which is as large as the difference being measured.' },
];

/** Table and run order. `scenarios` limits a target to the scenarios that name it. */
const TARGETS = [
  { name: 'ballast', label: 'Ballast' },
  { name: 'ballast-accesslog', label: 'Ballast, access log ON', onlyNamed: true },
  { name: 'ballast-ratelimit', label: 'Ballast, rate_limit ON', onlyNamed: true },
  { name: 'direct', label: 'direct (origin 1, no proxy)' },
  { name: 'nginx', label: 'NGINX' },
  { name: 'haproxy', label: 'HAProxy' },
  { name: 'http-proxy', label: 'http-proxy' },
  { name: 'fastify', label: '@fastify/http-proxy' },
  { name: 'undici-minimal', label: 'minimal undici proxy (reference)' },
  // An A/B against another build: only when --targets names it (and BENCH_BASE_DIST says where that build is).
  { name: 'ballast-base', label: 'Ballast, base build (BENCH_BASE_DIST)', optIn: true },
];
const PEERS_FOR_RATIO = ['ballast-base', 'nginx', 'haproxy', 'http-proxy', 'fastify', 'undici-minimal', 'direct'];

// ---------------------------------------------------------------------------------------------------------------
// Child processes: every one is tracked and killed on the way out, whatever the way out is.

const children = new Set();
let tmpDir;

function track(cp, name) {
  cp.benchName = name;
  // An IPC send racing the child's own exit fails with EPIPE; the exit itself is what matters.
  cp.on('error', (err) => {
    if (err?.code !== 'EPIPE' && err?.code !== 'ERR_IPC_CHANNEL_CLOSED') log(`${name}: ${err.message}`);
  });
  children.add(cp);
  cp.once('exit', () => children.delete(cp));
  return cp;
}

function killAllNow() {
  for (const cp of children) {
    try {
      cp.kill('SIGTERM');
    } catch {
      /* already gone */
    }
  }
}

process.on('exit', () => {
  killAllNow();
  if (tmpDir !== undefined && !process.env.BENCH_KEEP_TMP) rmSync(tmpDir, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    process.stderr.write(`\n${sig}: stopping every child process\n`);
    killAllNow();
    process.exit(130);
  });
}

/** Stop one child politely (IPC `stop`, or SIGTERM), then SIGKILL after `ms`. */
function stopChild(cp, ms = 3000) {
  if (cp.exitCode !== null || cp.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      try {
        cp.kill('SIGKILL');
      } catch {
        /* gone */
      }
    }, ms);
    cp.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    if (cp.connected) cp.send({ type: 'stop' }, (err) => err && cp.kill('SIGTERM'));
    else cp.kill('SIGTERM');
  });
}

/** Fork a bench/*.mjs child whose stdout/stderr go to a log file; resolves with its `ready` message. */
function forkReady(script, name, env, execArgv = []) {
  const logFile = path.join(tmpDir, `${name}.log`);
  const fd = openSync(logFile, 'a');
  const cp = track(fork(path.join(HERE, script), [], { env: { ...process.env, ...env }, stdio: ['ignore', fd, fd, 'ipc'], execArgv, cwd: HERE }), name);
  closeSync(fd);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`${name} did not become ready in 15 s`)), 15_000);
    const fail = (err) => {
      clearTimeout(timer);
      cp.kill('SIGKILL');
      reject(new Error(`${err.message}\n--- ${logFile} ---\n${tail(logFile)}`));
    };
    cp.once('exit', (code, signal) => fail(new Error(`${name} exited (${code ?? signal}) before it was ready`)));
    cp.once('message', (m) => {
      if (m?.type !== 'ready') return fail(new Error(`${name} sent ${JSON.stringify(m)}`));
      clearTimeout(timer);
      cp.removeAllListeners('exit');
      cp.once('exit', () => children.delete(cp));
      resolve({ cp, ...m, logFile });
    });
  });
}

function tail(file, bytes = 2000) {
  try {
    const text = readFileSync(file, 'utf8');
    return text.slice(-bytes);
  } catch {
    return '(no log)';
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Origins and targets

async function startOrigins() {
  const origins = [];
  for (let i = 0; i < 3; i++) origins.push(await forkReady('origin.mjs', `origin-${i + 1}`, {}));
  return origins;
}

function onPath(cmd) {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const file = path.join(dir, cmd);
    try {
      if (statSync(file).isFile()) return file;
    } catch {
      /* not here */
    }
  }
  // Debian puts nginx in /usr/sbin, which a non-root PATH may lack.
  for (const dir of ['/usr/sbin', '/usr/local/sbin', '/sbin']) {
    const file = path.join(dir, cmd);
    if (existsSync(file)) return file;
  }
  return undefined;
}



function nginxConfig(dir, port, originPorts) {
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  return `# generated by bench/run.js
daemon off;
master_process on;
worker_processes 1;
${asRoot ? 'user root;\n' : ''}pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy_temp;
  fastcgi_temp_path ${dir}/fastcgi_temp;
  uwsgi_temp_path ${dir}/uwsgi_temp;
  scgi_temp_path ${dir}/scgi_temp;
  keepalive_timeout 65s;
  keepalive_requests 1000000;
  # WebSocket upgrades pass Connection: upgrade on; everything else gets Connection "" for upstream keep-alive.
  map $http_upgrade $connection_upgrade {
    default upgrade;
    '' '';
  }
  upstream origins {
${originPorts.map((p) => `    server 127.0.0.1:${p};`).join('\n')}
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${port};
    client_max_body_size 16m;
    location / {
      proxy_pass http://origins;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_request_buffering off;
      proxy_buffer_size 16k;
      proxy_buffers 8 16k;
    }
  }
}
`;
}

function haproxyConfig(port, originPorts) {
  return `# generated by bench/run.js
global
  nbthread 1
  maxconn 4096

defaults
  mode http
  option forwardfor
  http-reuse always
  timeout connect 5s
  timeout client 65s
  timeout server 65s
  timeout http-keep-alive 65s
  timeout tunnel 65s

frontend bench
  bind 127.0.0.1:${port}
  default_backend origins

backend origins
  balance roundrobin
${originPorts.map((p, i) => `  server o${i + 1} 127.0.0.1:${p}`).join('\n')}
`;
}

async function spawnServer(name, cmd, argv, port) {
  const logFile = path.join(tmpDir, `${name}.log`);
  const fd = openSync(logFile, 'a');
  const cp = track(spawn(cmd, argv, { stdio: ['ignore', fd, fd], cwd: tmpDir }), name);
  closeSync(fd);
  try {
    await waitForPort(port, cp, name, 10_000);
  } catch (err) {
    await stopChild(cp, 1000);
    throw new Error(`${err.message}\n--- ${logFile} ---\n${tail(logFile)}`);
  }
  return { cp, port, logFile };
}

/** Starts one target; returns { url, stop, info } or { skipped: reason }. */
async function startTarget(name, origins) {
  const originPorts = origins.map((o) => o.port);
  const env = { BENCH_ORIGINS: originPorts.join(',') };
  switch (name) {
    case 'ballast':
    case 'ballast-accesslog':
    case 'ballast-ratelimit': {
      if (!existsSync(path.join(ROOT, 'dist', 'ballast.js'))) throw new Error('dist/ballast.js is missing: run `npm run build` first (npm run bench does)');
      const rateLimit = name === 'ballast-ratelimit';
      const t = await forkReady('target-ballast.mjs', name, { ...env, BENCH_ACCESS_LOG: name === 'ballast-accesslog' ? '1' : '0', BENCH_RATE_LIMIT: rateLimit ? '1' : '0' });
      return { pid: t.cp.pid, url: `http://127.0.0.1:${t.port}`, adminPort: t.adminPort, stop: () => stopChild(t.cp), info: `dist/ from this tree; access_log ${name === 'ballast-accesslog' ? 'on (to a file)' : 'off'}; ${rateLimit ? 'client.rate_limit on (never refusing); ' : ''}metrics on` };
    }
    case 'ballast-base': {
      // An A/B of two builds side by side: BENCH_BASE_DIST is the other build's dist/ (e.g. of the previous commit).
      const base = process.env.BENCH_BASE_DIST;
      if (base === undefined) return { skipped: 'BENCH_BASE_DIST is not set (the dist/ of the build to compare with)' };
      const t = await forkReady('target-ballast.mjs', name, { ...env, BENCH_ACCESS_LOG: '0', BENCH_BALLAST_DIST: base });
      return { pid: t.cp.pid, url: `http://127.0.0.1:${t.port}`, adminPort: t.adminPort, stop: () => stopChild(t.cp), info: `the build in BENCH_BASE_DIST; access_log off; metrics on` };
    }
    case 'direct':
      return { pid: origins[0].cp.pid, url: `http://127.0.0.1:${originPorts[0]}`, stop: async () => {}, info: 'origin 1 itself, no proxy in between' };
    case 'http-proxy': {
      const t = await forkReady('target-http-proxy.mjs', name, env);
      return { pid: t.cp.pid, url: `http://127.0.0.1:${t.port}`, stop: () => stopChild(t.cp), info: `http-proxy ${pkgVersion('http-proxy')}, keep-alive http.Agent, xfwd, round robin` };
    }
    case 'fastify': {
      const t = await forkReady('target-fastify.mjs', name, env);
      return { pid: t.cp.pid, url: `http://127.0.0.1:${t.port}`, stop: () => stopChild(t.cp), info: `fastify ${pkgVersion('fastify')} + @fastify/http-proxy ${pkgVersion('@fastify/http-proxy')} (undici ${pkgVersion('undici')} BalancedPool)` };
    }
    case 'undici-minimal': {
      const t = await forkReady('target-undici-minimal.mjs', name, env);
      return { pid: t.cp.pid, url: `http://127.0.0.1:${t.port}`, stop: () => stopChild(t.cp), info: `node:http + undici ${pkgVersion('undici')} Pool.dispatch, round robin, no features (a reference for what Node itself costs)` };
    }
    case 'nginx': {
      const bin = onPath('nginx');
      if (bin === undefined) return { skipped: 'nginx is not on PATH (apt-get install -y nginx)' };
      const dir = path.join(tmpDir, 'nginx');
      mkdirSync(dir, { recursive: true });
      const port = await freePort();
      const conf = nginxConfig(dir, port, originPorts);
      writeFileSync(path.join(dir, 'nginx.conf'), conf);
      const t = await spawnServer(name, bin, ['-p', dir, '-e', path.join(dir, 'nginx-error.log'), '-c', path.join(dir, 'nginx.conf')], port);
      return { pid: t.cp.pid, url: `http://127.0.0.1:${port}`, stop: () => stopChild(t.cp), info: `${commandVersion(bin, ['-v']).replace(/^nginx version: /, '')}, 1 worker`, config: conf };
    }
    case 'haproxy': {
      const bin = onPath('haproxy');
      if (bin === undefined) return { skipped: 'haproxy is not on PATH (apt-get install -y haproxy)' };
      const port = await freePort();
      const conf = haproxyConfig(port, originPorts);
      const file = path.join(tmpDir, 'haproxy.cfg');
      writeFileSync(file, conf);
      const t = await spawnServer(name, bin, ['-db', '-f', file], port);
      return { pid: t.cp.pid, url: `http://127.0.0.1:${port}`, stop: () => stopChild(t.cp), info: `${commandVersion(bin, ['-v']).split('\n')[0].replace(/ - https?:.*$/, '')}, nbthread 1`, config: conf };
    }
    default:
      throw new Error(`unknown target ${name}`);
  }
}

function pkgVersion(name) {
  try {
    return JSON.parse(readFileSync(require.resolve(`${name}/package.json`), 'utf8')).version;
  } catch {
    // Packages whose exports hide package.json: walk up from the entry point.
    let dir = path.dirname(require.resolve(name));
    while (dir !== path.dirname(dir)) {
      const file = path.join(dir, 'package.json');
      if (existsSync(file)) {
        const pkg = JSON.parse(readFileSync(file, 'utf8'));
        if (pkg.name === name) return pkg.version;
      }
      dir = path.dirname(dir);
    }
    return '?';
  }
}

/** A tool's version line; nginx prints it on stderr. */
function commandVersion(bin, argv) {
  const r = spawnSync(bin, argv, { encoding: 'utf8', timeout: 5000 });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() || '?';
}

// ---------------------------------------------------------------------------------------------------------------
// Preflight: each target must really proxy (a fast error page would look like a great result).

async function preflight(name, url, { websocket = true } = {}) {
  const hello = await fetchText(`${url}/`);
  if (hello.status !== 200 || hello.body !== 'hello') throw new Error(`${name}: GET / answered ${hello.status} ${JSON.stringify(hello.body.slice(0, 80))}`);
  const big = await fetchText(`${url}/64k`);
  if (big.status !== 200 || big.body.length !== 64 * 1024) throw new Error(`${name}: GET /64k answered ${big.status} with ${big.body.length} bytes`);
  const up = await fetchText(`${url}/upload`, { method: 'POST', body: Buffer.alloc(1024 * 1024, 'b'), headers: { 'content-type': 'application/octet-stream' } });
  if (up.status !== 200 || up.headers.get('x-received') !== String(1024 * 1024)) throw new Error(`${name}: POST /upload answered ${up.status}, x-received ${up.headers.get('x-received')}`);
  if (websocket) await wsPreflight(name, url);
}

/** A WebSocket to /ws must echo a message through the target. */
async function wsPreflight(name, url) {
  const { default: WebSocket } = await import('ws');
  await new Promise((resolve, reject) => {
    const ws = new WebSocket(url.replace(/^http/, 'ws') + '/ws', { perMessageDeflate: false });
    const timer = setTimeout(() => fail(new Error('no echo within 5 s')), 5000);
    const fail = (err) => {
      clearTimeout(timer);
      ws.terminate();
      reject(new Error(`${name}: WebSocket /ws: ${err.message}`));
    };
    ws.once('error', fail);
    ws.once('unexpected-response', (_req, res) => fail(new Error(`answered ${res.statusCode}`)));
    ws.once('open', () => ws.send('ping'));
    ws.once('message', (data) => {
      clearTimeout(timer);
      ws.close();
      if (String(data) === 'ping') resolve();
      else reject(new Error(`${name}: WebSocket /ws echoed ${JSON.stringify(String(data))}`));
    });
  });
}

async function fetchText(url, init = {}) {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(5000) });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

/** Metrics are on: the preflight requests show up in ballast_requests_total on the admin endpoint. */
async function checkBallastMetrics(adminPort) {
  const { status, body } = await fetchText(`http://127.0.0.1:${adminPort}/metrics`);
  let sum = 0;
  for (const line of body.split('\n')) if (line.startsWith('ballast_requests_total{')) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  if (status !== 200 || sum < 3) throw new Error(`Ballast /metrics answered ${status} and counted ${sum} of the 3 preflight requests`);
}

// ---------------------------------------------------------------------------------------------------------------
// Load

let wrkBin;
function haveWrk() {
  wrkBin ??= onPath('wrk') ?? null;
  return wrkBin !== null;
}

function newConnClient() {
  if (NEWCONN_CLIENT === 'node') return 'node';
  haveWrk();
  if (NEWCONN_CLIENT === 'wrk') {
    if (!wrkBin) throw new Error('BENCH_NEWCONN_CLIENT=wrk but wrk is not on PATH');
    return 'wrk';
  }
  return wrkBin ? 'wrk' : 'node';
}

/** The TCP relay scenario: bench/tcp.mjs in a child, its medians read back from --json. */
const TCP_SCENARIO = 'tcp-relay';

async function runTcpBench() {
  const file = path.join(tmpDir, 'tcp.json');
  const argv = [path.join(HERE, 'tcp.mjs'), '--runs', '3', '--json', file];
  log(`\n== ${TCP_SCENARIO}: node ${argv.map((a) => (a === file ? 'FILE' : path.relative(ROOT, a) || a)).join(' ')}`);
  const cp = track(spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'inherit'] }), 'tcp');
  let out = '';
  cp.stdout.on('data', (c) => (out += c));
  const [code] = await new Promise((resolve) => cp.once('exit', (...a) => resolve(a)));
  if (code !== 0 || !existsSync(file)) {
    log(`  tcp relay bench failed (exit ${code})`);
    return { failed: `bench/tcp.mjs exited ${code}` };
  }
  const result = JSON.parse(readFileSync(file, 'utf8'));
  const table = tcpTable(result);
  process.stdout.write(`\n### ${TCP_SCENARIO}\n\n${table}\n`);
  return { ...result, table, printed: out };
}

function tcpTable(result) {
  const ballast = result.targets.find((t) => t.name.startsWith('ballast'));
  const head = ['target', 'relay MB/s', 'MB/s each round', 'connections/s', 'conn/s each round', 'churn p50 ms', 'churn p99 ms', 'failed', 'Ballast MB/s ÷ this', 'Ballast conn/s ÷ this'];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_h, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`];
  for (const t of result.targets) {
    const own = t === ballast;
    lines.push(`| ${t.name} | ${fmtInt(t.mbps)}${t.complete ? '' : '*'} | ${t.runs.map((r) => fmtInt(r.mbps)).join(' / ')} | ${fmtInt(t.perSecond)} | ${t.runs.map((r) => fmtInt(r.perSecond)).join(' / ')} | ${fmtMs(t.p50)} | ${fmtMs(t.p99)} | ${t.failed} | ${own ? '1.00×' : fmtRatio(ballast.mbps / t.mbps)} | ${own ? '1.00×' : fmtRatio(ballast.perSecond / t.perSecond)} |`);
  }
  if (result.targets.some((t) => !t.complete)) lines.push('', '* a stream stopped at the time limit; MB/s over what arrived');
  return lines.join('\n');
}

function loadJob(scenario, url) {
  return {
    kind: scenario.kind,
    url,
    path: scenario.path,
    method: scenario.method,
    connections: scenario.connections,
    bodySize: scenario.bodySize ?? 0,
    duration: DURATION,
    warmup: WARMUP,
    maxRequests: NEWCONN_MAX,
  };
}

/** wrk runs `newconn` when it is on PATH (and not overridden), and always runs `wrk` scenarios. */
function usesWrk(scenario) {
  return scenario.kind === 'wrk' || (scenario.kind === 'newconn' && newConnClient() === 'wrk');
}

function loadCommand(scenario) {
  if (scenario.kind === 'wrk') {
    return `wrk -t1 -c${scenario.connections} -d${DURATION}s --latency URL${scenario.path}  (after a ${WARMUP}s warm-up run)`;
  }
  if (scenario.kind === 'newconn' && newConnClient() === 'wrk') {
    return `wrk -t1 -c${scenario.connections} -d${DURATION}s --latency -H "Connection: close" URL${scenario.path}  (after a ${WARMUP}s warm-up run)`;
  }
  if (scenario.kind === 'ws') {
    return `bench/load.mjs WebSocket client (ws, no compression): ${scenario.connections} connections to URL${scenario.path}, each sending a 32-byte message and waiting for its echo before the next, for ${DURATION}s (after a ${WARMUP}s warm-up run)`;
  }
  if (scenario.kind === 'newconn') {
    return `bench/load.mjs new-connection client: ${scenario.connections} concurrent loops of http.request({ agent: false, headers: { connection: 'close' } }) ${scenario.method} ${scenario.path}, ${DURATION}s or ${NEWCONN_MAX} requests (after ${WARMUP}s warm-up)`;
  }
  return `autocannon({ url: URL + '${scenario.path}', method: '${scenario.method}', connections: ${scenario.connections}, pipelining: 1, duration: ${DURATION}${scenario.bodySize ? `, body: ${scenario.bodySize} bytes` : ''} }) after a ${WARMUP}s warm-up run`;
}

/** Waits (up to QUIET_WAIT seconds) until processes outside this benchmark use less than FOREIGN_LIMIT cores. */
function waitForQuiet(pids) {
  return waitForQuietShared({ seconds: QUIET_WAIT, limit: FOREIGN_LIMIT, oursMs: () => pids.reduce((a, p) => a + treeCpuMs(p), 0) + selfCpuMs(), log });
}

/** Rounds of a scenario: BENCH_ROUNDS when set, else the scenario's own (the paired access-log scenario has 3). */
function roundsOf(scenario) {
  return process.env.BENCH_ROUNDS !== undefined ? ROUNDS : (scenario.rounds ?? ROUNDS);
}

/** The round with the median req/s (the lower middle one of an even count), with every round's req/s beside it. */
function medianRound(results) {
  if (results.length === 1) return results[0];
  const sorted = [...results].sort((a, b) => a.rps - b.rps);
  return { ...sorted[Math.floor((sorted.length - 1) / 2)], rounds: results.map((r) => Math.round(r.rps)) };
}

async function measure(scenario, target, originPids) {
  await waitForQuiet([...originPids, target.pid].filter((p) => p !== undefined));
  const first = await measureOnce(scenario, target, originPids);
  if (QUIET_WAIT <= 0 || !(first.foreignCores > FOREIGN_LIMIT)) return first;
  log(`  (other work used ${first.foreignCores.toFixed(2)} cores during that run: measuring again)`);
  await waitForQuiet([...originPids, target.pid].filter((p) => p !== undefined));
  const second = await measureOnce(scenario, target, originPids);
  return second.foreignCores <= first.foreignCores ? { ...second, remeasured: true } : { ...first, remeasured: true };
}

async function measureOnce(scenario, target, originPids) {
  let before;
  const snap = () => {
    before = cpuSnapshot(target.pid, originPids);
  };
  const result = usesWrk(scenario) ? await runWrk(scenario, target.url, snap) : await measureWith(scenario, target.url, DURATION, snap);
  const after = cpuSnapshot(target.pid, originPids);
  if (before !== undefined) Object.assign(result, cpuReport(before, after, result));
  return result;
}

async function runWrk(scenario, url, onMeasuring) {
  const once = (seconds) =>
    new Promise((resolve, reject) => {
      const close = scenario.kind === 'newconn' ? ['-H', 'Connection: close'] : [];
      const argv = ['-t1', `-c${scenario.connections}`, `-d${seconds}s`, '--latency', '--timeout', '10s', ...close, url + scenario.path];
      const cp = track(spawn(wrkBin, argv, { stdio: ['ignore', 'pipe', 'pipe'] }), 'wrk');
      let out = '';
      cp.stdout.on('data', (c) => (out += c));
      cp.stderr.on('data', (c) => (out += c));
      const timer = setTimeout(() => cp.kill('SIGKILL'), (seconds + 30) * 1000);
      cp.once('exit', (code) => {
        clearTimeout(timer);
        if (code !== 0) reject(new Error(`wrk exited ${code}: ${out}`));
        else resolve(parseWrk(out, seconds));
      });
    });
  if (WARMUP > 0) await once(WARMUP);
  onMeasuring();
  return once(DURATION);
}

/** wrk's figures (wrk-output.mjs), in the shape of an autocannon result. */
function parseWrk(text, seconds) {
  const { loadGenCpuMs: _own, ...figures } = parseWrkOutput(text, seconds);
  return { ...figures, max: NaN, statusCodes: {} };
}

// ---------------------------------------------------------------------------------------------------------------
// Reporting

function fmtInt(n) {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '–';
}
function fmtMs(n) {
  if (!Number.isFinite(n)) return '–';
  return n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2);
}
function fmtRatio(n) {
  return Number.isFinite(n) && n > 0 ? `${n.toFixed(2)}×` : '–';
}
function fmtMBs(n) {
  return Number.isFinite(n) ? (n / 1024 / 1024).toFixed(1) : '–';
}

/** Ballast's req/s divided by each target's, and Ballast's p99 divided by each target's (lower is better for that one). */
function ratios(scenario, rows) {
  const baseName = 'ballast';
  const base = rows.find((r) => r.target === baseName && r.result);
  const out = {};
  if (!base) return out;
  for (const r of rows) {
    if (!r.result || r.target === baseName) continue;
    out[r.target] = { rps: base.result.rps / r.result.rps, p99: base.result.p99 / r.result.p99 };
  }
  return out;
}

function scenarioTable(scenario, rows) {
  const rat = ratios(scenario, rows);
  // Bytes that crossed the proxy in the scenario's direction: responses read, or request bodies sent.
  const upload = (scenario.bodySize ?? 0) > 0;
  const withBytes = upload || scenario.name === 'large-64k';
  const mibs = (x) => (upload ? (x.rps * scenario.bodySize) : x.bytesPerSec);
  const head = ['target', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'non-2xx', ...(withBytes ? [upload ? 'MiB/s sent' : 'MiB/s read'] : []), 'proxy CPU µs/req', 'proxy cores', 'Ballast req/s ÷ this', 'Ballast p99 ÷ this'];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_h, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`];
  let contended = false;
  for (const r of rows) {
    const label = TARGETS.find((t) => t.name === r.target)?.label ?? r.target;
    if (!r.result) {
      lines.push(`| ${label} | ${r.skipped ? `skipped: ${r.skipped}` : `failed: ${String(r.error).split('\n')[0]}`} |${' |'.repeat(head.length - 2)}`);
      continue;
    }
    const x = r.result;
    const ratio = rat[r.target];
    const flag = x.foreignCores > FOREIGN_LIMIT ? ' †' : '';
    if (flag) contended = true;
    const cells = [
      `${label}${flag}`,
      fmtInt(x.rps),
      fmtMs(x.p50),
      fmtMs(x.p99),
      fmtInt(x.errors + x.timeouts),
      fmtInt(x.non2xx),
      ...(withBytes ? [fmtMBs(mibs(x))] : []),
      Number.isFinite(x.proxyCpuUsPerReq) ? x.proxyCpuUsPerReq.toFixed(0) : '–',
      Number.isFinite(x.proxyCores) ? x.proxyCores.toFixed(2) : '–',
      r.target === 'ballast' ? '1.00×' : fmtRatio(ratio?.rps),
      r.target === 'ballast' ? '1.00×' : fmtRatio(ratio?.p99),
    ];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  const rounds = rows.filter((r) => r.result?.rounds);
  if (rounds.length > 0) lines.push('', `Every round's req/s, round by round: ${rounds.map((r) => `${TARGETS.find((t) => t.name === r.target)?.label ?? r.target} ${r.result.rounds.map(fmtInt).join(' / ')}`).join('; ')}.`);
  if (rows.some((r) => r.target === 'direct' && r.result)) lines.push('', '`direct` has no proxy: its CPU columns are origin 1\'s.');
  if (contended) lines.push('', `† other work on the machine used more than ${FOREIGN_LIMIT} cores during this run: treat its numbers with care.`);
  return lines.join('\n');
}

function machine() {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    availableParallelism: os.availableParallelism?.() ?? cpus.length,
    memoryGiB: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
  };
}

function writeResultsMd(report) {
  const m = report.machine;
  const lines = [];
  lines.push('# Ballast benchmark results', '');
  lines.push(`Generated by \`bench/run.js\` on ${report.date}. Re-run with the command below; the numbers are only comparable within one run on one machine.`, '');
  lines.push('## Machine', '');
  lines.push(`- CPU: ${m.cpuModel}, ${m.cores} cores (available parallelism ${m.availableParallelism})`);
  lines.push(`- Memory: ${m.memoryGiB} GiB`);
  lines.push(`- OS: ${m.os}`);
  lines.push(`- Node: ${m.node}`);
  lines.push(`- Peers: ${Object.entries(report.targets).map(([n, t]) => `${n}: ${t.skipped ? `skipped (${t.skipped})` : t.info}`).join('; ')}`);
  lines.push('');
  lines.push('## Commands', '');
  lines.push('```sh');
  lines.push(report.command);
  lines.push('```', '');
  lines.push(`Settings: BENCH_DURATION=${report.settings.duration}s measured after BENCH_WARMUP=${report.settings.warmup}s of warm-up, per target per scenario (each target also got BENCH_PREWARM=${report.settings.prewarm}s of small-GET load once, after it started); new-connection client: ${report.settings.newConnClient}, cap ${report.settings.newConnMax} requests.`, '');
  lines.push('Load per scenario (the same for every target in the run; URL is the target):', '');
  for (const s of report.scenarios) lines.push(`- \`${s.name}\`: ${s.command}`);
  lines.push('');
  lines.push('## Method', '');
  lines.push(
    '- Three origins (node:http, each its own process, 127.0.0.1): `GET /` answers `hello` with Content-Length, `GET /64k` 64 KiB, `POST /upload` drains the body and answers `ok`, `GET /ws` is a WebSocket (ws) that echoes every message.',
    '- Each proxy runs in its own process and balances round-robin over the three origins with keep-alive upstream connections. Ballast runs compiled from `dist/` with access log off and metrics on (the `access-log` scenario adds a second Ballast with it on, writing to a file). `direct` is origin 1 with no proxy: the ceiling of this load generator on this machine.',
    '- The load generator runs in a fresh process per measurement (autocannon programmatically; the new-connection scenario uses wrk `-H "Connection: close"` when wrk is on PATH, else a node:http client with `agent: false`).',
    '- Every target gets a preflight (`GET /`, `GET /64k`, 1 MiB `POST /upload` must come back intact through it) before it is measured.',
    `- The load generator, the proxy and the origins share the machine's ${m.cores} cores, so absolute numbers are low and relative ones are what matter: a proxy that uses less CPU leaves more for the others. "Ballast req/s ÷ this" above 1 means Ballast is faster; "Ballast p99 ÷ this" below 1 means Ballast's tail latency is lower.`,
    '- "proxy CPU µs/req" is the CPU time (user + system, from /proc) the proxy process and its children used during the measured seconds, divided by the requests answered; "proxy cores" is the same time over the wall time (1.00 = one core busy all the time). NGINX and HAProxy are single-threaded here, Node is one event loop plus helper threads. This is the number that survives a noisy machine best.',
    `- Each run also measures CPU used by processes outside the benchmark (from /proc/stat); a run where that exceeded ${FOREIGN_LIMIT} cores is marked †. BENCH_QUIET_WAIT=${report.settings.quietWait} (seconds to wait for a quiet machine before each run, and to re-measure a disturbed run once).`,
    '- NGINX: 1 worker, `upstream keepalive 64`, `proxy_http_version 1.1`, `Connection ""` to the origins (`upgrade` for a WebSocket handshake, through a `map`), `access_log off`, `proxy_request_buffering off`, `keepalive_requests 1000000` (its default of 1000 would close client connections mid-run). HAProxy: `nbthread 1`, `mode http`, `http-reuse always`, `balance roundrobin`, `option forwardfor`, `timeout tunnel 65s` (WebSockets), no logging. Both configs are in bench/results/latest.json.',
    '',
  );
  lines.push('## Results', '');
  for (const s of report.scenarios) {
    lines.push(`### ${s.name}: ${s.title}`, '');
    lines.push(s.table, '');
    if (s.note) lines.push(s.note, '');
  }
  if (report.tcp !== undefined) {
    lines.push(`### ${TCP_SCENARIO}: layer 4, one ${(report.tcp.settings?.bytes ?? 0) / 1024 ** 3} GiB stream and ${report.tcp.settings?.churn} short connections (bench/tcp.mjs)`, '');
    if (report.tcp.failed) lines.push(`failed: ${report.tcp.failed}`, '');
    else {
      lines.push(report.tcp.table, '');
      lines.push(`Medians of ${report.tcp.settings.runs} rounds, targets interleaved. Throughput: one connection, the origin streams as fast as the client reads; MB/s from connect to the last byte. Churn: ${report.tcp.settings.concurrency} clients in a loop of connect, 32-byte echo, close. HAProxy runs \`mode tcp\` with one thread (it splices: the bytes never reach user space); "node:net pipeline" is the least a Node relay can do (two \`stream.pipeline\`s, no features), a reference for what Node itself costs. Ballast runs its TcpListener with the access log off.`, '');
    }
  }
  lines.push('## Profile', '', 'Where Ballast spends its CPU under the small-GET load: bench/PROFILE.md (`npm run build && node bench/run.js --profile`).', '');
  if (report.notes.length > 0) {
    lines.push('## Notes', '');
    for (const n of report.notes) lines.push(`- ${n}`);
    lines.push('');
  }
  writeFileSync(path.join(HERE, 'RESULTS.md'), lines.join('\n'));
}

// ---------------------------------------------------------------------------------------------------------------
// Main

/** Warns when src/ has changed since dist/ was built (npm run bench builds first; node bench/run.js does not). */
function warnIfDistStale() {
  const built = path.join(ROOT, 'dist', 'proxy', 'http', 'forward.js');
  if (process.env.BENCH_BALLAST_DIST || !existsSync(built)) return;
  const builtAt = statSync(built).mtimeMs;
  const newest = (dir) => {
    let t = 0;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      t = Math.max(t, e.isDirectory() ? newest(p) : e.name.endsWith('.ts') ? statSync(p).mtimeMs : 0);
    }
    return t;
  };
  try {
    if (newest(path.join(ROOT, 'src')) > builtAt) log('warning: src/ is newer than dist/: run `npm run build` first (npm run bench does) to measure the current code');
  } catch {
    /* no src: nothing to compare */
  }
}

async function benchmark() {
  warnIfDistStale();
  const selected = SCENARIOS.filter((s) => args.only === undefined || args.only.includes(s.name));
  const withTcp = args.only === undefined || args.only.includes(TCP_SCENARIO);
  if (selected.length === 0 && !withTcp) throw new Error(`--only matched no scenario; known: ${[...SCENARIOS.map((s) => s.name), TCP_SCENARIO].join(', ')}`);
  const targetsFor = (s) =>
    TARGETS.filter((t) => (s.targets ? s.targets.includes(t.name) || (t.optIn && s.targets.includes('ballast')) : !t.onlyNamed) && (!t.optIn || args.targets?.includes(t.name)))
      .map((t) => t.name)
      .filter((n) => args.targets === undefined || args.targets.includes(n) || (s.targets && n === 'ballast-accesslog' && args.targets.includes('ballast')));
  const needed = [...new Set(selected.flatMap(targetsFor))];
  const filtered = args.only !== undefined || args.targets !== undefined;
  const totalRuns = selected.reduce((n, s) => n + targetsFor(s).length, 0);
  log(`Ballast bench: ${selected.length} scenario(s), ${totalRuns} runs of ${WARMUP}s warm-up + ${DURATION}s (about ${Math.ceil((totalRuns * (WARMUP + DURATION + 0.6) + needed.length * (PREWARM + WARMUP + 1)) / 60)} min)`);

  const origins = await startOrigins();
  log(`origins on 127.0.0.1:${origins.map((o) => o.port).join(', ')}`);
  const targets = {};
  const notes = [];
  try {
    for (const name of needed) {
      try {
        const t = await startTarget(name, origins);
        if (t.skipped) {
          log(`skip ${name}: ${t.skipped}`);
          notes.push(`${name} skipped: ${t.skipped}`);
        } else {
          try {
            await preflight(name, t.url, { websocket: name !== 'undici-minimal' });
            if (t.adminPort !== undefined) await checkBallastMetrics(t.adminPort);
          } catch (err) {
            await t.stop();
            throw err;
          }
          log(`${name} on ${t.url} (${t.info})`);
        }
        targets[name] = t;
      } catch (err) {
        log(`${name} could not start: ${err.message}`);
        notes.push(`${name} failed to start: ${err.message.split('\n')[0]}`);
        targets[name] = { failed: err.message };
      }
    }

    if (PREWARM > 0) {
      const warm = SCENARIOS[0];
      for (const [name, t] of Object.entries(targets)) {
        if (!t.url) continue;
        log(`pre-warming ${name} (${PREWARM}s of ${warm.name})`);
        await measureWith({ ...warm }, t.url, PREWARM).catch((err) => log(`  pre-warm of ${name} failed: ${err.message}`));
      }
    }

    const scenarios = [];
    for (const s of selected) {
      if (s.kind === 'wrk' && !haveWrk()) {
        log(`\n== ${s.name}: skipped, wrk is not on PATH`);
        notes.push(`${s.name} skipped: wrk is not on PATH`);
        continue;
      }
      const rounds = roundsOf(s);
      log(`\n== ${s.name}: ${s.title}${rounds > 1 ? ` (${rounds} rounds, order alternating; the median round per target is reported)` : ''}`);
      const names = targetsFor(s);
      /** @type {Map<string, object[]>} */
      const results = new Map(names.map((n) => [n, []]));
      const errors = new Map();
      for (let round = 0; round < rounds; round++) {
        // Alternating order (A B, B A, A B ...), so neither side always runs on a machine the other just warmed.
        for (const name of round % 2 === 0 ? names : [...names].reverse()) {
          const t = targets[name];
          if (t.skipped || t.failed || errors.has(name)) continue;
          try {
            const result = await measure(s, t, origins.map((o) => o.cp.pid));
            results.get(name).push(result);
            log(`  ${name.padEnd(18)} ${fmtInt(result.rps).padStart(8)} req/s  p50 ${fmtMs(result.p50).padStart(6)} ms  p99 ${fmtMs(result.p99).padStart(6)} ms  errors ${result.errors + result.timeouts}  non-2xx ${result.non2xx}  proxy ${Number.isFinite(result.proxyCpuUsPerReq) ? result.proxyCpuUsPerReq.toFixed(0) : '?'} µs/req ${Number.isFinite(result.proxyCores) ? result.proxyCores.toFixed(2) : '?'} cores  foreign ${Number.isFinite(result.foreignCores) ? result.foreignCores.toFixed(2) : '?'} cores`);
          } catch (err) {
            log(`  ${name} failed: ${err.message}`);
            errors.set(name, err.message);
          }
        }
      }
      const rows = names.map((name) => {
        const t = targets[name];
        if (t.skipped || t.failed) return { target: name, skipped: t.skipped, error: t.failed };
        if (errors.has(name)) return { target: name, error: errors.get(name) };
        return { target: name, result: medianRound(results.get(name)) };
      });
      const table = scenarioTable(s, rows);
      process.stdout.write(`\n### ${s.name}: ${s.title}\n\n${table}\n`);
      scenarios.push({ name: s.name, title: s.title, note: s.note, command: loadCommand(s), connections: s.connections, table, rows, ratios: ratios(s, rows) });
    }

    let tcp;
    if (withTcp) {
      // The HTTP targets and origins go first: the relay gets the machine to itself (bench/tcp.mjs starts its own).
      await Promise.all(Object.values(targets).map((t) => t.stop?.()));
      await Promise.all(origins.map((o) => stopChild(o.cp)));
      tcp = await runTcpBench();
    }

    const report = {
      date: new Date().toISOString(),
      machine: machine(),
      command: [
        `${Object.entries(process.env).filter(([k]) => k.startsWith('BENCH_')).map(([k, v]) => `${k}=${v} `).join('')}npm run bench   # = npm run build --silent && node bench/run.js${args.raw.length ? ' ' + args.raw.join(' ') : ''}`,
        'node bench/run.js --profile   # CPU profile of Ballast under small-50 -> bench/PROFILE.md',
      ].join('\n'),
      settings: { duration: DURATION, warmup: WARMUP, prewarm: PREWARM, newConnMax: NEWCONN_MAX, newConnClient: newConnClient(), quietWait: QUIET_WAIT, foreignLimitCores: FOREIGN_LIMIT },
      targets: Object.fromEntries(Object.entries(targets).map(([n, t]) => [n, { url: t.url, info: t.info, skipped: t.skipped, failed: t.failed, config: t.config?.replaceAll(tmpDir, '$BENCH_TMP') }])),
      scenarios: scenarios.map((s) => ({ ...s })),
      tcp,
      notes,
    };
    mkdirSync(RESULTS_DIR, { recursive: true });
    const jsonFile = path.join(RESULTS_DIR, filtered ? 'filtered.json' : 'latest.json');
    const tcpData = report.tcp === undefined ? undefined : (({ table, printed, ...rest }) => rest)(report.tcp);
    writeFileSync(jsonFile, JSON.stringify({ ...report, scenarios: report.scenarios.map(({ table, ...rest }) => rest), tcp: tcpData }, null, 2) + '\n');
    if (!filtered) writeResultsMd(report);
    log(`\nwrote ${path.relative(ROOT, jsonFile)}${filtered ? ' (filtered run: bench/RESULTS.md left as it was)' : ' and bench/RESULTS.md'}`);
  } finally {
    await Promise.all(Object.values(targets).map((t) => t.stop?.()));
    await Promise.all(origins.map((o) => stopChild(o.cp)));
  }
}

async function profile() {
  warnIfDistStale();
  const dir = path.join(RESULTS_DIR, 'profile');
  mkdirSync(dir, { recursive: true });
  const scenario = SCENARIOS.find((s) => s.name === (args.only?.[0] ?? 'small-50'));
  if (!scenario) throw new Error(`unknown scenario ${args.only?.[0]}`);
  // `--profile --only access-log` profiles Ballast with its access log on.
  const accessLog = scenario.name === 'access-log';
  const profileName = `ballast-${scenario.name}.cpuprofile`;
  rmSync(path.join(dir, profileName), { force: true });
  const origins = await startOrigins();
  let ballast;
  try {
    const originPorts = origins.map((o) => o.port);
    ballast = await forkReady('target-ballast.mjs', 'ballast-profiled', { BENCH_ORIGINS: originPorts.join(','), BENCH_ACCESS_LOG: accessLog ? '1' : '0' }, ['--cpu-prof', '--cpu-prof-dir', dir, '--cpu-prof-name', profileName, '--cpu-prof-interval', String(PROFILE_INTERVAL_US)]);
    const url = `http://127.0.0.1:${ballast.port}`;
    await preflight('ballast', url);
    log(`profiling Ballast (pid ${ballast.cp.pid}) under ${scenario.name} for ${WARMUP}s + ${PROFILE_DURATION}s`);
    const result = await measureWith(scenario, url, PROFILE_DURATION);
    log(`  ${fmtInt(result.rps)} req/s (under the profiler), p50 ${fmtMs(result.p50)} ms, p99 ${fmtMs(result.p99)} ms, errors ${result.errors}, non-2xx ${result.non2xx}`);
  } finally {
    if (ballast) await stopChild(ballast.cp, 10_000);
    await Promise.all(origins.map((o) => stopChild(o.cp)));
  }
  const file = profileName;
  if (!existsSync(path.join(dir, file))) throw new Error(`no ${file} was written to ${dir}`);
  const summary = summarizeProfile(JSON.parse(readFileSync(path.join(dir, file), 'utf8')), { root: ROOT });
  const text = formatSummary(summary, { top: 30 });
  process.stdout.write(`\n${text}\n`);
  const m = machine();
  writeFileSync(
    path.join(HERE, accessLog ? 'PROFILE-access-log.md' : 'PROFILE.md'),
    [
      '# Ballast CPU profile',
      '',
      `Ballast (compiled dist/, access log ${accessLog ? 'on' : 'off'}, metrics on) under \`${scenario.name}\` (${scenario.title}) for ${PROFILE_DURATION}s after ${WARMUP}s warm-up, run with \`node --cpu-prof\`. ${new Date().toISOString()}, ${m.cpuModel} × ${m.cores}, ${m.memoryGiB} GiB, Node ${m.node}.`,
      '',
      '```sh',
      `${PROFILE_DURATION !== 10 ? `BENCH_PROFILE_DURATION=${PROFILE_DURATION} ` : ''}node bench/run.js --profile${args.only ? ` --only ${args.only[0]}` : ''}`,
      `node bench/profile-summary.mjs bench/results/profile/${file} --top 30   # the profile itself is not committed`,
      '```',
      '',
      'Self time is where the CPU was when sampled; total time includes callees. dist/ locations are mapped back to src/*.ts through the source maps.',
      '',
      "Reading the native rows: V8's sampler is wall-clock based, so when a socket write wakes the process at the other end and the kernel lets that process run first, the wait is charged to `writev` / `writeLatin1String`. On a small, busy machine those two rows overstate the kernel's share; `perf record -g -p PID` (on-CPU time only) is the check. On the 2-core machine these files were made on, perf put the kernel at about 28% of Ballast's CPU under this load, so the JavaScript rows below are a larger share of the real cost than their percentages say.",
      '',
      '```',
      text,
      '```',
      '',
    ].join('\n'),
  );
  log(`wrote bench/${accessLog ? 'PROFILE-access-log.md' : 'PROFILE.md'}; profile in ${path.relative(ROOT, path.join(dir, file))}`);
}

/** One load-generator process for one measurement; `onMeasuring` runs when the warm-up is over. */
async function measureWith(scenario, url, seconds, onMeasuring = () => {}) {
  const job = { ...loadJob(scenario, url), duration: seconds };
  const cp = track(fork(path.join(HERE, 'load.mjs'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [] }), 'load');
  const limitMs = (seconds + job.warmup + 30) * 1000;
  try {
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`load generator did not finish in ${limitMs} ms`)), limitMs);
      cp.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`load generator exited (${code ?? signal}) without a result`));
      });
      cp.on('message', (m) => {
        if (m?.type === 'measuring') return onMeasuring();
        clearTimeout(timer);
        if (m?.type === 'result') resolve(m.result);
        else reject(new Error(m?.error ?? 'load generator failed'));
      });
      cp.send(job);
    });
  } finally {
    await stopChild(cp, 1000);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// CPU accounting (Linux /proc, through proc-cpu.mjs): what the proxy under test spent per request, and whether
// anything outside this benchmark competed for the cores during a run (other work on a shared machine makes a run
// meaningless).

function cpuSnapshot(targetPid, originPids) {
  const self = process.cpuUsage();
  return {
    at: performance.now(),
    target: treeCpuMs(targetPid),
    origins: originPids.filter((p) => p !== targetPid).reduce((a, p) => a + treeCpuMs(p), 0),
    self: (self.user + self.system) / 1000,
    system: systemBusyMs(),
  };
}

/** proxy CPU per request and utilisation; `foreignCores` is busy CPU no process of this benchmark accounts for. */
function cpuReport(before, after, result) {
  const wallMs = after.at - before.at;
  const target = after.target - before.target;
  const ours = target + (after.origins - before.origins) + (after.self - before.self) + (result.loadGenCpuMs ?? 0);
  const system = after.system - before.system;
  return {
    proxyCpuMs: target,
    proxyCpuUsPerReq: result.requests > 0 ? (1000 * target) / result.requests : NaN,
    proxyCores: target / wallMs,
    systemCores: system / wallMs,
    foreignCores: Math.max(0, (system - ours) / wallMs),
  };
}

/** `--render`: rebuild the tables and bench/RESULTS.md from bench/results/latest.json, without measuring again. */
async function render() {
  const report = JSON.parse(readFileSync(path.join(RESULTS_DIR, 'latest.json'), 'utf8'));
  for (const s of report.scenarios) {
    const def = SCENARIOS.find((d) => d.name === s.name) ?? { name: s.name };
    s.note = def.note ?? s.note;
    s.table = scenarioTable(def, s.rows);
    process.stdout.write(`\n### ${s.name}: ${s.title}\n\n${s.table}\n`);
  }
  if (report.tcp !== undefined && !report.tcp.failed) report.tcp.table = tcpTable(report.tcp);
  writeResultsMd(report);
  log('\nwrote bench/RESULTS.md from bench/results/latest.json');
}

function log(line) {
  process.stderr.write(`${line}\n`);
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

function positive(v, dflt) {
  const n = Number(v);
  return v !== undefined && v !== '' && Number.isFinite(n) && n > 0 ? n : dflt;
}
function nonNegative(v, dflt) {
  const n = Number(v);
  return v !== undefined && v !== '' && Number.isFinite(n) && n >= 0 ? n : dflt;
}

function parseArgs(argv) {
  const out = { raw: argv, only: undefined, targets: undefined, profile: false, render: false, help: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const eq = a.indexOf('=');
      if (eq !== -1) return a.slice(eq + 1);
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--only' || a.startsWith('--only=')) out.only = value().split(',').map((x) => x.trim()).filter(Boolean);
    else if (a === '--targets' || a.startsWith('--targets=')) out.targets = value().split(',').map((x) => x.trim()).filter(Boolean);
    else if (a === '--profile') out.profile = true;
    else if (a === '--render') out.render = true;
    else if (a === '--help' || a === '-h') out.help = true;
    else throw new Error(`unknown argument ${a} (try --help)`);
  }
  return out;
}

tmpDir = mkdtempSync(path.join(os.tmpdir(), 'ballast-bench-'));
try {
  await (args.profile ? profile() : args.render ? render() : benchmark());
} catch (err) {
  process.stderr.write(`bench failed: ${err?.stack ?? err}\n`);
  process.exitCode = 1;
} finally {
  killAllNow();
}
