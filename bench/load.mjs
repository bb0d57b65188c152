/**
 * The load generator, run as its own process (forked by bench/run.js per measurement) so it never shares an event
 * loop with the proxy under test. Receives one job over IPC, runs a warm-up then the measured run, sends back a
 * summary and exits. Every run is bounded in time (and the new-connection client also in count).
 *
 * kinds:
 *   autocannon  keep-alive connections, autocannon programmatically
 *   newconn     one TCP connection per request: node:http with agent:false and `Connection: close`
 *   ws          WebSocket echo: `connections` clients (ws), each sending a 32-byte message and waiting for its echo
 *               before the next; a "request" is one message and its echo
 */
import http from 'node:http';
import autocannon from 'autocannon';
import WebSocket from 'ws';

process.on('disconnect', () => process.exit(0));
process.once('message', (job) => {
  run(job).then(
    (result) => process.send({ type: 'result', result }, () => process.exit(0)),
    (err) => process.send({ type: 'error', error: String(err?.stack ?? err) }, () => process.exit(1)),
  );
});

async function run(job) {
  if (job.warmup > 0) await once(job, job.warmup);
  // The parent snapshots CPU counters now, so the warm-up is not in them.
  await new Promise((resolve) => process.send({ type: 'measuring' }, resolve));
  const cpu = process.cpuUsage();
  const result = await once(job, job.duration);
  const used = process.cpuUsage(cpu);
  return { ...result, loadGenCpuMs: (used.user + used.system) / 1000 };
}

function once(job, seconds) {
  if (job.kind === 'ws') return wsEcho(job, seconds);
  return job.kind === 'newconn' ? newConnections(job, seconds) : cannon(job, seconds);
}

/** Latencies in ms with sub-millisecond resolution (autocannon's own histogram rounds to whole milliseconds). */
class Latencies {
  #values = new Float64Array(1 << 16);
  count = 0;

  add(ms) {
    if (this.count === this.#values.length) {
      const bigger = new Float64Array(this.#values.length * 2);
      bigger.set(this.#values);
      this.#values = bigger;
    }
    this.#values[this.count++] = ms;
  }

  summary() {
    const sorted = this.#values.subarray(0, this.count).sort();
    const n = this.count;
    const pct = (p) => (n === 0 ? NaN : sorted[Math.min(n - 1, Math.ceil((p / 100) * n) - 1)]);
    return { p50: pct(50), p90: pct(90), p99: pct(99), max: n === 0 ? NaN : sorted[n - 1] };
  }
}

function cannon(job, seconds) {
  const body = job.bodySize > 0 ? Buffer.alloc(job.bodySize, 'b') : undefined;
  const latencies = new Latencies();
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: job.url + job.path,
        method: job.method,
        body,
        headers: body ? { 'content-type': 'application/octet-stream' } : {},
        connections: job.connections,
        pipelining: 1,
        duration: seconds,
        timeout: 10,
      },
      (err, r) => {
        if (err) return reject(err instanceof Error ? err : new Error(String(err)));
        const elapsed = r.duration > 0 ? r.duration : seconds;
        resolve({
          requests: r.requests.total,
          seconds: elapsed,
          rps: r.requests.total / elapsed,
          ...latencies.summary(),
          errors: r.errors,
          timeouts: r.timeouts,
          non2xx: r.non2xx,
          bytesPerSec: r.throughput.total / elapsed,
          statusCodes: Object.fromEntries(Object.entries(r.statusCodeStats ?? {}).map(([k, v]) => [k, v.count])),
        });
      },
    );
    // (client, statusCode, bytes, responseTime in fractional ms)
    instance.on('response', (_client, _status, _bytes, ms) => latencies.add(ms));
  });
}

/** `concurrency` loops, each opening a fresh connection per request, until `seconds` pass or `maxRequests` done. */
function newConnections(job, seconds) {
  const { hostname, port } = new URL(job.url);
  const max = job.maxRequests;
  const latencies = new Latencies();
  let started = 0;
  let done = 0;
  let errors = 0;
  let timeouts = 0;
  let non2xx = 0;
  let bytes = 0;
  const statusCodes = {};
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  return new Promise((resolve) => {
    let running = 0;
    const finish = () => {
      const elapsed = (performance.now() - t0) / 1000;
      resolve({ requests: done, seconds: elapsed, rps: done / elapsed, ...latencies.summary(), errors, timeouts, non2xx, bytesPerSec: bytes / elapsed, statusCodes });
    };
    const loop = () => {
      if (performance.now() >= deadline || started >= max) {
        if (--running === 0) finish();
        return;
      }
      started++;
      const begin = performance.now();
      let settled = false;
      let timedOut = false;
      const settle = (ok, status) => {
        if (settled) return;
        settled = true;
        if (ok) {
          latencies.add(performance.now() - begin);
          done++;
          statusCodes[status] = (statusCodes[status] ?? 0) + 1;
          if (status < 200 || status > 299) non2xx++;
        }
        setImmediate(loop);
      };
      const req = http.request({ host: hostname, port, path: job.path, method: job.method, agent: false, headers: { connection: 'close' }, timeout: 10_000 }, (res) => {
        res.on('data', (c) => {
          bytes += c.length;
        });
        res.on('end', () => settle(true, res.statusCode));
        res.on('error', () => {
          errors++;
          settle(false);
        });
      });
      req.on('timeout', () => {
        timedOut = true;
        timeouts++;
        req.destroy(new Error('timeout'));
      });
      req.on('error', () => {
        if (!timedOut) errors++;
        settle(false);
      });
      req.end();
    };
    running = job.connections;
    for (let i = 0; i < job.connections; i++) loop();
  });
}

/**
 * `connections` WebSocket clients, each in a loop of one 32-byte message and its echo, until `seconds` pass. The
 * connections are opened before the clock starts (the handshake is the new-connection scenario's business).
 */
async function wsEcho(job, seconds) {
  const url = job.url.replace(/^http/, 'ws') + job.path;
  const message = Buffer.alloc(32, 'm');
  const latencies = new Latencies();
  let done = 0;
  let errors = 0;
  let bytes = 0;
  const sockets = await Promise.all(
    Array.from({ length: job.connections }, () => new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false });
      ws.once('open', () => resolve(ws));
      ws.once('error', reject);
    })),
  );
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  await Promise.all(sockets.map((ws) => new Promise((resolve) => {
    let sentAt = 0;
    const send = () => {
      if (performance.now() >= deadline) return resolve();
      sentAt = performance.now();
      ws.send(message);
    };
    ws.on('message', (data) => {
      bytes += data.length;
      if (data.length === message.length) {
        latencies.add(performance.now() - sentAt);
        done++;
      } else errors++;
      send();
    });
    ws.on('error', () => {
      errors++;
      resolve();
    });
    ws.on('close', () => resolve());
    send();
  })));
  const elapsed = (performance.now() - t0) / 1000;
  for (const ws of sockets) ws.terminate();
  return { requests: done, seconds: elapsed, rps: done / elapsed, ...latencies.summary(), errors, timeouts: 0, non2xx: 0, bytesPerSec: bytes / elapsed, statusCodes: {} };
}
