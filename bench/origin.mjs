/**
 * A benchmark origin, run as its own process (child_process.fork from bench/run.js) so it never shares an event
 * loop with the proxy under test. Binds 127.0.0.1 only, on an ephemeral port that it reports over IPC.
 *
 *   GET  /            "hello" with Content-Length (any path not listed below answers the same)
 *   GET  /64k         64 KiB body with Content-Length
 *   POST /upload      drains the request body, answers "ok" with the byte count in X-Received
 *   GET  /healthz     "ok"
 *   GET  /ws          a WebSocket upgrade (ws, no compression): every message is echoed back as it came
 */
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';

const HELLO = Buffer.from('hello');
const BIG = Buffer.alloc(64 * 1024, 'x');
const OK = Buffer.from('ok');

const server = createServer((req, res) => {
  if (req.method === 'POST' || req.method === 'PUT') {
    let received = 0;
    req.on('data', (chunk) => {
      received += chunk.length;
    });
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': OK.length, 'x-received': String(received) });
      res.end(OK);
    });
    req.on('error', () => res.destroy());
    return;
  }
  req.resume();
  const body = req.url === '/64k' ? BIG : req.url === '/healthz' ? OK : HELLO;
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
  res.end(body);
});
server.keepAliveTimeout = 65_000;
server.headersTimeout = 66_000;
server.on('clientError', (_err, socket) => socket.destroy());
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
server.on('upgrade', (req, socket, head) => {
  socket.on('error', () => {});
  if (req.url !== '/ws') {
    socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.on('error', () => {});
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
});

const port = Number(process.env.ORIGIN_PORT ?? 0);
server.listen(port, '127.0.0.1', () => {
  process.send?.({ type: 'ready', port: server.address().port });
});

// The parent owns our lifetime: when it goes away (IPC closed) or asks, we go too.
process.on('disconnect', () => process.exit(0));
process.on('message', (m) => {
  if (m?.type === 'stop') server.close(() => process.exit(0));
});
