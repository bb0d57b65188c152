/**
 * DNS discovery end to end (issue #16): a real DNS server on 127.0.0.1 (test/helpers/dns-server.ts), origins on
 * 127.0.0.2–.4 sharing one port, a real Ballast resolving through node:dns. Membership follows A and SRV answers,
 * a server that stays is the same Host with its health and ejection state, a vanished one drains, and a resolver
 * that fails or answers empty leaves the last set serving.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { get, startBallast, type TestBallast } from '../helpers/ballast.js';
import { startDnsServer, type DnsServer } from '../helpers/dns-server.js';
import { startOrigin, startOriginsOnOnePort, type Origin } from '../helpers/origin.js';
import { waitFor } from '../helpers/wait.js';
import { nextLookupIn, TTL_FLOOR_MS } from '../../src/discovery/dns-discovery.js';

const INTERVAL = '150ms';
const NAME = 'api.test';

let dns: DnsServer | undefined;
let origins: Origin[] = [];
let ballast: TestBallast | undefined;

afterEach(async () => {
  await ballast?.stop();
  await Promise.all(origins.map((o) => o.close()));
  await dns?.close();
  ballast = undefined;
  dns = undefined;
  origins = [];
});

function config(dnsLine: string, upstreamExtra = ''): string {
  return `
admin: { listen: 127.0.0.1:0 }
logging: { level: info, access_log: false }
listeners:
  - name: web
    listen: 127.0.0.1:0
    routes: [ { upstream: api } ]
upstreams:
  - name: api
    discovery:
      dns: ${dnsLine}
${upstreamExtra}
`;
}

async function setUp(hosts: readonly string[], answer: readonly string[], upstreamExtra = ''): Promise<number> {
  dns = await startDnsServer();
  origins = await startOriginsOnOnePort(hosts);
  const port = origins[0]!.port;
  dns.set(NAME, { A: answer.map((address) => ({ address })) });
  ballast = await startBallast(config(`{ name: ${NAME}, port: ${port}, type: A, resolvers: ["${dns.address}"], interval: ${INTERVAL} }`, upstreamExtra));
  return port;
}

const api = () => ballast!.ballast.upstreams.get('api')!;
const addresses = () => api().hosts.map((h) => h.address);

/** Sends requests until every origin in `names` has answered one; fails if any other origin answers. */
async function reachesExactly(names: readonly string[]): Promise<void> {
  const seen = new Set<string>();
  await waitFor(async () => {
    const r = await get(ballast!.url('/'));
    expect(r.status).toBe(200);
    const origin = String(r.headers['x-origin']);
    expect(names).toContain(origin);
    seen.add(origin);
    return seen.size === names.length;
  }, { what: () => `requests reaching ${names.join(', ')} (seen ${[...seen].join(', ')})` });
}

describe('when the next lookup is', () => {
  it('after interval, or after a shorter record TTL, but never sooner than the floor for a TTL', () => {
    expect(nextLookupIn(5000, undefined)).toBe(5000);
    expect(nextLookupIn(5000, 300_000)).toBe(5000);
    expect(nextLookupIn(5000, 2000)).toBe(2000);
    expect(nextLookupIn(5000, 0)).toBe(TTL_FLOOR_MS);
    expect(nextLookupIn(200, 0)).toBe(200);
  });
});

describe('DNS discovery (A records)', () => {
  it('follows the answers: a new address is added, a vanished one drains its requests in flight and is removed, one that stays is the same server', async () => {
    const port = await setUp(['127.0.0.2', '127.0.0.3', '127.0.0.4'], ['127.0.0.2', '127.0.0.3']);
    expect(addresses()).toEqual([`127.0.0.2:${port}`, `127.0.0.3:${port}`]);
    await reachesExactly(['127.0.0.2', '127.0.0.3']);

    // Two requests held by .2 while it leaves the answers: they must finish there, with their response.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let holding = 0;
    origins[0]!.handler = (_req, res) => {
      holding++;
      void held.then(() => res.writeHead(200, { 'x-origin': 'held' }).end('late'));
    };
    const inFlight = [get(ballast!.url('/a')), get(ballast!.url('/b')), get(ballast!.url('/c')), get(ballast!.url('/d'))];
    await waitFor(() => holding > 0, { what: '.2 holding a request' });

    const stays = api().host(`127.0.0.3:${port}`)!;
    const removed = api().host(`127.0.0.2:${port}`)!;
    const asked = dns!.queries.length;
    dns!.set(NAME, { A: [{ address: '127.0.0.4' }, { address: '127.0.0.3' }] });
    await waitFor(() => addresses().includes(`127.0.0.4:${port}`), { what: '.4 discovered' });
    // Applied by the first lookup after the change: within one interval (the records' 300 s TTL is longer).
    expect(dns!.queries.length).toBe(asked + 1);
    expect(addresses()).toEqual([`127.0.0.3:${port}`, `127.0.0.4:${port}`]);
    expect(api().host(`127.0.0.3:${port}`)).toBe(stays);
    expect(removed.draining).toBe(true);
    await reachesExactly(['127.0.0.3', '127.0.0.4']);

    release();
    const replies = await Promise.all(inFlight);
    expect(replies.every((r) => r.status === 200)).toBe(true);
    expect(replies.filter((r) => r.headers['x-origin'] === 'held')).toHaveLength(holding);
    const changes = ballast!.logs.filter((l) => l.msg === 'DNS discovery: servers changed');
    expect(changes.at(-1)).toMatchObject({ upstream: 'api', added: [`127.0.0.4:${port}`], removed: [`127.0.0.2:${port}`] });
  });

  it('a server that stays keeps its active-check verdict, its ejection and its ejection count; a new one is probed and watched', async () => {
    const port = await setUp(['127.0.0.2', '127.0.0.3', '127.0.0.4'], ['127.0.0.2', '127.0.0.3'], `
    panic_threshold: 0%
    health_check: { interval: 100ms, timeout: 500ms, healthy_threshold: 1, unhealthy_threshold: 1 }
    outlier_detection: { consecutive_gateway_failures: 2, base_ejection_time: 60s, max_ejection_percent: 100%, uneject_on_active_success: false }`);
    const [o2, o3, o4] = origins as [Origin, Origin, Origin];
    // .2 fails its checks; .3 passes them but answers 502, until it is ejected.
    o2.healthy = false;
    o3.mode = { status: 502 };
    const h2 = api().host(`127.0.0.2:${port}`)!;
    const h3 = api().host(`127.0.0.3:${port}`)!;
    await waitFor(() => h2.activeCheckFailed, { what: '.2 failing its checks' });
    await waitFor(async () => {
      await get(ballast!.url('/'));
      return h3.ejectedUntil > api().now();
    }, { what: '.3 ejected' });
    const ejectedUntil = h3.ejectedUntil;
    const before = ballast!.ballast.health.snapshot().find((s) => s.server === h3.address)!;
    expect(before.ejections).toBe(1);

    // .4 joins, starting unhealthy until its first check passes; .4's outcomes are watched by outlier detection.
    dns!.set(NAME, { A: [{ address: '127.0.0.3' }, { address: '127.0.0.4' }, { address: '127.0.0.2' }] });
    await waitFor(() => api().host(`127.0.0.4:${port}`) !== undefined, { what: '.4 discovered' });
    const h4 = api().host(`127.0.0.4:${port}`)!;
    await waitFor(() => !h4.activeCheckFailed, { what: '.4 passing its first check' });
    expect(api().host(`127.0.0.2:${port}`)).toBe(h2);
    expect(api().host(`127.0.0.3:${port}`)).toBe(h3);
    expect(h2.activeCheckFailed).toBe(true);
    expect(h3.ejectedUntil).toBe(ejectedUntil);
    expect(ballast!.ballast.health.snapshot().find((s) => s.server === h3.address)!.ejections).toBe(1);
    // Only .4 is available: every request goes there.
    await reachesExactly(['127.0.0.4']);
    o4.mode = { status: 502 };
    await waitFor(async () => {
      await get(ballast!.url('/'));
      return h4.ejectedUntil > api().now();
    }, { what: '.4 ejected by outlier detection' });

    // .2 leaves: its probe loop stops.
    expect(ballast!.ballast.health.checker.targets).toBe(3);
    dns!.set(NAME, { A: [{ address: '127.0.0.3' }, { address: '127.0.0.4' }] });
    await waitFor(() => api().host(`127.0.0.2:${port}`) === undefined, { what: '.2 removed' });
    expect(ballast!.ballast.health.checker.targets).toBe(2);
  });

  it('a failed lookup keeps the last set serving, counts each failure, and logs once per outage and once at recovery', async () => {
    const port = await setUp(['127.0.0.2', '127.0.0.3'], ['127.0.0.2', '127.0.0.3']);
    const errors = async () => metric(await get(`http://127.0.0.1:${ballast!.adminPort}/metrics`).then((r) => r.body));
    expect(await errors()).toBe(0);

    await dns!.stop();
    await waitFor(async () => (await errors()) >= 3, { what: 'three failed lookups counted' });
    expect(addresses()).toEqual([`127.0.0.2:${port}`, `127.0.0.3:${port}`]);
    await reachesExactly(['127.0.0.2', '127.0.0.3']);
    const failing = ballast!.logs.filter((l) => String(l.msg).startsWith('DNS discovery: lookup failed'));
    expect(failing).toHaveLength(1);
    expect(failing[0]).toMatchObject({ upstream: 'api', code: 'ECONNREFUSED', keptServers: 2 });

    await dns!.restart();
    dns!.set(NAME, { A: [{ address: '127.0.0.3' }] });
    await waitFor(() => addresses().length === 1, { what: 'the answer applied again' });
    expect(ballast!.logs.filter((l) => l.msg === 'DNS discovery: lookups answer again')).toHaveLength(1);

    // SERVFAIL is a failure too: the set stays, one more outage is logged.
    dns!.mode = 'servfail';
    const counted = await errors();
    await waitFor(async () => (await errors()) >= counted + 2, { what: 'SERVFAIL counted' });
    expect(addresses()).toEqual([`127.0.0.3:${port}`]);
    const outages = ballast!.logs.filter((l) => String(l.msg).startsWith('DNS discovery: lookup failed'));
    expect(outages.at(-1)).toMatchObject({ code: 'ESERVFAIL' });
    expect(outages).toHaveLength(2);
  });

  it('an empty answer (NXDOMAIN or no records of the type) keeps the last set, and is counted and logged as an outage', async () => {
    const port = await setUp(['127.0.0.2', '127.0.0.3'], ['127.0.0.2', '127.0.0.3']);
    const errors = async () => metric(await get(`http://127.0.0.1:${ballast!.adminPort}/metrics`).then((r) => r.body));
    dns!.remove(NAME);
    await waitFor(async () => (await errors()) >= 2, { what: 'NXDOMAIN counted' });
    expect(addresses()).toEqual([`127.0.0.2:${port}`, `127.0.0.3:${port}`]);
    await reachesExactly(['127.0.0.2', '127.0.0.3']);
    expect(ballast!.logs.filter((l) => String(l.msg).startsWith('DNS discovery: empty answer'))[0]).toMatchObject({ code: 'ENOTFOUND' });

    dns!.set(NAME, { AAAA: [{ address: '::1' }] });
    const counted = await errors();
    await waitFor(async () => (await errors()) >= counted + 2, { what: 'NODATA counted' });
    expect(addresses()).toEqual([`127.0.0.2:${port}`, `127.0.0.3:${port}`]);
  });

  it('keeps configured servers beside the discovered ones, and starts with them alone when the name does not resolve yet', async () => {
    dns = await startDnsServer();
    origins = await startOriginsOnOnePort(['127.0.0.2', '127.0.0.3']);
    const fixed = await startOrigin('fixed');
    origins.push(fixed);
    const port = origins[0]!.port;
    ballast = await startBallast(config(`{ name: ${NAME}, port: ${port}, resolvers: ["${dns.address}"], interval: ${INTERVAL} }`, `    servers: [ { address: ${fixed.address} } ]`));
    expect(addresses()).toEqual([fixed.address]);
    await reachesExactly(['fixed']);
    dns.set(NAME, { A: [{ address: '127.0.0.3' }, { address: '127.0.0.2' }] });
    await waitFor(() => addresses().length === 3, { what: 'discovered servers added' });
    expect(addresses()).toEqual([fixed.address, `127.0.0.2:${port}`, `127.0.0.3:${port}`]);
    await reachesExactly(['fixed', '127.0.0.2', '127.0.0.3']);
  });
});

describe('DNS discovery (SRV records)', () => {
  it('takes port and weight from the records, makes higher priorities backups, and follows changes', async () => {
    dns = await startDnsServer();
    const [a, b] = [await startOrigin('a', 0, '127.0.0.2'), await startOrigin('b', 0, '127.0.0.3')];
    const c = await startOrigin('c', 0, '127.0.0.4');
    origins = [a, b, c];
    dns.set('a.nodes.test', { A: [{ address: '127.0.0.2' }] });
    dns.set('b.nodes.test', { A: [{ address: '127.0.0.3' }] });
    dns.set('c.nodes.test', { A: [{ address: '127.0.0.4' }] });
    dns.set('_http._tcp.api.test', { SRV: [
      { priority: 10, weight: 3, port: a.port, target: 'a.nodes.test' },
      { priority: 20, weight: 1, port: b.port, target: 'b.nodes.test' },
    ] });
    ballast = await startBallast(config(`{ name: _http._tcp.api.test, type: SRV, resolvers: ["${dns.address}"], interval: ${INTERVAL} }`, '    balance: weighted-round-robin'));
    expect(api().hosts.map((h) => [h.address, h.weight, h.backup])).toEqual([[a.address, 3, false], [b.address, 1, true]]);
    await reachesExactly(['a']);
    const hostA = api().host(a.address)!;

    dns.set('_http._tcp.api.test', { SRV: [
      { priority: 10, weight: 1, port: c.port, target: 'c.nodes.test' },
      { priority: 10, weight: 2, port: a.port, target: 'a.nodes.test' },
    ] });
    await waitFor(() => api().host(c.address) !== undefined, { what: 'c discovered' });
    expect(api().hosts.map((h) => [h.address, h.weight, h.backup])).toEqual([[a.address, 2, false], [c.address, 1, false]]);
    expect(api().host(a.address)).toBe(hostA);
    await reachesExactly(['a', 'c']);
  });
});

function metric(text: string): number {
  const line = text.split('\n').find((l) => l.startsWith('ballast_discovery_errors_total{upstream="api"}'));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
}
