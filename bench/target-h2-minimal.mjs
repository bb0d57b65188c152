/**
 * Reference, not a peer: the smallest HTTP/2-over-TLS proxy node:http2 and undici make possible, the ceiling of
 * Ballast's HTTP/2 design as target-undici-minimal.mjs is of its HTTP/1.1 one (issue #15). TLS 1.3 with the given
 * certificate, ALPN h2 only, one undici Pool to the origin (HTTP/1.1 keep-alive), each stream's request sent with
 * `:authority` as Host and its response relayed with the hop-by-hop fields dropped, written with backpressure; a
 * stream the client resets aborts its upstream request. The request's own fields go upstream as they came (pseudo-
 * fields left out), as any proxy must send them. Nothing else: no health, retries, limits, metrics, logs,
 * X-Forwarded-*, request id or timeouts.
 *
 *   node bench/target-h2-minimal.mjs PORT ORIGIN_PORT CERT KEY
 *
 * Measured as bench/tls.mjs measures a proxy (pinned to one core, `h2load -c10 -m10`, CPU from /proc): see the
 * HTTP/2 row of the TLS section in RESULTS.md for Ballast and NGINX.
 */
import http2 from 'node:http2';
import { readFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { Pool } from 'undici';

const [port, originPort, cert, key] = process.argv.slice(2);
if (key === undefined) {
  process.stderr.write('usage: node bench/target-h2-minimal.mjs PORT ORIGIN_PORT CERT KEY\n');
  process.exit(2);
}
const pool = new Pool(`http://127.0.0.1:${originPort}`, { connections: 128 });
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'proxy-connection', 'upgrade', 'te', 'trailer']);

class Handler {
  constructor(stream) {
    this.stream = stream;
    this.abort = undefined;
    this.gone = false;
    this.finished = false;
    // The one thing no proxy can leave out: a stream reset before its response is done releases the upstream request
    // (tracked here: writableFinished did not tell a stream reset by its client from one whose response ended).
    // Without it, each h2load run that stops with streams in flight leaves their responses paused on their pooled
    // connections for good, and a few runs exhaust the pool.
    stream.on('close', () => {
      if (this.finished) return;
      this.gone = true;
      this.abort?.(new Error('stream reset'));
    });
  }
  onConnect(abort) {
    this.abort = abort;
    // Reset while it waited for a connection: not sent at all (else its paused response holds the connection forever).
    if (this.gone) abort(new Error('stream reset'));
  }
  onHeaders(status, raw, resume) {
    const headers = { ':status': status };
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i].toString('latin1').toLowerCase();
      if (!HOP.has(name)) headers[name] = raw[i + 1].toString('latin1');
    }
    if (this.stream.destroyed) {
      this.abort?.(new Error('stream reset'));
      return false;
    }
    this.stream.respond(headers);
    this.stream.on('drain', resume);
    return true;
  }
  onData(chunk) {
    return this.stream.destroyed || this.stream.write(chunk);
  }
  onComplete() {
    this.finished = true;
    if (!this.stream.destroyed) this.stream.end();
  }
  onError() {
    this.finished = true;
    if (!this.stream.destroyed) this.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
  }
}

const server = http2.createSecureServer({ cert: readFileSync(cert), key: readFileSync(key), minVersion: 'TLSv1.3', ALPNProtocols: ['h2'] });
/** The request's fields for HTTP/1.1: `:authority` as Host (RFC 9113 §8.3.1), the other pseudo-fields left out. */
function requestHeaders(raw) {
  const out = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    if (name === ':authority') out.push('host', raw[i + 1]);
    else if (name.charCodeAt(0) !== 58 /* ':' */) out.push(name, raw[i + 1]);
  }
  return out;
}

server.on('stream', (stream, headers, flags, raw) => {
  stream.on('error', () => {});
  const ended = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
  pool.dispatch({ method: headers[':method'], path: headers[':path'], headers: requestHeaders(raw), body: ended ? null : stream.pipe(new PassThrough()) }, new Handler(stream));
});
server.on('sessionError', () => {});
server.listen(Number(port), '127.0.0.1');
process.on('SIGINT', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
