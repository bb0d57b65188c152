// An origin in its own process, so a test can SIGKILL it like a crashed server. Prints "READY <port>".
import { createServer } from 'node:http';

const name = process.argv[2] ?? 'origin';
const port = Number(process.argv[3] ?? 0);
const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    const body = JSON.stringify({ origin: name, url: req.url });
    // A little work per request, so several are in flight when the process dies.
    setTimeout(() => res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body), 2);
  });
});
server.on('clientError', (_e, s) => s.destroy());
server.listen(port, '127.0.0.1', () => process.stdout.write(`READY ${server.address().port}\n`));
