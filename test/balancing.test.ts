/** Strategies end to end: real origins behind a real Ballast, shares measured from what each origin received. */
import { describe, expect, it } from 'vitest';
import { onCleanup, origins } from './helpers/fixtures.js';
import { Agent } from 'undici';
import { get, startBallast, type TestBallast } from './helpers/ballast.js';

async function balanced(upstream: string, servers: string): Promise<TestBallast> {
  const b = await startBallast(`
admin: { listen: 127.0.0.1:0 }
logging: { level: silent }
listeners:
  - { name: web, listen: 127.0.0.1:0, routes: [{ upstream: pool }] }
upstreams:
  - name: pool
${upstream}
    servers:
${servers}
`);
  onCleanup(() => b.stop());
  return b;
}

const originOf = (body: string) => (JSON.parse(body) as { origin: string }).origin;

describe('balancing through the proxy', () => {
  it('weighted-round-robin: a 5:3:1 pool answers in exactly those shares', async () => {
    const os = await origins(3);
    const b = await balanced('    balance: weighted-round-robin', os.map((o, i) => `      - { address: ${o.address}, weight: ${[5, 3, 1][i]} }`).join('\n'));
    const counts: Record<string, number> = {};
    for (let i = 0; i < 90; i++) {
      const o = originOf((await get(b.url('/'))).body);
      counts[o] = (counts[o] ?? 0) + 1;
    }
    expect(counts).toEqual({ o1: 50, o2: 30, o3: 10 });
  });

  it('consistent-hash and maglev: the same header always reaches the same origin', async () => {
    for (const balance of ['consistent-hash', 'maglev']) {
      const os = await origins(4);
      const b = await balanced(`    balance: ${balance}\n    hash_key: header:x-user`, os.map((o) => `      - { address: ${o.address} }`).join('\n'));
      const owner = new Map<string, string>();
      for (let round = 0; round < 3; round++) {
        for (let u = 0; u < 40; u++) {
          const o = originOf((await get(b.url('/'), { headers: { 'x-user': `user-${u}` } })).body);
          if (round === 0) owner.set(`user-${u}`, o);
          else expect(o, `${balance} user-${u}`).toBe(owner.get(`user-${u}`));
        }
      }
      // The keys spread over the pool rather than all landing on one server.
      expect(new Set(owner.values()).size).toBeGreaterThanOrEqual(3);
    }
  });

  it('sticky sessions: the cookie set by the first answer pins the client to that origin', async () => {
    const os = await origins(3);
    const b = await balanced('    sticky: { cookie: lb, ttl: 1h }', os.map((o) => `      - { address: ${o.address} }`).join('\n'));
    const first = await get(b.url('/'));
    const setCookie = String(first.headers['set-cookie']);
    expect(setCookie).toMatch(/^lb=[0-9a-f]{16}; Path=\/; HttpOnly; SameSite=Lax; Max-Age=3600$/);
    expect(setCookie).not.toContain('127.0.0.1');
    const cookie = setCookie.split(';')[0]!;
    const pinned = originOf(first.body);
    for (let i = 0; i < 6; i++) {
      const res = await get(b.url('/'), { headers: { cookie: `other=1; ${cookie}` } });
      expect(originOf(res.body)).toBe(pinned);
      expect(res.headers['set-cookie']).toBeUndefined();
    }
    // The pinned server goes away: the request is balanced elsewhere and the cookie rewritten.
    const host = b.ballast.upstreams.get('pool')!.hosts.find((h) => h.address === os.find((o) => o.name === pinned)!.address)!;
    host.disabled = true;
    const moved = await get(b.url('/'), { headers: { cookie } });
    expect(originOf(moved.body)).not.toBe(pinned);
    expect(String(moved.headers['set-cookie'])).not.toBe(setCookie);
  });

  for (const balance of ['peak-ewma', 'least-request']) {
    it(`${balance}: an origin slowed to 150 ms gets only a small share`, async () => {
      const os = await origins(3);
      os[0]!.handler = (_req, res) => setTimeout(() => res.end(JSON.stringify({ origin: 'o1' })), 150);
      const b = await balanced(`    balance: ${balance}\n    ewma_decay: 2s`, os.map((o) => `      - { address: ${o.address} }`).join('\n'));
      const agent = new Agent({ connections: 16 });
      onCleanup(() => agent.close());
      const counts: Record<string, number> = { o1: 0, o2: 0, o3: 0 };
      // A number of requests, not a time: a slow machine sends as many as a fast one.
      const TOTAL = 400;
      let sent = 0;
      await Promise.all(Array.from({ length: 8 }, async () => {
        while (sent < TOTAL) {
          sent++;
          const o = originOf((await get(b.url('/'), { dispatcher: agent })).body);
          counts[o] = counts[o]! + 1;
        }
      }));
      const total = counts.o1! + counts.o2! + counts.o3!;
      expect(total).toBe(TOTAL);
      // Even split would be a third; the slow origin must get a small share.
      expect(counts.o1! / total).toBeLessThan(0.1);
    });
  }
});
