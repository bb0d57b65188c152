/**
 * Peer: http-proxy (node-http-proxy) with a keep-alive agent, round-robin over BENCH_ORIGINS, in its own process;
 * WebSocket upgrades through `proxy.ws`, round-robin too.
 */
import http from 'node:http';
import httpProxy from 'http-proxy';

const origins = (process.env.BENCH_ORIGINS ?? '').split(',').filter(Boolean).map((p) => `http://127.0.0.1:${p}`);
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 1024 });
const proxy = httpProxy.createProxyServer({ agent, xfwd: true });
proxy.on('error', (_err, _req, res) => {
  if (res && 'writeHead' in res && !res.headersSent) {
    res.writeHead(502, { 'content-type': 'text/plain' });
    res.end('bad gateway\n');
  } else res?.destroy?.();
});
let next = 0;
const server = http.createServer((req, res) => {
  const target = origins[next];
  next = (next + 1) % origins.length;
  proxy.web(req, res, { target });
});
server.on('upgrade', (req, socket, head) => {
  socket.on('error', () => {});
  const target = origins[next];
  next = (next + 1) % origins.length;
  proxy.ws(req, socket, head, { target });
});
server.keepAliveTimeout = 65_000;
server.listen(0, '127.0.0.1', () => process.send?.({ type: 'ready', port: server.address().port }));
process.on('disconnect', () => process.exit(0));
process.on('message', (m) => {
  if (m?.type === 'stop') process.exit(0);
});
