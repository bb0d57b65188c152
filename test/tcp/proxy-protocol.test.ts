/**
 * PROXY protocol codec against HAProxy's doc/proxy-protocol.txt: exact byte vectors, every rejection the spec asks
 * for, and the socket reader (fragments, payload after the header, timeout, size bound).
 */
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { bytesToIpv6, ipv6ToBytes } from '../../src/util/ip-address.js';
import {
  encodeProxyHeader,
  encodeV1,
  encodeV2,
  parseProxyHeader,
  proxyAddresses,
  ProxyProtocolError,
  readProxyHeader,
  V2_SIGNATURE,
} from '../../src/proxy/tcp/proxy-protocol.js';
import { connectClient } from './helpers.js';
import { sleep } from '../helpers/wait.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const SIG = '0d0a0d0a000d0a515549540a';

describe('PROXY protocol v1 (spec §2.1)', () => {
  it('encodes the spec example byte for byte', () => {
    const header = encodeV1({ family: 'IPv4', sourceAddress: '192.168.0.1', sourcePort: 56324, destinationAddress: '192.168.0.11', destinationPort: 443 });
    expect(header.toString('latin1')).toBe('PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n');
  });

  it('encodes TCP6, and UNKNOWN when the endpoints are not IP addresses', () => {
    expect(encodeV1({ family: 'IPv6', sourceAddress: '2001:db8::1', sourcePort: 1, destinationAddress: '::1', destinationPort: 65535 }).toString('latin1'))
      .toBe('PROXY TCP6 2001:db8::1 ::1 1 65535\r\n');
    expect(encodeV1(undefined).toString('latin1')).toBe('PROXY UNKNOWN\r\n');
  });

  it('parses the spec example and reports where the payload starts', () => {
    const wire = Buffer.from('PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n', 'latin1');
    const r = parseProxyHeader(wire);
    expect(r).toEqual({
      status: 'complete',
      length: 47,
      header: { version: 1, addresses: { family: 'IPv4', sourceAddress: '192.168.0.1', sourcePort: 56324, destinationAddress: '192.168.0.11', destinationPort: 443 } },
    });
    expect(wire.subarray(47).toString('latin1')).toBe('GET / HTTP/1.1\r\n');
  });

  it('accepts the spec maximum lengths: TCP6 at 104 bytes and the UNKNOWN worst case at 107', () => {
    const ffff = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
    const tcp6 = Buffer.from(`PROXY TCP6 ${ffff} ${ffff} 65535 65535\r\n`, 'latin1');
    expect(tcp6.length).toBe(104);
    const r6 = parseProxyHeader(tcp6);
    expect(r6.status === 'complete' && r6.header.addresses?.sourceAddress).toBe(ffff);
    const worst = Buffer.from(`PROXY UNKNOWN ${ffff} ${ffff} 65535 65535\r\n`, 'latin1');
    expect(worst.length).toBe(107);
    expect(parseProxyHeader(worst)).toEqual({ status: 'complete', length: 107, header: { version: 1, addresses: undefined } });
    expect(parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\n'))).toEqual({ status: 'complete', length: 15, header: { version: 1, addresses: undefined } });
  });

  it('writes IPv6 sources in one canonical spelling', () => {
    const r = parseProxyHeader(Buffer.from('PROXY TCP6 2001:0DB8:0000:0000:0000:0000:0000:0001 ::1 1 2\r\n'));
    expect(r.status === 'complete' && r.header.addresses?.sourceAddress).toBe('2001:db8::1');
  });

  it('asks for more bytes until the CRLF', () => {
    for (const partial of ['P', 'PROX', 'PROXY ', 'PROXY TCP4 1.2.3.4', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r']) {
      expect(parseProxyHeader(Buffer.from(partial)).status, partial).toBe('incomplete');
    }
  });

  it.each([
    ['another protocol', 'GET / HTTP/1.1\r\n'],
    ['lower case', 'proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n'],
    ['LF without CR', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n'],
    ['CR without LF', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX'],
    ['an unknown protocol', 'PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n'],
    ['two spaces', 'PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n'],
    ['a missing port', 'PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n'],
    ['a port with a leading zero', 'PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n'],
    ['a port over 65535', 'PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n'],
    ['an address with a leading zero', 'PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n'],
    ['IPv6 under TCP4', 'PROXY TCP4 ::1 ::1 1 2\r\n'],
    ['IPv4 under TCP6', 'PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n'],
    ['a zone id', 'PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n'],
    ['no CRLF in 107 bytes', `PROXY UNKNOWN ${'x'.repeat(100)}`],
  ])('refuses %s', (_what, text) => {
    expect(parseProxyHeader(Buffer.from(text, 'latin1')).status).toBe('invalid');
  });
});

describe('PROXY protocol v2 (spec §2.2)', () => {
  // What HAProxy itself sends for 172.19.0.1:42578 → 172.19.0.3:80 ("send-proxy-v2"), as captured on the wire.
  const haproxyIpv4 = hex(`${SIG} 21 11 000c ac130001 ac130003 a652 0050`);
  const ipv6 = hex(`${SIG} 21 21 0024 20010db8000000000000000000000001 20010db8000000000000000000000011 dc04 01bb`);

  it('has the 12-byte signature', () => {
    expect(V2_SIGNATURE).toEqual(hex(SIG));
  });

  it('encodes TCP over IPv4 exactly as HAProxy does', () => {
    expect(encodeV2({ family: 'IPv4', sourceAddress: '172.19.0.1', sourcePort: 42578, destinationAddress: '172.19.0.3', destinationPort: 80 })).toEqual(haproxyIpv4);
  });

  it('encodes TCP over IPv6: \\x21\\x21, 36 address bytes', () => {
    expect(encodeV2({ family: 'IPv6', sourceAddress: '2001:db8::1', sourcePort: 56324, destinationAddress: '2001:db8::11', destinationPort: 443 })).toEqual(ipv6);
  });

  it('encodes unknown endpoints as PROXY over AF_UNSPEC with no address block', () => {
    expect(encodeV2(undefined)).toEqual(hex(`${SIG} 21 00 0000`));
    expect(encodeProxyHeader('v1', undefined).toString()).toBe('PROXY UNKNOWN\r\n');
  });

  it('parses IPv4 and IPv6 headers back', () => {
    expect(parseProxyHeader(Buffer.concat([haproxyIpv4, Buffer.from('GET /')]))).toEqual({
      status: 'complete',
      length: 28,
      header: { version: 2, addresses: { family: 'IPv4', sourceAddress: '172.19.0.1', sourcePort: 42578, destinationAddress: '172.19.0.3', destinationPort: 80 } },
    });
    expect(parseProxyHeader(ipv6)).toEqual({
      status: 'complete',
      length: 52,
      header: { version: 2, addresses: { family: 'IPv6', sourceAddress: '2001:db8::1', sourcePort: 56324, destinationAddress: '2001:db8::11', destinationPort: 443 } },
    });
  });

  it('LOCAL: uses the real endpoints and skips whatever block length is announced', () => {
    expect(parseProxyHeader(hex(`${SIG} 20 00 0000`))).toEqual({ status: 'complete', length: 16, header: { version: 2, addresses: undefined } });
    // "Receivers MUST always consider this field to skip the appropriate number of bytes".
    expect(parseProxyHeader(hex(`${SIG} 20 11 000c ac130001 ac130003 a652 0050`))).toEqual({ status: 'complete', length: 28, header: { version: 2, addresses: undefined } });
  });

  it('skips TLVs after the addresses', () => {
    // PP2_TYPE_NOOP (0x04) with 4 bytes of value, then PP2_TYPE_AUTHORITY (0x02) "db".
    const withTlvs = hex(`${SIG} 21 11 0018 ac130001 ac130003 a652 0050 04 0004 00000000 02 0002 6462`);
    const r = parseProxyHeader(withTlvs);
    expect(r.status === 'complete' && r.length).toBe(40);
    expect(r.status === 'complete' && r.header.addresses?.sourceAddress).toBe('172.19.0.1');
  });

  it('falls back to the real endpoints for UNSPEC, UDP and AF_UNIX', () => {
    expect(parseProxyHeader(hex(`${SIG} 21 00 0000`))).toMatchObject({ status: 'complete', header: { addresses: undefined } });
    expect(parseProxyHeader(hex(`${SIG} 21 12 000c ac130001 ac130003 a652 0050`))).toMatchObject({ status: 'complete', header: { addresses: undefined } });
    expect(parseProxyHeader(Buffer.concat([hex(`${SIG} 21 31 00d8`), Buffer.alloc(216)]))).toMatchObject({ status: 'complete', length: 232, header: { addresses: undefined } });
  });

  it('asks for more bytes until the announced length is there', () => {
    for (let n = 1; n < haproxyIpv4.length; n++) {
      expect(parseProxyHeader(haproxyIpv4.subarray(0, n)).status, `${n} bytes`).toBe('incomplete');
    }
  });

  it.each([
    ['version 1', `${SIG} 11 11 000c`],
    ['version 3, before the length is even there', `${SIG} 31`],
    ['an unassigned command', `${SIG} 22 11 000c`],
    ['an unassigned family', `${SIG} 21 41 000c`],
    ['an unassigned transport', `${SIG} 21 13 000c`],
    ['an IPv4 block too short for its addresses', `${SIG} 21 11 0008 ac130001 ac130003`],
    ['an IPv6 block too short for its addresses', `${SIG} 21 21 000c ac130001 ac130003 a652 0050`],
    ['a broken signature', '0d0a0d0a000d0a5155495420'],
  ])('refuses %s', (_what, bytes) => {
    expect(parseProxyHeader(hex(bytes)).status).toBe('invalid');
  });

  it('refuses a header over the size bound as soon as its length is known', () => {
    expect(parseProxyHeader(hex(`${SIG} 21 11 ffff`))).toEqual({ status: 'invalid', reason: expect.stringContaining('limit') as string });
    expect(parseProxyHeader(hex(`${SIG} 21 11 0100`), 256).status).toBe('invalid');
    expect(parseProxyHeader(hex(`${SIG} 21 11 00f0`), 256).status).toBe('incomplete');
  });
});

describe('addresses', () => {
  it('compresses IPv6 per RFC 5952', () => {
    const cases: [string, string][] = [
      ['0:0:0:0:0:0:0:0', '::'],
      ['0:0:0:0:0:0:0:1', '::1'],
      ['1:0:0:0:0:0:0:0', '1::'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
      ['2001:DB8::A', '2001:db8::a'],
      ['::ffff:192.0.2.1', '::ffff:192.0.2.1'],
      ['64:ff9b::192.0.2.1', '64:ff9b::c000:201'],
    ];
    for (const [input, canonical] of cases) expect(bytesToIpv6(ipv6ToBytes(input)), input).toBe(canonical);
  });

  it('announces one family: IPv4-mapped pairs as IPv4, mixed pairs as IPv6', () => {
    expect(proxyAddresses('::ffff:10.0.0.1', 1, '::ffff:10.0.0.2', 2)).toEqual({ family: 'IPv4', sourceAddress: '10.0.0.1', sourcePort: 1, destinationAddress: '10.0.0.2', destinationPort: 2 });
    expect(proxyAddresses('10.0.0.1', 1, '2001:db8::2', 2)).toEqual({ family: 'IPv6', sourceAddress: '::ffff:10.0.0.1', sourcePort: 1, destinationAddress: '2001:db8::2', destinationPort: 2 });
    expect(proxyAddresses('', 0, '10.0.0.2', 2)).toBeUndefined();
  });
});

describe('readProxyHeader on a socket', () => {
  let server: Server | undefined;
  afterEach(async () => {
    if (server) await new Promise<void>((r) => server!.close(() => r()));
    server = undefined;
  });

  /** A server whose next accepted socket is returned, and a client connected to it. */
  async function pair(): Promise<{ accepted: Socket; client: Socket }> {
    server = createServer({ allowHalfOpen: true });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const acceptedP = once(server, 'connection') as Promise<[Socket]>;
    const client = await connectClient((server.address() as AddressInfo).port);
    const [accepted] = await acceptedP;
    accepted.on('error', () => {});
    return { accepted, client };
  }

  it('reads a header sent in fragments and leaves the payload for the next reader', async () => {
    const { accepted, client } = await pair();
    const header = Buffer.from('PROXY TCP4 203.0.113.7 192.0.2.1 5555 6432\r\n');
    const headerP = readProxyHeader(accepted, { timeoutMs: 2000 });
    client.write(header.subarray(0, 3));
    await sleep(20);
    client.write(header.subarray(3, 20));
    await sleep(20);
    client.write(Buffer.concat([header.subarray(20), Buffer.from('hello')]));
    client.end(' world');
    const got = await headerP;
    expect(got.addresses).toEqual({ family: 'IPv4', sourceAddress: '203.0.113.7', sourcePort: 5555, destinationAddress: '192.0.2.1', destinationPort: 6432 });
    const chunks: Buffer[] = [];
    accepted.on('data', (c: Buffer) => chunks.push(c));
    accepted.resume();
    await once(accepted, 'end');
    expect(Buffer.concat(chunks).toString()).toBe('hello world');
    client.destroy();
    accepted.destroy();
  });

  it('gives up after the timeout', async () => {
    const { accepted, client } = await pair();
    client.write('PROXY TCP4 ');
    const err = await readProxyHeader(accepted, { timeoutMs: 100 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProxyProtocolError);
    expect((err as ProxyProtocolError).failure).toBe('timeout');
    client.destroy();
    accepted.destroy();
  });

  it('rejects garbage at once, and an oversized v2 header by its length field', async () => {
    const a = await pair();
    a.client.write('SSH-2.0-OpenSSH_9.6\r\n');
    expect(((await readProxyHeader(a.accepted, { timeoutMs: 2000 }).catch((e: unknown) => e)) as ProxyProtocolError).failure).toBe('invalid');
    a.client.destroy();
    a.accepted.destroy();
    await new Promise<void>((r) => server!.close(() => r()));
    const b = await pair();
    b.client.write(hex(`${SIG} 21 11 2000`));
    const err = (await readProxyHeader(b.accepted, { timeoutMs: 2000, maxBytes: 1024 }).catch((e: unknown) => e)) as ProxyProtocolError;
    expect(err.failure).toBe('invalid');
    b.client.destroy();
    b.accepted.destroy();
  });

  it('reports a peer that leaves before sending a header as closed', async () => {
    const { accepted, client } = await pair();
    client.end();
    const err = (await readProxyHeader(accepted, { timeoutMs: 2000 }).catch((e: unknown) => e)) as ProxyProtocolError;
    expect(err.failure).toBe('closed');
    accepted.destroy();
  });
});
