/**
 * Two replicas that see the same DNS answer map every key to the same server (issue #16; design.md "Scaling out"),
 * for the ring (consistent-hash) and for Maglev, whatever the order of the records: the strategies lay servers out
 * by address (src/balancer/address-order.ts), never by answer order.
 *
 * - Two `ballast` processes (the compiled CLI, as a user runs it) with the same config, discovering the same three
 *   origins through a real DNS server that gives each the records in another order; HTTP_KEYS keys sent through
 *   both. Not 10,000 there: 40,000 proxied requests take half a minute or more on a loaded two-core machine.
 * - Two Ballast instances in this process, fed the same way, with 10,000 keys each picked from their upstreams.
 * (test/balancer/cross-process.test.ts shows the layouts do not depend on a process's V8 hash seed.)
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort, startBallast } from '../helpers/ballast.js';
import { exitCode, spawnCli, type CliProcess } from '../helpers/cli.js';
import { startDnsServer, type DnsServer } from '../helpers/dns-server.js';
import { startOriginsOnOnePort, type Origin } from '../helpers/origin.js';
import { waitFor } from '../helpers/wait.js';

const HTTP_KEYS = 10_000;
const KEYS = 10_000;
const NAME = 'api.test';
const HOSTS = ['127.0.0.2', '127.0.0.3', '127.0.0.4'];

let dns: DnsServer | undefined;
let origins: Origin[] = [];
const children: CliProcess[] = [];
const client = new Agent({ connections: 16 });

afterEach(async () => {
  for (const c of children.splice(0)) {
    c.kill('SIGTERM');
    await exitCode(c, 10_000).catch(() => c.kill('SIGKILL'));
  }
  await Promise.all(origins.map((o) => o.close()));
  await dns?.close();
  origins = [];
});

function config(listen: number, admin: number, originPort: number, resolver: string): string {
  const upstream = (name: string, balance: string) => `
  - name: ${name}
    balance: ${balance}
    hash_key: header:x-key
    discovery:
      dns: { name: ${NAME}, port: ${originPort}, type: A, resolvers: ["${resolver}"], interval: 1s }`;
  return `
admin: { listen: 127.0.0.1:${admin} }
logging: { level: warn, access_log: false }
listeners:
  - name: web
    listen: 127.0.0.1:${listen}
    routes:
      - { match: { path_prefix: /ring }, upstream: ring }
      - { match: { path_prefix: /maglev }, upstream: maglev }
upstreams:${upstream('ring', 'consistent-hash')}${upstream('maglev', 'maglev')}
`;
}

/** Starts a replica; resolves with its listener port once it answers. */
async function replica(dir: string, name: string, originPort: number, resolver: string): Promise<number> {
  const [listen, admin] = [await freePort(), await freePort()];
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, config(listen, admin, originPort, resolver));
  const child = spawnCli(['--config', file]);
  children.push(child);
  await waitFor(async () => {
    if (child.exitCode !== null) throw new Error(`replica ${name} exited:\n${child.out()}${child.err()}`);
    try {
      const res = await request(`http://127.0.0.1:${listen}/ring`, { dispatcher: client, headers: { 'x-key': 'probe' } });
      await res.body.text();
      return res.statusCode === 200;
    } catch {
      return false;
    }
  }, { what: `replica ${name} serving`, timeoutMs: 15_000 });
  return listen;
}

/** The origin each key lands on through `port`, for the path prefix `path`. */
async function mapping(port: number, path: string): Promise<string[]> {
  const out = new Array<string>(HTTP_KEYS);
  let next = 0;
  await Promise.all(Array.from({ length: 32 }, async () => {
    while (next < HTTP_KEYS) {
      const i = next++;
      const res = await request(`http://127.0.0.1:${port}${path}`, { dispatcher: client, headers: { 'x-key': `user-${i}` } });
      await res.body.dump();
      out[i] = `${res.statusCode} ${String(res.headers['x-origin'])}`;
    }
  }));
  return out;
}

describe('replicas with the same DNS answer', () => {
  it(`map ${HTTP_KEYS} keys identically through two ballast processes, with the ring and with Maglev`, async () => {
    dns = await startDnsServer();
    origins = await startOriginsOnOnePort(HOSTS);
    const dir = mkdtempSync(join(tmpdir(), 'ballast-replicas-'));
    // Each replica gets the records in another order: .2 .3 .4, then .4 .3 .2 (a set, not a list).
    dns.set(NAME, { A: HOSTS.map((address) => ({ address })) });
    const a = await replica(dir, 'a', origins[0]!.port, dns.address);
    dns.set(NAME, { A: [...HOSTS].reverse().map((address) => ({ address })) });
    const b = await replica(dir, 'b', origins[0]!.port, dns.address);

    for (const path of ['/ring', '/maglev']) {
      const [fromA, fromB] = await Promise.all([mapping(a, path), mapping(b, path)]);
      expect(fromA.every((m) => m.startsWith('200 '))).toBe(true);
      expect(fromB).toEqual(fromA);
      // Not vacuous: the keys are spread over all three servers.
      expect(new Set(fromA).size).toBe(HOSTS.length);
    }
    // Two CLI start-ups and 40,000 proxied requests (about 10 s on two cores): generous for a loaded machine.
  }, 120_000);
});

describe('replicas in one process with the same DNS answer', () => {
  it('map 10,000 keys identically, with the ring and with Maglev, whatever the order of the records', async () => {
    dns = await startDnsServer();
    origins = await startOriginsOnOnePort(HOSTS);
    const yaml = config(0, 0, origins[0]!.port, dns.address);
    dns.set(NAME, { A: HOSTS.map((address) => ({ address })) });
    const a = await startBallast(yaml);
    dns.set(NAME, { A: [HOSTS[1]!, HOSTS[2]!, HOSTS[0]!].map((address) => ({ address })) });
    const b = await startBallast(yaml);
    try {
      for (const name of ['ring', 'maglev']) {
        const [ua, ub] = [a.ballast.upstreams.get(name)!, b.ballast.upstreams.get(name)!];
        // The two really were given different orders, and hold the same set.
        expect(ua.discovered.map((s) => s.address.host)).not.toEqual(ub.discovered.map((s) => s.address.host));
        expect(ua.hosts.map((h) => h.address)).toEqual(ub.hosts.map((h) => h.address));
        const pick = (u: typeof ua) => Array.from({ length: KEYS }, (_, i) => u.pick(`user-${i}`, undefined)!.address);
        const fromA = pick(ua);
        expect(pick(ub)).toEqual(fromA);
        expect(new Set(fromA).size).toBe(HOSTS.length);
      }
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });
});
