/**
 * Reference, not a peer: the smallest HTTP/1.1 → HTTP/2 proxy node:http and node:http2 make possible, what Ballast's
 * HTTP/2-to-origin path (src/upstream/http2-pool.ts) is measured against in bench/h2-upstream.mjs. One node:http2
 * session to the origin, every request a stream on it, the request's fields sent but the hop-by-hop ones, the response
 * piped back with backpressure, the stream cancelled when the client leaves; nothing else (no health, retries, limits,
 * metrics, logs, timeouts, X-Forwarded-*).
 *
 * PORT (0: any) and BENCH_ORIGIN_PORT from the environment; reports its port to a parent over IPC when forked.
 */
import http from 'node:http';
import http2 from 'node:http2';

const origin = `http://127.0.0.1:${process.env.BENCH_ORIGIN_PORT}`;
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'proxy-connection', 'upgrade', 'te', 'trailer', 'host', 'http2-settings']);
let session;

function current() {
  if (session === undefined || session.closed || session.destroyed) {
    session = http2.connect(origin, { peerMaxConcurrentStreams: 100 });
    session.on('error', () => {});
  }
  return session;
}

const server = http.createServer((req, res) => {
  const headers = { ':method': req.method, ':path': req.url, ':authority': req.headers.host ?? 'localhost' };
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    if (!HOP.has(name)) headers[name] = raw[i + 1];
  }
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
  const stream = current().request(headers, { endStream: !hasBody });
  if (hasBody) req.pipe(stream);
  stream.on('error', () => {
    if (!res.headersSent) res.writeHead(502).end();
    else res.destroy();
  });
  stream.on('response', (head) => {
    const out = [];
    for (const name in head) {
      if (name.charCodeAt(0) === 58) continue;
      const value = head[name];
      if (Array.isArray(value)) for (const v of value) out.push(name, v);
      else out.push(name, String(value));
    }
    res.writeHead(head[':status'], out);
    stream.pipe(res);
  });
  res.on('close', () => {
    if (!res.writableFinished && !stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
  });
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => process.send?.({ type: 'ready', port: server.address().port }));
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
