/**
 * Reference, not a peer: the smallest proxy that node:http and undici make possible — the "minimal undici
 * `Pool.dispatch` proxy (no features)" of issue #7's table. One undici Pool per origin, round robin, request and
 * response streamed with backpressure, hop-by-hop `connection` / `keep-alive` / `transfer-encoding` dropped, and
 * nothing else (but releasing the upstream request when the client leaves): no health, retries, limits, metrics, logs,
 * X-Forwarded-*, framing checks or timeouts of its own.
 * Ballast's distance from it is what all of Ballast's features cost per request; its distance from NGINX is the
 * cost of Node's HTTP server and client themselves.
 * BENCH_ORIGINS (comma-separated ports) and PORT (0: any) from the environment; reports its port over IPC when forked.
 */
import http from 'node:http';
import { Pool } from 'undici';

const origins = (process.env.BENCH_ORIGINS ?? '').split(',').filter(Boolean).map((p) => new Pool(`http://127.0.0.1:${p}`, { connections: 128 }));
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'proxy-connection', 'upgrade', 'te', 'trailer']);
let next = 0;

function requestHeaders(raw) {
  const out = [];
  for (let i = 0; i < raw.length; i += 2) if (!HOP.has(raw[i].toLowerCase())) out.push(raw[i], raw[i + 1]);
  return out;
}

class Handler {
  constructor(req, res) {
    this.req = req;
    this.res = res;
    this.resume = undefined;
    this.abort = undefined;
    this.gone = false;
    res.on('drain', () => this.resume?.());
    // The one thing no proxy can leave out: a client that leaves mid-response must release the upstream request.
    // Without it, a response paused by a gone client's failed write holds its pooled connection forever, and after
    // a run that closes hundreds of connections mid-request (small-500) the pools are exhausted.
    res.on('close', () => {
      if (res.writableFinished) return;
      this.gone = true;
      this.abort?.(new Error('client closed'));
    });
  }
  onConnect(abort) {
    this.abort = abort;
    // Gone while it waited for a connection: not sent at all (else its paused response holds the connection forever).
    if (this.gone) abort(new Error('client closed'));
  }
  onHeaders(status, raw, resume) {
    this.resume = resume;
    const headers = [];
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i].toString('latin1');
      if (!HOP.has(name.toLowerCase())) headers.push(name, raw[i + 1].toString('latin1'));
    }
    this.res.writeHead(status, headers);
    return true;
  }
  onData(chunk) {
    return this.res.write(chunk);
  }
  onComplete() {
    this.res.end();
  }
  onError(err) {
    if (!this.res.headersSent) {
      this.res.writeHead(502, { 'content-type': 'text/plain' });
      this.res.end(`bad gateway: ${err.message}\n`);
    } else this.res.destroy(err);
  }
}

const server = http.createServer((req, res) => {
  const pool = origins[next];
  next = (next + 1) % origins.length;
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
  pool.dispatch({ method: req.method, path: req.url, headers: requestHeaders(req.rawHeaders), body: hasBody ? req : null }, new Handler(req, res));
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => process.send?.({ type: 'ready', port: server.address().port }));
process.on('disconnect', () => process.exit(0));
process.on('message', (m) => {
  if (m?.type === 'stop') process.exit(0);
});
