/**
 * An HTTP/2 server written by hand, for what node:http2's server never does: it answers each request's HEADERS at once
 * with `:status: 200` and END_STREAM, and never resets the stream after answering early (RFC 9113 §8.1 makes that
 * RST_STREAM optional), however much of the request is still to come. It counts the HEADERS and RST_STREAM frames.
 */
import { createServer, type AddressInfo, type Server } from 'node:net';

function frame(type: number, flags: number, streamId: number, payload = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

const HEADERS = 1;
const RST_STREAM = 3;
const SETTINGS = 4;
const PING = 6;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
/** HPACK: `:status: 200` from the static table (RFC 7541 Appendix A, index 8). */
const STATUS_200 = Buffer.from([0x88]);

export interface RawH2Server {
  server: Server;
  port: number;
  stats: { headers: number; rst: number };
}

export async function rawH2Server(maxConcurrentStreams: number): Promise<RawH2Server> {
  const stats = { headers: 0, rst: 0 };
  const server = createServer((socket) => {
    socket.on('error', () => {});
    const settings = Buffer.alloc(6);
    settings.writeUInt16BE(3, 0); // SETTINGS_MAX_CONCURRENT_STREAMS
    settings.writeUInt32BE(maxConcurrentStreams, 2);
    socket.write(frame(SETTINGS, 0, 0, settings));
    let buffered = Buffer.alloc(0);
    let preface = false;
    socket.on('data', (data: Buffer) => {
      buffered = Buffer.concat([buffered, data]);
      if (!preface) {
        if (buffered.length < 24) return;
        buffered = buffered.subarray(24);
        preface = true;
      }
      while (buffered.length >= 9) {
        const length = buffered.readUIntBE(0, 3);
        if (buffered.length < 9 + length) return;
        const [type, flags] = [buffered[3]!, buffered[4]!];
        const id = buffered.readUInt32BE(5) & 0x7fffffff;
        buffered = buffered.subarray(9 + length);
        if (type === SETTINGS && (flags & 1) === 0) socket.write(frame(SETTINGS, 1, 0));
        if (type === PING && (flags & 1) === 0) socket.write(frame(PING, 1, 0, Buffer.alloc(8)));
        if (type === RST_STREAM) stats.rst++;
        if (type === HEADERS) {
          stats.headers++;
          socket.write(frame(HEADERS, END_HEADERS | END_STREAM, id, STATUS_200));
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, stats };
}
