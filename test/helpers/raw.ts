/** Raw bytes over a fresh TCP connection, for requests no HTTP client would send. */
import { connect } from 'node:net';

/** Writes `data` on a fresh connection; resolves with what came back once the server closed it, or after `untilMs`. */
export function sendRaw(port: number, data: string, untilMs = 5000): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(data));
    let text = '';
    socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
    socket.on('error', () => {});
    const timer = setTimeout(() => socket.destroy(), untilMs);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(text);
    });
  });
}
