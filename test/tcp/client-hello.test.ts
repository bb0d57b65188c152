/**
 * The ClientHello parser over real ClientHellos: node:tls connects to a plain TCP server that records the first
 * bytes and never answers. Then the same bytes cut up every way a network can cut them, and bytes that are not
 * a ClientHello at all.
 */
import { createServer, type AddressInfo, type Server } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientHelloReader, parseClientHello, type ClientHelloResult } from '../../src/proxy/tcp/client-hello.js';
import { SniRouter } from '../../src/proxy/tcp/sni-router.js';

let server: Server;
let port: number;
/** What each connection sent first: its first TLS record, whole (node:tls sends its ClientHello in one). */
const waiting: ((first: Buffer) => void)[] = [];

beforeAll(async () => {
  server = createServer((socket) => {
    let buf = Buffer.alloc(0);
    const deliver = waiting.shift();
    socket.on('error', () => {});
    socket.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (buf.length >= 5 && buf.length >= 5 + buf.readUInt16BE(3)) {
        socket.destroy();
        deliver?.(buf);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

/** The bytes node:tls sends first, as a client with these options. */
async function clientHello(options: ConnectionOptions): Promise<Buffer> {
  const first = new Promise<Buffer>((resolve) => waiting.push(resolve));
  const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...options });
  socket.on('error', () => {});
  try {
    return await first;
  } finally {
    socket.destroy();
  }
}

/** Feeds `bytes` in pieces of `size`, expecting "incomplete" until the last piece. */
function inPieces(bytes: Buffer, size: number): ClientHelloResult {
  const reader = new ClientHelloReader();
  let result: ClientHelloResult = { status: 'incomplete' };
  for (let i = 0; i < bytes.length; i += size) {
    expect(result.status).toBe('incomplete');
    result = reader.push(bytes.subarray(i, i + size));
  }
  return result;
}

/**
 * The same ClientHello re-framed into records of at most `fragment` bytes (RFC 8446 §5.1 allows a handshake
 * message to span records): what a TLS stack with a small record size, or a hostile client, may send.
 */
function reframe(record: Buffer, fragment: number): Buffer {
  const handshake = record.subarray(5, 5 + record.readUInt16BE(3));
  const out: Buffer[] = [];
  for (let i = 0; i < handshake.length; i += fragment) {
    const piece = handshake.subarray(i, i + fragment);
    const header = Buffer.from([22, 3, 1, 0, 0]);
    header.writeUInt16BE(piece.length, 3);
    out.push(header, piece);
  }
  return Buffer.concat(out);
}

describe('ClientHello from node:tls', () => {
  let hello: Buffer;
  beforeAll(async () => {
    hello = await clientHello({ servername: 'a.example.com' });
  });

  it('reads the server name from a whole ClientHello', () => {
    expect(hello[0]).toBe(22);
    expect(parseClientHello(hello)).toEqual({ status: 'sni', name: 'a.example.com' });
  });

  it('reads other names, in lower case', async () => {
    expect(parseClientHello(await clientHello({ servername: 'API.Example.com' }))).toEqual({ status: 'sni', name: 'api.example.com' });
    expect(parseClientHello(await clientHello({ servername: 'x', minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' }))).toEqual({ status: 'sni', name: 'x' });
  });

  it('says "no SNI" when the client sends no server name', async () => {
    // node:tls sends no server_name for an IP address, and none for an empty servername.
    const result = parseClientHello(await clientHello({ servername: '' }));
    expect(result.status).toBe('no-sni');
  });

  it('byte by byte: "incomplete" until the last byte, then the name', () => {
    expect(inPieces(hello, 1)).toEqual({ status: 'sni', name: 'a.example.com' });
  });

  it('in pieces of every size from 2 to 64 bytes', () => {
    for (let size = 2; size <= 64; size++) expect(inPieces(hello, size)).toEqual({ status: 'sni', name: 'a.example.com' });
  });

  it('across several TLS records, fed byte by byte too', () => {
    for (const fragment of [1, 3, 7, 50, 200]) {
      const records = reframe(hello, fragment);
      expect(parseClientHello(records)).toEqual({ status: 'sni', name: 'a.example.com' });
      expect(inPieces(records, 1)).toEqual({ status: 'sni', name: 'a.example.com' });
    }
  });

  it('ignores what follows the ClientHello, and stays decided whatever comes next', () => {
    const reader = new ClientHelloReader();
    expect(reader.push(Buffer.concat([hello, Buffer.from('junk after')]))).toEqual({ status: 'sni', name: 'a.example.com' });
    expect(reader.push(Buffer.from('more'))).toEqual({ status: 'sni', name: 'a.example.com' });
  });

  it('every truncation is "incomplete", never a wrong answer', () => {
    for (let n = 1; n < hello.length; n++) expect(parseClientHello(hello.subarray(0, n)).status).toBe('incomplete');
  });

  it('a ClientHello larger than the limit is "too-large", decided from its length before it arrives', () => {
    expect(parseClientHello(hello.subarray(0, 10), 100).status).toBe('too-large');
    // Tiny records: the length of the wire bytes counts, not only the handshake's.
    const records = reframe(hello, 1);
    expect(inPieces(records.subarray(0, 2000), 1).status).toBe('incomplete');
    const reader = new ClientHelloReader(hello.length + 100);
    let result: ClientHelloResult = { status: 'incomplete' };
    for (let i = 0; i < records.length && result.status === 'incomplete'; i++) result = reader.push(records.subarray(i, i + 1));
    expect(result.status).toBe('too-large');
  });

  it('a server name extension edited to be malformed is "not TLS"', () => {
    const at = hello.indexOf(Buffer.from('a.example.com'));
    expect(at).toBeGreaterThan(0);
    // The HostName's length prefix, two bytes before the name, made one longer than the list holds.
    const bad = Buffer.from(hello);
    bad.writeUInt16BE(bad.readUInt16BE(at - 2) + 1, at - 2);
    expect(parseClientHello(bad).status).toBe('not-tls');
    // A byte that no host name has.
    const space = Buffer.from(hello);
    space[at + 1] = 0x20;
    expect(parseClientHello(space)).toEqual({ status: 'not-tls', reason: 'a server name that is not a host name' });
  });

  it('a ClientHello whose inner lengths run past its end is "not TLS"', () => {
    const bad = Buffer.from(hello);
    // The session id length (after record header 5, handshake header 4, version 2, random 32).
    bad[5 + 4 + 2 + 32] = 200;
    expect(parseClientHello(bad).status).toBe('not-tls');
  });
});

describe('bytes that are not a ClientHello', () => {
  it('an HTTP request is "not TLS" from its first byte', () => {
    expect(parseClientHello(Buffer.from('G')).status).toBe('not-tls');
    expect(parseClientHello(Buffer.from('GET / HTTP/1.1\r\n\r\n')).status).toBe('not-tls');
  });

  it('a handshake record of another version, an empty or oversize record, another handshake message', () => {
    expect(parseClientHello(Buffer.from([22, 2])).status).toBe('not-tls');
    expect(parseClientHello(Buffer.from([22, 3, 1, 0, 0])).status).toBe('not-tls');
    expect(parseClientHello(Buffer.from([22, 3, 1, 0x40, 0x01])).status).toBe('not-tls');
    expect(parseClientHello(Buffer.from([22, 3, 1, 0, 4, 2, 0, 0, 0])).status).toBe('not-tls');
    // An alert record after a first fragment of a ClientHello.
    expect(parseClientHello(Buffer.from([22, 3, 1, 0, 2, 1, 0, 21, 3, 1])).status).toBe('not-tls');
  });

  it('an SSLv2-compatible ClientHello has no server name', () => {
    // msg_length 0x802e, CLIENT-HELLO, version 3.1, then cipher spec, session id and challenge lengths.
    const v2 = Buffer.from('802e0103010015000000100000390000380000350000160000130000' + '00'.repeat(16), 'hex');
    expect(parseClientHello(v2.subarray(0, 3)).status).toBe('incomplete');
    expect(parseClientHello(v2).status).toBe('no-sni');
    expect(parseClientHello(Buffer.from([0x80, 0x10, 0x05, 0x03])).status).toBe('not-tls');
  });

  it('random garbage never throws and never finds a name', () => {
    let seed = 42;
    const next = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) & 0xff;
    for (let i = 0; i < 2000; i++) {
      const bytes = Buffer.from(Array.from({ length: 1 + (i % 300) }, next));
      // Half of them look like a handshake record, to get past the first checks.
      if (i % 2 === 0 && bytes.length > 5) bytes.set([22, 3, 1], 0);
      const result = parseClientHello(bytes);
      expect(result.status).not.toBe('sni');
    }
  });
});

describe('SniRouter', () => {
  const router = new SniRouter([
    { pattern: '*.example.com', target: 'wildcard' },
    { pattern: 'api.example.com', target: 'api' },
    { pattern: 'example.com', target: 'apex' },
    { pattern: '*.b.example.com', target: 'deeper' },
  ]);

  it('an exact name wins over a wildcard listed before it', () => {
    expect(router.match('api.example.com')).toBe('api');
    expect(router.match('API.EXAMPLE.COM')).toBe('api');
  });

  it('a wildcard stands for exactly one label', () => {
    expect(router.match('a.example.com')).toBe('wildcard');
    expect(router.match('example.com')).toBe('apex');
    expect(router.match('x.b.example.com')).toBe('deeper');
    expect(router.match('x.y.example.com')).toBeUndefined();
    expect(router.match('.example.com')).toBeUndefined();
    expect(router.match('other.org')).toBeUndefined();
  });
});
