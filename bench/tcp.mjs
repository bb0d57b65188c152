#!/usr/bin/env node
/**
 * Layer-4 benchmark: relay throughput and connection churn through Ballast's TcpListener, through HAProxy in
 * `mode tcp` (one thread) when `haproxy` is on PATH, through a bare node:net `pipeline` relay (the reference: what
 * any Node relay costs), and straight to the origin, in one run on 127.0.0.1.
 *
 *   npx tsc -p tsconfig.build.json && node bench/tcp.mjs [--bytes 2GiB] [--churn 5000] [--concurrency 16]
 *     [--time 20] [--runs 3] [--access-log] [--pin] [--json FILE]
 *
 * - throughput: one connection; the origin streams `--bytes` (2 GiB) as fast as the client reads; MB/s = bytes /
 *   time from connect to the last byte. Stopped at `--time` seconds, and the figure is taken over what arrived.
 * - churn: `--concurrency` clients in a loop of connect, 32-byte echo, close, until `--churn` connections or
 *   `--time` seconds; connections/s and the p50/p99 of one cycle.
 *
 * --json FILE writes the medians and every round as JSON (bench/run.js runs this script as its `tcp-relay` scenario).
 *
 * Processes: the origin, Ballast and HAProxy each run in their own process, the load generator in this one, so no
 * two of them share an event loop; with --pin (and `taskset`) the proxies get a CPU to themselves (see cpuPlan). Targets are
 * measured one at a time, never concurrently, after a warm-up, in `--runs` interleaved rounds; the table gives
 * medians and ranges, as a shared box is noisy. Ballast runs as shipped (Nagle off, backpressure, half-close) but with the access log off, as HAProxy has
 * no `log` line here; pass --access-log to turn Ballast's on.
 */
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SELF = fileURLToPath(import.meta.url);
const HOST = '127.0.0.1';

function parseArgs(argv) {
  const opts = { bytes: 2 * 1024 ** 3, churn: 5000, concurrency: 16, time: 20, runs: 3, accessLog: false, pin: false, json: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => argv[++i];
    if (a === '--bytes') opts.bytes = parseSize(next());
    else if (a === '--churn') opts.churn = Number(next());
    else if (a === '--concurrency') opts.concurrency = Number(next());
    else if (a === '--time') opts.time = Number(next());
    else if (a === '--runs') opts.runs = Number(next());
    else if (a === '--access-log') opts.accessLog = true;
    else if (a === '--pin') opts.pin = true;
    else if (a === '--json') opts.json = next();
    else throw new Error(`unknown argument ${a}`);
  }
  return opts;
}

function parseSize(text) {
  const m = /^(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB)?$/.exec(text);
  if (!m) throw new Error(`not a size: ${text}`);
  return Math.round(Number(m[1]) * { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 }[m[2] ?? 'B']);
}

// ---------------------------------------------------------------------------------------------------------------
// Child role: the origin. An echo port, and a source port that streams the byte count the client asks for.
async function runOrigin() {
  const chunk = Buffer.alloc(1024 * 1024, 0x61);
  const echo = createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    s.setNoDelay(true);
    s.pipe(s);
  });
  const source = createServer((s) => {
    s.on('error', () => {});
    let line = '';
    s.on('data', function onData(d) {
      line += d.toString('latin1');
      if (!line.includes('\n')) return;
      s.off('data', onData);
      let left = Number(line.trim());
      const pump = () => {
        while (left > 0) {
          const n = Math.min(left, chunk.length);
          left -= n;
          if (!s.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
            s.once('drain', pump);
            return;
          }
        }
        s.end();
      };
      pump();
    });
  });
  await Promise.all([listen(echo, 0), listen(source, 0)]);
  process.send({ echo: echo.address().port, source: source.address().port });
  process.on('disconnect', () => process.exit(0));
}

// Child role: Ballast, two TcpListeners built from a parsed config exactly as src/ballast.ts would.
async function runBallast(echoPort, sourcePort, accessLog) {
  const dist = new URL('../dist/', import.meta.url);
  const { parseConfig, formatConfigErrors } = await import(new URL('config/load.js', dist).href);
  const { Upstream } = await import(new URL('upstream/upstream.js', dist).href);
  const { Metrics } = await import(new URL('admin/metrics.js', dist).href);
  const { TcpListener } = await import(new URL('proxy/tcp/tcp-listener.js', dist).href);
  const { AccessLog } = await import(new URL('access-log.js', dist).href);
  const { createLogger } = await import(new URL('log.js', dist).href);
  const { default: pino } = await import('pino');
  const yaml = `
listeners:
  - { name: echo, protocol: tcp, listen: "${HOST}:0", upstream: echo, max_connections: 20000 }
  - { name: stream, protocol: tcp, listen: "${HOST}:0", upstream: source }
upstreams:
  - { name: echo, servers: [{ address: "${HOST}:${echoPort}" }], limits: { max_connections: 20000 } }
  - { name: source, servers: [{ address: "${HOST}:${sourcePort}" }] }
`;
  const parsed = parseConfig(yaml, {});
  if (!parsed.ok) throw new Error(formatConfigErrors('bench', parsed.errors));
  const config = parsed.config;
  const upstreams = new Map(config.upstreams.map((u) => [u.name, new Upstream(u, { clock: () => performance.now(), random: Math.random })]));
  const metrics = new Metrics({ processMetrics: false });
  // The shipped logger's settings, writing to /dev/null.
  const log = createLogger('info', pino.destination({ dest: '/dev/null', sync: false, maxWrite: 64 * 1024 }));
  const access = accessLog ? AccessLog.of(log) : undefined;
  const listeners = config.listeners.map((l) => new TcpListener(l, { upstreams, metrics, log, accessLog: access }));
  const [echo, stream] = await Promise.all(listeners.map((l) => l.listen()));
  process.send({ echo: echo.port, stream: stream.port });
  process.on('message', (m) => {
    if (m === 'rss') process.send({ rss: process.memoryUsage.rss() });
  });
  process.on('disconnect', () => process.exit(0));
}

// Child role: the reference — the least a Node process can do to relay: two listeners, each accepted socket piped
// both ways to a new connection to the origin with stream.pipeline, Nagle off, half-close allowed, nothing else.
async function runPipeline(echoPort, sourcePort) {
  const { pipeline } = await import('node:stream');
  const relayTo = (port) =>
    createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
      const upstream = connect({ host: HOST, port, allowHalfOpen: true, noDelay: true });
      client.on('error', () => {});
      upstream.on('error', () => {});
      pipeline(client, upstream, () => {});
      pipeline(upstream, client, () => {});
    });
  const [echo, stream] = [relayTo(echoPort), relayTo(sourcePort)];
  await Promise.all([echo, stream].map((s) => new Promise((resolve) => s.listen(0, HOST, resolve))));
  process.send({ echo: echo.address().port, stream: stream.address().port });
  process.on('disconnect', () => process.exit(0));
}

// ---------------------------------------------------------------------------------------------------------------
// Load generation (this process).

function listen(server, port) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, HOST, () => resolve());
  });
}

async function freePort() {
  const s = createServer();
  await listen(s, 0);
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/** One connection; ask the source for `bytes`; count until end or the deadline. */
function throughput(port, bytes, timeLimitS) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    let got = 0;
    let timedOut = false;
    const s = connect({ port, host: HOST }, () => s.write(`${bytes}\n`));
    const timer = setTimeout(() => {
      timedOut = true;
      s.destroy();
    }, timeLimitS * 1000);
    s.on('data', (d) => {
      got += d.length;
    });
    s.on('error', (err) => {
      if (!timedOut) reject(err);
    });
    s.on('close', () => {
      clearTimeout(timer);
      const seconds = (performance.now() - started) / 1000;
      if (!timedOut && got !== bytes) {
        reject(new Error(`short stream: ${got} of ${bytes} bytes`));
        return;
      }
      resolve({ bytes: got, seconds, mbps: got / 1e6 / seconds, complete: !timedOut });
    });
  });
}

/** `concurrency` loops of connect → 32-byte echo → close. */
async function churn(port, total, concurrency, timeLimitS) {
  const payload = Buffer.alloc(32, 0x62);
  const deadline = performance.now() + timeLimitS * 1000;
  const latencies = [];
  let started = 0;
  let failures = 0;
  const one = () =>
    new Promise((resolve) => {
      const t0 = performance.now();
      let got = 0;
      const s = connect({ port, host: HOST, noDelay: true }, () => s.write(payload));
      s.on('data', (d) => {
        got += d.length;
        if (got >= payload.length) s.end();
      });
      s.on('error', () => {});
      s.on('close', (hadError) => {
        if (hadError || got < payload.length) failures++;
        else latencies.push(performance.now() - t0);
        resolve();
      });
    });
  const t0 = performance.now();
  const worker = async () => {
    while (started < total && performance.now() < deadline) {
      started++;
      await one();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? NaN;
  return { connections: latencies.length, failures, seconds, perSecond: latencies.length / seconds, p50: pct(50), p99: pct(99) };
}

async function waitForPort(port, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = connect({ port, host: HOST }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listening on ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function spawnRole(plan, cpu, args, nodeArgs = []) {
  const [command, argv] = pinned(plan, cpu, process.execPath, [...nodeArgs, SELF, ...args]);
  const child = spawn(command, argv, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const ready = once(child, 'message').then(([m]) => m);
  return { child, ready };
}

function haproxyVersion() {
  const r = spawnSync('haproxy', ['-v'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return undefined;
  return /HAProxy version (\S+)/.exec(r.stdout)?.[1] ?? 'unknown';
}

async function startHaproxy(plan, echoPort, sourcePort) {
  const dir = mkdtempSync(join(tmpdir(), 'ballast-bench-tcp-'));
  const ports = { echo: await freePort(), stream: await freePort() };
  const cfg = `
global
  nbthread 1
  maxconn 4096

defaults
  mode tcp
  timeout connect 2s
  timeout client 60s
  timeout server 60s

frontend echo
  bind ${HOST}:${ports.echo}
  default_backend echo
backend echo
  server s1 ${HOST}:${echoPort}

frontend stream
  bind ${HOST}:${ports.stream}
  default_backend source
backend source
  server s1 ${HOST}:${sourcePort}
`;
  const file = join(dir, 'haproxy.cfg');
  writeFileSync(file, cfg);
  const child = spawn(...pinned(plan, 'proxy', 'haproxy', ['-db', '-q', '-f', file]), { stdio: ['ignore', 'ignore', 'inherit'] });
  child.on('error', () => {});
  const exited = once(child, 'exit').then(([code]) => {
    throw new Error(`haproxy exited with ${code} before listening`);
  });
  exited.catch(() => {});
  try {
    await Promise.race([Promise.all([waitForPort(ports.echo), waitForPort(ports.stream)]), exited]);
  } catch (err) {
    child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    ports,
    async stop() {
      child.kill('SIGTERM');
      if (child.exitCode === null) await once(child, 'exit');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function measureOnce(ports, opts) {
  const t = await throughput(ports.stream, opts.bytes, opts.time);
  const c = await churn(ports.echo, opts.churn, opts.concurrency, opts.time);
  return { t, c };
}

async function warmUp(ports, opts) {
  // JIT, socket buffers, the kernel's loopback path.
  await throughput(ports.stream, 64 * 1024 * 1024, opts.time);
  await churn(ports.echo, 300, opts.concurrency, opts.time);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/**
 * --pin, with two CPUs or more and `taskset` on PATH: the proxy under test gets the last CPU to itself, this load
 * generator and the origin share the others, so Ballast and HAProxy (one thread) each have exactly one core. Off by
 * default: it also confines Node's GC helper threads to that core, and on a 2-CPU box shared with other work it
 * made every figure swing more, not less.
 */
function cpuPlan() {
  const cpus = availableParallelism();
  const r = spawnSync('taskset', ['-V'], { encoding: 'utf8' });
  if (r.error || cpus < 2) return undefined;
  return { proxy: String(cpus - 1), load: cpus === 2 ? '0' : `0-${cpus - 2}` };
}

function pinned(plan, which, command, args) {
  return plan === undefined ? [command, args] : ['taskset', ['-c', plan[which], command, ...args]];
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const plan = opts.pin ? cpuPlan() : undefined;
  if (plan !== undefined) spawnSync('taskset', ['-a', '-p', '-c', plan.load, String(process.pid)], { stdio: 'ignore' });
  const targets = [];
  const cleanups = [];
  try {
    const origin = spawnRole(plan, 'load', ['origin']);
    cleanups.push(() => origin.child.kill());
    const originPorts = await origin.ready;
    targets.push({ name: 'direct', ports: { echo: originPorts.echo, stream: originPorts.source } });

    // BALLAST_NODE_ARGS="--cpu-prof" profiles the proxy process alone.
    const nodeArgs = (process.env.BALLAST_NODE_ARGS ?? '').split(' ').filter(Boolean);
    const ballast = spawnRole(plan, 'proxy', ['ballast', String(originPorts.echo), String(originPorts.source), opts.accessLog ? '1' : '0'], nodeArgs);
    cleanups.push(async () => {
      // Disconnected below, it exits by itself (and writes its --cpu-prof); a signal only if that fails.
      if (ballast.child.exitCode !== null) return;
      const timer = setTimeout(() => ballast.child.kill(), 3000);
      await once(ballast.child, 'exit');
      clearTimeout(timer);
    });
    const ballastTarget = { name: opts.accessLog ? 'ballast (access log)' : 'ballast', ports: await ballast.ready, child: ballast.child };
    targets.push(ballastTarget);

    const version = haproxyVersion();
    if (version === undefined) {
      console.error('haproxy: not on PATH, skipped (apt-get install -y haproxy)');
    } else {
      const h = await startHaproxy(plan, originPorts.echo, originPorts.source);
      cleanups.push(() => h.stop());
      targets.push({ name: `haproxy ${version} (nbthread 1)`, ports: h.ports });
    }

    const reference = spawnRole(plan, 'proxy', ['pipeline', String(originPorts.echo), String(originPorts.source)]);
    cleanups.push(() => reference.child.kill());
    targets.push({ name: 'node:net pipeline (reference)', ports: await reference.ready });

    console.error(
      `${(opts.bytes / 1024 ** 3).toFixed(2)} GiB stream and ${opts.churn} connections (concurrency ${opts.concurrency}) per target and round, ` +
        `${opts.runs} rounds, medians reported; ${plan ? `proxy pinned to CPU ${plan.proxy}, load generator and origin to CPU ${plan.load}` : 'no CPU pinning'}`,
    );
    for (const target of targets) await warmUp(target.ports, opts);
    for (const target of targets) target.runs = [];
    for (let round = 1; round <= opts.runs; round++) {
      // Targets interleaved per round, so a burst of noise from elsewhere on the box does not land on one target.
      for (const target of targets) {
        const r = await measureOnce(target.ports, opts);
        target.runs.push(r);
        console.error(`  round ${round} ${target.name}: ${r.t.mbps.toFixed(0)} MB/s${r.t.complete ? '' : ' (time limit hit)'}, ${r.c.perSecond.toFixed(0)} conn/s (${r.c.failures} failed)`);
      }
    }
    ballastTarget.child.send('rss');
    const [{ rss }] = await once(ballastTarget.child, 'message');
    ballastTarget.rss = rss;
  } finally {
    if (targets[1]?.child?.connected) targets[1].child.disconnect();
    for (const c of cleanups.reverse()) await c();
  }
  report(targets);
  if (opts.json !== undefined) {
    const summary = (t) => ({ name: t.name, ...t.summary, complete: t.runs.every((x) => x.t.complete), failed: t.runs.reduce((n, x) => n + x.c.failures, 0), rss: t.rss, runs: t.runs.map((x) => ({ mbps: x.t.mbps, perSecond: x.c.perSecond })) });
    const settings = { bytes: opts.bytes, churn: opts.churn, concurrency: opts.concurrency, runs: opts.runs, time: opts.time, accessLog: opts.accessLog, pin: plan !== undefined };
    writeFileSync(opts.json, JSON.stringify({ settings, targets: targets.map(summary) }, null, 2) + '\n');
  }
}

function report(targets) {
  const rows = targets.map((r) => {
    const mbps = median(r.runs.map((x) => x.t.mbps));
    const complete = r.runs.every((x) => x.t.complete);
    const perSecond = median(r.runs.map((x) => x.c.perSecond));
    r.summary = { mbps, perSecond, p50: median(r.runs.map((x) => x.c.p50)), p99: median(r.runs.map((x) => x.c.p99)) };
    return [
      r.name,
      mbps.toFixed(0) + (complete ? '' : '*'),
      `${Math.min(...r.runs.map((x) => x.t.mbps)).toFixed(0)}-${Math.max(...r.runs.map((x) => x.t.mbps)).toFixed(0)}`,
      perSecond.toFixed(0),
      `${Math.min(...r.runs.map((x) => x.c.perSecond)).toFixed(0)}-${Math.max(...r.runs.map((x) => x.c.perSecond)).toFixed(0)}`,
      r.summary.p50.toFixed(2),
      r.summary.p99.toFixed(2),
      String(r.runs.reduce((n, x) => n + x.c.failures, 0)),
      r.rss === undefined ? '' : `${(r.rss / 1024 ** 2).toFixed(0)} MiB`,
    ];
  });
  const header = ['target', 'relay MB/s', '(range)', 'conn/s', '(range)', 'p50 ms', 'p99 ms', 'failed', 'proxy RSS'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  console.log('');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
  if (targets.some((t) => t.runs.some((x) => !x.t.complete))) console.log('* a stream stopped at the time limit; MB/s over what arrived');

  const ballast = targets.find((r) => r.name.startsWith('ballast')).summary;
  const haproxy = targets.find((r) => r.name.startsWith('haproxy'))?.summary;
  const direct = targets.find((r) => r.name === 'direct').summary;
  const reference = targets.find((r) => r.name.startsWith('node:net')).summary;
  const ratio = (a, b) => (a / b).toFixed(2);
  console.log('');
  console.log(`ballast / direct:  throughput ${ratio(ballast.mbps, direct.mbps)}x, churn ${ratio(ballast.perSecond, direct.perSecond)}x`);
  console.log(`ballast / node:net pipeline: throughput ${ratio(ballast.mbps, reference.mbps)}x, churn ${ratio(ballast.perSecond, reference.perSecond)}x`);
  if (haproxy) {
    console.log(`ballast / haproxy: throughput ${ratio(ballast.mbps, haproxy.mbps)}x, churn ${ratio(ballast.perSecond, haproxy.perSecond)}x, churn p99 latency ${ratio(ballast.p99, haproxy.p99)}x`);
  } else {
    console.log('ballast / haproxy: n/a (haproxy not installed)');
  }
}

const role = process.argv[2];
if (role === 'origin') await runOrigin();
else if (role === 'ballast') await runBallast(Number(process.argv[3]), Number(process.argv[4]), process.argv[5] === '1');
else if (role === 'pipeline') await runPipeline(Number(process.argv[3]), Number(process.argv[4]));
else await main();
