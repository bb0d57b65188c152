/**
 * PROXY protocol over real sockets: headers Ballast sends, framed and decoded by a test origin independently of
 * src/, and headers Ballast accepts from a load balancer in front.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { connectClient, exchange, readAll, readBytes, startTcpOrigin, startTcpProxy, type TcpOrigin, type TestTcpProxy } from './helpers.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function origin(): Promise<TcpOrigin> {
  const o = await startTcpOrigin('o1', 'echo', { proxyHeader: true });
  cleanup.push(() => o.close());
  return o;
}

async function proxy(servers: readonly string[], listener: string): Promise<TestTcpProxy> {
  const p = await startTcpProxy(servers, { listener });
  cleanup.push(() => p.stop());
  return p;
}

/** A v2 header decoded by hand, field by field, as the spec lays it out (§2.2). */
function decodeV2(h: Buffer): { verCmd: number; famProto: number; length: number; src: string; dst: string; srcPort: number; dstPort: number } {
  expect(h.subarray(0, 12).toString('hex')).toBe('0d0a0d0a000d0a515549540a');
  return {
    verCmd: h[12]!,
    famProto: h[13]!,
    length: h.readUInt16BE(14),
    src: [...h.subarray(16, 20)].join('.'),
    dst: [...h.subarray(20, 24)].join('.'),
    srcPort: h.readUInt16BE(24),
    dstPort: h.readUInt16BE(26),
  };
}

describe('send_proxy_protocol', () => {
  it('v1: the origin reads "PROXY TCP4 <client> <listener> <client port> <listener port>", then the payload', async () => {
    const o = await origin();
    const p = await proxy([o.address], 'send_proxy_protocol: v1');
    const client = await connectClient(p.port);
    const clientPort = client.localPort;
    const all = readAll(client);
    client.end('payload');
    expect((await all).toString()).toBe('payload');
    expect(o.proxyHeaders).toHaveLength(1);
    expect(o.proxyHeaders[0]!.toString('latin1')).toBe(`PROXY TCP4 127.0.0.1 127.0.0.1 ${clientPort} ${p.port}\r\n`);
  });

  it('v2: signature, \\x21 PROXY, \\x11 TCP/IPv4, 12 address bytes, client and listener endpoints', async () => {
    const o = await origin();
    const p = await proxy([o.address], 'send_proxy_protocol: v2');
    const client = await connectClient(p.port, '127.0.0.3');
    const clientPort = client.localPort;
    const all = readAll(client);
    client.end('payload');
    expect((await all).toString()).toBe('payload');
    const h = o.proxyHeaders[0]!;
    expect(h.length).toBe(28);
    expect(decodeV2(h)).toEqual({ verCmd: 0x21, famProto: 0x11, length: 12, src: '127.0.0.3', dst: '127.0.0.1', srcPort: clientPort, dstPort: p.port });
  });

  it('sends the header before bytes the client sent while the server was being connected', async () => {
    const o = await origin();
    const p = await proxy([o.address], 'send_proxy_protocol: v1');
    // Written at once, before the upstream connection can exist.
    expect((await exchange(p.port, 'early')).toString()).toBe('early');
    expect(o.proxyHeaders[0]!.toString('latin1')).toMatch(/^PROXY TCP4 127\.0\.0\.1 127\.0\.0\.1 \d+ \d+\r\n$/);
  });
});

describe('accept_proxy_protocol', () => {
  it('takes the client address from a v1 header and passes it on in a v2 header', async () => {
    const o = await origin();
    const p = await proxy([o.address], 'accept_proxy_protocol: true\nsend_proxy_protocol: v2');
    const reply = await exchange(p.port, 'PROXY TCP4 203.0.113.7 192.0.2.1 5555 6432\r\nhello');
    expect(reply.toString()).toBe('hello');
    expect(decodeV2(o.proxyHeaders[0]!)).toEqual({ verCmd: 0x21, famProto: 0x11, length: 12, src: '203.0.113.7', dst: '192.0.2.1', srcPort: 5555, dstPort: 6432 });
    const [line] = await p.waitForAccessLogs(1);
    expect(line).toMatchObject({ client: '203.0.113.7', clientPort: 5555, end: 'done' });
  });

  it('takes the client address from a v2 header (AWS NLB, HAProxy send-proxy-v2) and passes it on in v1', async () => {
    const o = await origin();
    const p = await proxy([o.address], 'accept_proxy_protocol: true\nsend_proxy_protocol: v1');
    const v2 = Buffer.from('0d0a0d0a000d0a515549540a2111000cac130001ac130003a6520050', 'hex');
    const reply = await exchange(p.port, Buffer.concat([v2, Buffer.from('hi')]));
    expect(reply.toString()).toBe('hi');
    expect(o.proxyHeaders[0]!.toString('latin1')).toBe('PROXY TCP4 172.19.0.1 172.19.0.3 42578 80\r\n');
  });

  it('hashes on the address from the header, not on the load balancer in front', async () => {
    const os = await Promise.all(['o1', 'o2', 'o3'].map((n) => startTcpOrigin(n, 'greet')));
    cleanup.push(async () => {
      await Promise.all(os.map((x) => x.close()));
    });
    const p = await startTcpProxy(os.map((x) => x.address), { listener: 'accept_proxy_protocol: true', upstream: 'balance: maglev' });
    cleanup.push(() => p.stop());
    const originFor = async (ip: string): Promise<string> => (await exchange(p.port, `PROXY TCP4 ${ip} 192.0.2.1 1000 6432\r\n`)).toString().trim();
    const picks = new Map<string, string>();
    for (let i = 1; i <= 20; i++) picks.set(`198.51.100.${i}`, await originFor(`198.51.100.${i}`));
    for (const [ip, name] of picks) expect(await originFor(ip)).toBe(name);
    // One TCP peer (127.0.0.1), yet the clients behind it spread over the servers.
    expect(new Set(picks.values()).size).toBeGreaterThan(1);
  });

  it('UNKNOWN and LOCAL keep the connection addresses', async () => {
    const o = await origin();
    const p = await proxy([o.address], 'accept_proxy_protocol: true\nsend_proxy_protocol: v1');
    expect((await exchange(p.port, 'PROXY UNKNOWN\r\nx')).toString()).toBe('x');
    const local = Buffer.from('0d0a0d0a000d0a515549540a20000000', 'hex');
    expect((await exchange(p.port, Buffer.concat([local, Buffer.from('y')]))).toString()).toBe('y');
    for (const h of o.proxyHeaders) expect(h.toString('latin1')).toMatch(/^PROXY TCP4 127\.0\.0\.1 127\.0\.0\.1 \d+ \d+\r\n$/);
  });

  it('closes a connection without a valid header before contacting any server', async () => {
    const o = await origin();
    const p = await proxy([o.address], 'accept_proxy_protocol: true');
    for (const bad of ['GET / HTTP/1.1\r\nhost: x\r\n\r\n', 'PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n', `PROXY ${'x'.repeat(200)}`]) {
      const client = await connectClient(p.port);
      const all = readAll(client);
      client.write(bad);
      expect((await all).length).toBe(0);
      client.destroy();
    }
    expect(o.accepted).toBe(0);
    const lines = await p.waitForAccessLogs(3);
    for (const line of lines) expect(line).toMatchObject({ end: 'proxy-protocol', detail: expect.stringMatching(/^invalid: /) as string });
    const text = await p.metrics.registry.metrics();
    expect(text).toContain('ballast_tcp_connections_closed_total{listener="db",end="proxy-protocol"} 3');
  });

  it('a peer that connects and leaves without a header is client-gone, not a protocol error', async () => {
    const o = await origin();
    const p = await proxy([o.address], 'accept_proxy_protocol: true');
    const client = await connectClient(p.port);
    client.end();
    await readBytes(client, 1);
    const [line] = await p.waitForAccessLogs(1);
    expect(line).toMatchObject({ end: 'client-gone' });
    expect(o.accepted).toBe(0);
  });
});
