/**
 * TLS at the edge (issue #15): Ballast against NGINX, both terminating TLS 1.3 with the same certificate in front of
 * the same origin, side by side in one run, under loads from h2load (Debian `nghttp2-client`):
 *
 *   h2          HTTP/2 over TLS, keep-alive: `h2load -c10 -m10 -D5` (10 connections, 10 streams in flight on each)
 *   h1          HTTPS/1.1 keep-alive: `h2load --h1 -c10 -D5`
 *   hs-full     a new TLS connection per request, each a full handshake (session resumption off on both servers):
 *               `h2load --h1 -c10 -n N -H 'Connection: close'`, N set by a warm-up run so that it lasts about 5 s
 *   hs-resumed  the same with resumption on, both servers' default: h2load offers every new connection the session
 *               of its previous one, and both servers resume it from a TLS 1.3 session ticket
 *
 * The h2 load also measures a reference beside them: target-h2-minimal.mjs, the smallest proxy node:http2 and undici
 * make (Ballast's design with nothing of Ballast's own), so the table says how far Ballast is from its own ceiling.
 *
 *   npm run build && node bench/tls.mjs      the full run: prints the table, writes bench/results/tls.json and the
 *                                            TLS section of bench/RESULTS.md (run it after run.js, which rewrites
 *                                            that file whole)
 *   BENCH_DURATION=2 BENCH_ROUNDS=1 node bench/tls.mjs --only h2,hs-full      a quick look (writes nothing)
 *   node bench/tls.mjs --render              rewrite the TLS section of RESULTS.md from bench/results/tls.json
 *
 * Processes: with 2 cores or more, the proxy under test is pinned to CPU 0 (`taskset -c 0`: every thread of Ballast's
 * one process, NGINX's master and its worker), h2load and the origin to CPU 1, so "on one core" is what the proxy
 * gets; BENCH_PIN=0 pins nothing. Ballast runs from the CLI as a user runs it (`node dist/cli.js --config F`, one
 * process, access log off); NGINX with one worker; the origin is one more NGINX worker answering "hello" itself
 * (`return 200`), the least CPU an origin can take from the load generator's core. Both proxies keep connections to
 * the origin alive. TLS: 1.3 only, one ECDSA P-256 certificate made by openssl, each server's default suites and
 * curves; what each negotiated is read from h2load and reported. Session resumption off is NGINX's
 * `ssl_session_tickets off` and, for Ballast (which has no setting for it), an OPENSSL_CONF that turns tickets off
 * (tls-servers.mjs); a probe checks before measuring that each server resumes, or does not, as intended.
 *
 * CPU per request: user + system time of all the proxy's processes (/proc, proc-cpu.mjs) over the measured run,
 * divided by the 2xx answers h2load counted. h2load's CPU comes from the shell's `times`, and the CPU used by
 * processes outside the benchmark from /proc/stat: a round where that exceeded 0.15 cores is marked †.
 * Rounds: every load is measured BENCH_ROUNDS times per proxy, the two alternating in order from one round to the
 * next; each figure reported is the median of its rounds, each column on its own.
 *
 * Environment: BENCH_DURATION (5 s measured), BENCH_WARMUP (1 s of the same load before each measurement; for the
 * handshake loads a 50-connections-per-client run instead), BENCH_ROUNDS (3), BENCH_PREWARM (2 s of each load every
 * proxy gets once after it starts), BENCH_QUIET_WAIT (5: seconds to wait before each measurement for other work to
 * stop using the CPU), BENCH_CLIENTS (10), BENCH_STREAMS (10 HTTP/2 streams per connection), BENCH_HANDSHAKE_MAX
 * (100000 requests at most per handshake measurement), BENCH_PIN (1).
 * Only 127.0.0.1 is contacted; every child is killed on the way out; every load is bounded in time or in count, and
 * killed if it overruns.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_CIPHERS } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { parseH2load } from './h2load-output.mjs';
import { CLK_TCK, FOREIGN_LIMIT, processTree, selfCpuMs, systemBusyMs, ticksOf, waitForQuiet } from './proc-cpu.mjs';
import { NO_TICKET_OPENSSL_CONF, ballastConfig, makeCertificate, nginxProxyConfig, nginxVersion, originConfig, preflight, resumes, toolVersions } from './tls-servers.mjs';
import { freePort, waitForPort } from './ports.mjs';
import { renderSection, renderTable, summarise, writeSection } from './tls-report.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');
const CLI = path.join(ROOT, 'dist', 'cli.js');

const argv = process.argv.slice(2);
if (argv.includes('--help') || argv.includes('-h')) {
  process.stdout.write(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('*/')[0].replace(/^\/\*\*?|^ \* ?/gm, '') + '\n');
  process.exit(0);
}
const onlyAt = argv.findIndex((a) => a === '--only' || a.startsWith('--only='));
const ONLY = onlyAt === -1 ? undefined : (argv[onlyAt].includes('=') ? argv[onlyAt].split('=')[1] : argv[onlyAt + 1] ?? '').split(',').filter(Boolean);

const DURATION = setting('BENCH_DURATION', 5);
const WARMUP = setting('BENCH_WARMUP', 1);
const ROUNDS = Math.max(1, Math.round(setting('BENCH_ROUNDS', 3)));
const PREWARM = setting('BENCH_PREWARM', 2);
const QUIET_WAIT = setting('BENCH_QUIET_WAIT', 5);
const CLIENTS = Math.max(1, Math.round(setting('BENCH_CLIENTS', 10)));
const STREAMS = Math.max(1, Math.round(setting('BENCH_STREAMS', 10)));
const HANDSHAKE_MAX = Math.max(CLIENTS * 10, Math.round(setting('BENCH_HANDSHAKE_MAX', 100_000)));
const PIN = process.env.BENCH_PIN !== '0' && os.availableParallelism() >= 2;
/**
 * The TLS 1.3 suites h2load offers, in Node's default order. Node picks the suite by its own order, NGINX by the
 * client's (its default, ssl_prefer_server_ciphers off): offered in Node's order, both negotiate the same one.
 */
const TLS13_SUITES = DEFAULT_CIPHERS.split(':').filter((c) => c.startsWith('TLS_')).join(':');
const PROXY_CPU = '0';
const LOAD_CPU = '1';

/** `close`: a new connection per request. `tickets`: which pair of proxies (resumption on or off) the load runs on. */
const LOADS = [
  { name: 'h2', title: 'HTTP/2 over TLS, keep-alive', argv: ['-c', String(CLIENTS), '-m', String(STREAMS)], close: false, tickets: true, goal: 0.5 },
  { name: 'h1', title: 'HTTPS/1.1 keep-alive', argv: ['--h1', '-c', String(CLIENTS)], close: false, tickets: true },
  { name: 'hs-full', title: 'new TLS connection per request, full handshake (resumption off)', argv: ['--h1', '-c', String(CLIENTS), '-H', 'Connection: close'], close: true, tickets: false, goal: 0.5 },
  { name: 'hs-resumed', title: 'new TLS connection per request, resumed (TLS 1.3 session tickets)', argv: ['--h1', '-c', String(CLIENTS), '-H', 'Connection: close'], close: true, tickets: true },
];
/**
 * `loads`: the only loads a proxy takes part in. The minimal HTTP/2 proxy (target-h2-minimal.mjs) is a reference, not
 * a peer: the ceiling of Ballast's HTTP/2 design, measured beside it (it speaks h2 alone, so the h2 load alone).
 */
const PROXIES = [
  { key: 'ballast', label: 'Ballast', kind: 'ballast', tickets: true },
  { key: 'nginx', label: 'NGINX', kind: 'nginx', tickets: true },
  { key: 'minimal-h2', label: 'minimal node:http2 + undici proxy (reference)', kind: 'minimal', tickets: true, loads: ['h2'] },
  { key: 'ballast-no-tickets', label: 'Ballast', kind: 'ballast', tickets: false },
  { key: 'nginx-no-tickets', label: 'NGINX', kind: 'nginx', tickets: false },
];

// ---------------------------------------------------------------------------------------------------------------
// Child processes: every one is tracked and killed on the way out, whatever the way out is. h2load runs in its own
// process group (under `sh`, for `times`), killed as a group.

const children = new Set();
let tmpDir;

function track(child, name, group = false) {
  child.benchName = name;
  child.group = group;
  child.on('error', (err) => log(`${name}: ${err.message}`));
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** SIGKILL reaches the whole tree: NGINX's workers outlive a master killed that way. */
function kill(child, signal) {
  const pids = child.group ? [-child.pid] : signal === 'SIGKILL' ? processTree(child.pid).reverse() : [child.pid];
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // gone already
    }
  }
}

process.on('exit', () => {
  for (const c of children) kill(c, 'SIGKILL');
  if (tmpDir !== undefined && !process.env.BENCH_KEEP_TMP) rmSync(tmpDir, { recursive: true, force: true });
});
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    process.stderr.write(`\n${signal}: stopping every child process\n`);
    process.exit(130);
  });
}

/** SIGTERM, then SIGKILL after `ms`. */
function stop(child, ms = 5000) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => kill(child, 'SIGKILL'), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    kill(child, 'SIGTERM');
  });
}

function pinned(cpu, command) {
  return PIN ? ['taskset', '-c', cpu, ...command] : command;
}

/** Starts a server (pinned to `cpu`), its output to a log file; resolves once its port accepts. */
async function startServer(name, command, port, cpu, env = process.env) {
  const logFile = path.join(tmpDir, `${name}.log`);
  const fd = openSync(logFile, 'a');
  const [bin, ...args] = pinned(cpu, command);
  const child = track(spawn(bin, args, { stdio: ['ignore', fd, fd], env, cwd: tmpDir }), name);
  closeSync(fd);
  try {
    await waitForPort(port, child, name);
  } catch (err) {
    await stop(child, 1000);
    throw new Error(`${err.message}\n--- ${logFile} ---\n${readFileSync(logFile, 'utf8').slice(-2000)}`);
  }
  return child;
}

async function startOrigin(nginx) {
  const port = await freePort();
  const dir = path.join(tmpDir, 'origin');
  mkdirSync(dir);
  const file = path.join(dir, 'nginx.conf');
  writeFileSync(file, originConfig(dir, port));
  const child = await startServer('origin', [nginx.bin, '-p', dir, '-e', path.join(dir, 'error.log'), '-c', file], port, LOAD_CPU);
  return { port, child };
}

async function startProxy(proxy, { nginx, origin, certificate, noTicketConf }) {
  const port = await freePort();
  let command;
  let config;
  let env = process.env;
  if (proxy.kind === 'ballast') {
    config = ballastConfig({ port, adminPort: await freePort(), originPort: origin.port, ...certificate });
    const file = path.join(tmpDir, `${proxy.key}.yaml`);
    writeFileSync(file, config);
    command = [process.execPath, CLI, '--config', file];
    if (!proxy.tickets) env = { ...process.env, OPENSSL_CONF: noTicketConf };
  } else if (proxy.kind === 'minimal') {
    config = '(none: node bench/target-h2-minimal.mjs PORT ORIGIN_PORT CERT KEY)';
    command = [process.execPath, path.join(HERE, 'target-h2-minimal.mjs'), String(port), String(origin.port), certificate.cert, certificate.key];
  } else {
    const dir = path.join(tmpDir, proxy.key);
    mkdirSync(dir);
    config = nginxProxyConfig({ dir, port, originPort: origin.port, ...certificate, tickets: proxy.tickets, version: nginx.version });
    const file = path.join(dir, 'nginx.conf');
    writeFileSync(file, config);
    command = [nginx.bin, '-p', dir, '-e', path.join(dir, 'error.log'), '-c', file];
  }
  const child = await startServer(proxy.key, command, port, PROXY_CPU, env);
  // The minimal proxy offers h2 alone: no HTTPS/1.1 check, and no resumption probe (it takes part in no handshake load).
  const minimal = proxy.kind === 'minimal';
  await preflight(proxy.key, port, { h1: !minimal });
  const resumed = minimal ? proxy.tickets : await resumes(port);
  if (resumed !== proxy.tickets) throw new Error(`${proxy.key}: a second connection was ${resumed ? '' : 'not '}resumed; this target is meant to have resumption ${proxy.tickets ? 'on' : 'off'}`);
  const envNote = proxy.kind === 'ballast' && !proxy.tickets ? 'OPENSSL_CONF=(tickets off) ' : '';
  return { ...proxy, port, child, resumed, config: config.replaceAll(tmpDir, '$TMP'), command: `${envNote}${PIN ? `taskset -c ${PROXY_CPU} ` : ''}${command.map((a) => a.replaceAll(tmpDir, '$TMP').replace(process.execPath, 'node').replace(ROOT + path.sep, '')).join(' ')}` };
}

// ---------------------------------------------------------------------------------------------------------------
// Load

let h2loadBin;

function quote(arg) {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", "'\\''")}'`;
}

/** One h2load run under `sh -c '…; times'`, killed (as a process group) after `limitS` seconds. */
function h2load(args, url, limitS) {
  const line = pinned(LOAD_CPU, [h2loadBin, ...args, url]).map(quote).join(' ');
  return new Promise((resolve, reject) => {
    const child = track(spawn('sh', ['-c', `${line}; status=$?; times; exit $status`], { stdio: ['ignore', 'pipe', 'pipe'], detached: true }), 'h2load', true);
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (out += c));
    const timer = setTimeout(() => kill(child, 'SIGKILL'), limitS * 1000);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      const tail = out.split('\n').filter((l) => !l.startsWith('progress:')).join('\n').slice(-1500);
      if (code !== 0) return reject(new Error(`h2load ${signal === 'SIGKILL' ? `overran ${limitS}s and was killed` : `exited ${code ?? signal}`}: ${tail}`));
      const r = parseH2load(out);
      if (r.requests === 0) return reject(new Error(`h2load got no 2xx answer: ${tail}`));
      resolve(r);
    });
  });
}

/** The h2load arguments of one measurement: `-D seconds`, or for a handshake load `-n count`. */
function loadArgs(load, { seconds, count }) {
  return [...load.argv, `--tls13-ciphers=${TLS13_SUITES}`, ...(load.close ? ['-n', String(count)] : ['-D', String(seconds)])];
}

function commandOf(load) {
  const n = load.close ? `-n N` : `-D ${DURATION}`;
  return `${PIN ? `taskset -c ${LOAD_CPU} ` : ''}h2load ${load.argv.map(quote).join(' ')} --tls13-ciphers=${TLS13_SUITES} ${n} https://127.0.0.1:PORT/`;
}

/** A warm-up run; for a handshake load, CLIENTS × 50 connections, and the handshake rate it measured is returned. */
async function warmUp(load, url, seconds) {
  if (load.close) return (await h2load(loadArgs(load, { count: CLIENTS * 50 }), url, 120)).rps;
  if (seconds > 0) await h2load(loadArgs(load, { seconds }), url, seconds + 30);
  return undefined;
}

/** The request count of a handshake measurement: what the warm-up's rate makes in about DURATION seconds. */
function handshakeCount(rate) {
  const perClient = Math.round((rate * DURATION) / CLIENTS);
  return Math.min(HANDSHAKE_MAX, Math.max(CLIENTS * 10, perClient * CLIENTS));
}

function snapshot(proxyPids, originPids) {
  const ms = (pids) => (pids.reduce((a, p) => a + ticksOf(p), 0) * 1000) / CLK_TCK;
  return { at: performance.now(), proxy: ms(proxyPids), origin: ms(originPids), self: selfCpuMs(), system: systemBusyMs() };
}

async function measure(load, proxy, ctx) {
  const url = `https://127.0.0.1:${proxy.port}/`;
  await waitForQuiet({ seconds: QUIET_WAIT, oursMs: ctx.oursMs, log });
  const rate = await warmUp(load, url, WARMUP);
  const count = load.close ? handshakeCount(rate) : undefined;
  const proxyPids = processTree(proxy.child.pid);
  const originPids = processTree(ctx.origin.child.pid);
  const before = snapshot(proxyPids, originPids);
  const r = await h2load(loadArgs(load, { seconds: DURATION, count }), url, DURATION * 6 + 30);
  const after = snapshot(proxyPids, originPids);
  const wallS = (after.at - before.at) / 1000;
  const proxyMs = after.proxy - before.proxy;
  const originMs = after.origin - before.origin;
  const system = after.system - before.system;
  const ours = proxyMs + originMs + (after.self - before.self) + (Number.isFinite(r.loadGenCpuMs) ? r.loadGenCpuMs : 0);
  return {
    rps: r.rps,
    requests: r.requests,
    seconds: r.seconds,
    count,
    failed: r.failed,
    non2xx: r.non2xx,
    meanMs: r.meanMs,
    cpuUsPerReq: (proxyMs * 1000) / r.requests,
    proxyCores: proxyMs / 1000 / wallS,
    loadGenCores: r.loadGenCpuMs / 1000 / wallS,
    originCores: originMs / 1000 / wallS,
    foreignCores: Math.max(0, (system - ours) / 1000 / wallS),
    tls: r.tls,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Main

async function main() {
  const loads = LOADS.filter((l) => ONLY === undefined || ONLY.includes(l.name));
  if (loads.length === 0) throw new Error(`--only matched no load; known: ${LOADS.map((l) => l.name).join(', ')}`);
  if (!existsSync(CLI)) throw new Error(`${path.relative(process.cwd(), CLI)} is missing: run \`npm run build\` first`);
  const nginxBin = onPath('nginx');
  h2loadBin = onPath('h2load');
  if (nginxBin === undefined || h2loadBin === undefined) throw new Error(`${nginxBin === undefined ? 'nginx' : 'h2load'} is not on PATH (Debian: apt-get install -y nginx nghttp2-client)`);
  if (PIN && onPath('taskset') === undefined) throw new Error('taskset is not on PATH (util-linux); BENCH_PIN=0 runs unpinned');
  tmpDir = mkdtempSync(path.join(os.tmpdir(), 'ballast-bench-tls-'));
  const nginx = { bin: nginxBin, version: nginxVersion(nginxBin) };
  const certificate = makeCertificate(tmpDir);
  const noTicketConf = path.join(tmpDir, 'no-tickets.cnf');
  writeFileSync(noTicketConf, NO_TICKET_OPENSSL_CONF);

  const versions = toolVersions({ root: ROOT, nginxBin, h2loadBin });
  const needed = PROXIES.filter((p) => loads.some((l) => takesPart(p, l)));
  const runs = ROUNDS * loads.reduce((n, l) => n + PROXIES.filter((p) => takesPart(p, l)).length, 0);
  log(`Ballast TLS bench: ${loads.map((l) => l.name).join(', ')}; ${runs} runs of about ${WARMUP}s + ${DURATION}s (about ${Math.ceil((runs * (WARMUP + DURATION + 1) + needed.length * 2 * PREWARM) / 60)} min, plus quiet waits)`);
  log(`${versions.node}, ${versions.nginx}, ${versions.h2load}; ${PIN ? `proxies on CPU ${PROXY_CPU}, h2load and the origin on CPU ${LOAD_CPU} (taskset)` : 'no CPU pinning'}`);

  const origin = await startOrigin(nginx);
  const proxies = {};
  for (const p of needed) {
    proxies[p.key] = await startProxy(p, { nginx, origin, certificate, noTicketConf });
    log(`${p.key} on 127.0.0.1:${proxies[p.key].port} (resumes a session: ${proxies[p.key].resumed ? 'yes' : 'no'})`);
  }
  const allPids = () => [origin.child.pid, ...Object.values(proxies).map((p) => p.child.pid)].flatMap(processTree);
  const ctx = { origin, oursMs: () => (allPids().reduce((a, p) => a + ticksOf(p), 0) * 1000) / CLK_TCK + selfCpuMs() };

  if (PREWARM > 0) {
    for (const p of Object.values(proxies)) {
      for (const load of loads.filter((l) => takesPart(p, l))) await warmUp(load, `https://127.0.0.1:${p.port}/`, PREWARM);
    }
  }

  const results = new Map(loads.map((l) => [l.name, new Map()]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const load of loads) {
      const pair = PROXIES.filter((p) => takesPart(p, load)).map((p) => proxies[p.key]);
      for (const proxy of round % 2 === 0 ? pair : [...pair].reverse()) {
        const r = await measure(load, proxy, ctx);
        const runsOf = results.get(load.name);
        if (!runsOf.has(proxy.key)) runsOf.set(proxy.key, []);
        runsOf.get(proxy.key).push(r);
        log(`round ${round + 1}  ${load.name.padEnd(10)} ${proxy.label.padEnd(7)} ${fmt(r.rps, 0).padStart(7)} req/s  ${fmt(r.cpuUsPerReq, 1).padStart(6)} µs CPU/req  cores: proxy ${fmt(r.proxyCores, 2)}, h2load ${fmt(r.loadGenCores, 2)}, origin ${fmt(r.originCores, 2)}, other ${fmt(r.foreignCores, 2)}${r.foreignCores > FOREIGN_LIMIT ? ' †' : ''}  mean ${fmt(r.meanMs, 2)} ms  failed ${r.failed + r.non2xx}`);
      }
    }
  }

  const summary = loads.map((load) => summarise(load, PROXIES.filter((p) => takesPart(p, load)).map((p) => proxies[p.key]), results.get(load.name), commandOf(load)));
  const table = renderTable(summary);
  process.stdout.write(`\n${table}\n`);

  const report = {
    date: new Date().toISOString(),
    machine: { cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.availableParallelism(), memoryGiB: Math.round(os.totalmem() / 1024 ** 3), os: `${os.type()} ${os.release()} ${os.arch()}` },
    versions,
    settings: { duration: DURATION, warmup: WARMUP, rounds: ROUNDS, prewarm: PREWARM, quietWait: QUIET_WAIT, clients: CLIENTS, streams: STREAMS, handshakeMax: HANDSHAKE_MAX, pinned: PIN ? { proxy: PROXY_CPU, loadAndOrigin: LOAD_CPU } : false, foreignLimitCores: FOREIGN_LIMIT },
    proxies: Object.fromEntries(Object.values(proxies).map((p) => [p.key, { label: p.label, tickets: p.tickets, resumed: p.resumed, command: p.command, config: p.config }])),
    origin: originConfig('$TMP/origin', 0).replace('127.0.0.1:0', '127.0.0.1:PORT'),
    loads: summary,
  };
  if (ONLY === undefined) {
    mkdirSync(path.join(HERE, 'results'), { recursive: true });
    writeFileSync(path.join(HERE, 'results', 'tls.json'), `${JSON.stringify(report, null, 2)}\n`);
    writeSection(path.join(HERE, 'RESULTS.md'), renderSection(report, table));
    log('\nwrote bench/results/tls.json and the TLS section of bench/RESULTS.md');
  } else log('\n(--only: a partial run, nothing written)');

  for (const p of Object.values(proxies)) await stop(p.child);
  await stop(origin.child);
}

/** Whether a proxy is measured under a load: the pair with its resumption setting, and a reference only where it can. */
function takesPart(proxy, load) {
  return proxy.tickets === load.tickets && (proxy.loads === undefined || proxy.loads.includes(load.name));
}

function onPath(bin) {
  for (const dir of [...(process.env.PATH ?? '').split(path.delimiter), '/usr/sbin', '/usr/local/sbin', '/sbin']) {
    if (dir && existsSync(path.join(dir, bin))) return path.join(dir, bin);
  }
  return undefined;
}

function setting(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const v = Number(raw);
  return Number.isFinite(v) && v >= 0 ? v : fallback;
}

function fmt(x, digits) {
  return Number.isFinite(x) ? x.toFixed(digits) : '—';
}

function log(line) {
  process.stderr.write(`${line}\n`);
}

/** `--render`: the table and the RESULTS.md section again from bench/results/tls.json, without measuring. */
function render() {
  const report = JSON.parse(readFileSync(path.join(HERE, 'results', 'tls.json'), 'utf8'));
  const table = renderTable(report.loads);
  process.stdout.write(`${table}\n`);
  writeSection(path.join(HERE, 'RESULTS.md'), renderSection(report, table));
  log('\nwrote the TLS section of bench/RESULTS.md from bench/results/tls.json');
}

try {
  if (argv.includes('--render')) render();
  else await main();
} catch (err) {
  process.stderr.write(`bench/tls.mjs failed: ${err?.stack ?? err}\n`);
  process.exitCode = 1;
} finally {
  await Promise.all([...children].map((c) => stop(c, 3000)));
}
