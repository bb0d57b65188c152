/**
 * DNS discovery with `workers: 2` (issue #16): the primary alone looks the name up and hands every set to the
 * workers, as it shares health; each worker then serves the new servers (once the primary's probe passes them)
 * and stops sending to the ones that left.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startDnsServer, type DnsServer } from '../helpers/dns-server.js';
import { startOriginsOnOnePort, type Origin } from '../helpers/origin.js';
import { waitFor } from '../helpers/wait.js';
import { accessLines, getFromEveryWorker, getJson, killAll, startCluster } from './harness.js';

let dns: DnsServer | undefined;
let origins: Origin[] = [];

afterEach(async () => {
  killAll();
  await Promise.all(origins.map((o) => o.close()));
  await dns?.close();
  origins = [];
  dns = undefined;
});

interface Status {
  upstreams: { name: string; servers: { address: string }[] }[];
}

describe('DNS discovery with workers: 2', () => {
  it('the primary resolves and every worker follows its answers', async () => {
    const server = await startDnsServer();
    dns = server;
    origins = await startOriginsOnOnePort(['127.0.0.2', '127.0.0.3', '127.0.0.4']);
    const port = origins[0]!.port;
    server.set('api.test', { A: [{ address: '127.0.0.2' }, { address: '127.0.0.3' }] });
    const cluster = await startCluster((listen, admin) => `
admin: { listen: 127.0.0.1:${admin} }
logging: { level: info, access_log: true }
workers: 2
listeners:
  - { name: web, listen: 127.0.0.1:${listen}, routes: [ { upstream: api } ] }
upstreams:
  - name: api
    discovery:
      dns: { name: api.test, port: ${port}, resolvers: ["${server.address}"], interval: 150ms }
    health_check: { interval: 100ms, timeout: 1s, healthy_threshold: 1 }
`);
    const servers = (prefix: string, worker: number) => new Set(accessLines(cluster, prefix).filter((l) => l.worker === worker).map((l) => l.server));
    await getFromEveryWorker(cluster, '/before-', { n: 16, each: 4 });
    for (const w of [1, 2]) for (const s of servers('/before-', w)) expect([`127.0.0.2:${port}`, `127.0.0.3:${port}`]).toContain(s);

    server.set('api.test', { A: [{ address: '127.0.0.4' }, { address: '127.0.0.3' }] });
    await cluster.waitForLine((l) => l.msg === 'DNS discovery: servers changed', 'the primary applying the new answer');
    await waitFor(async () => {
      const status = await getJson<Status>(cluster.admin('/status'));
      return status.upstreams[0]!.servers.map((s) => s.address).join() === `127.0.0.3:${port},127.0.0.4:${port}`;
    }, { what: '/status showing the new set' });
    // Each worker reaches the new server (after the primary's probe passed it), and never the removed one.
    let round = 0;
    await waitFor(async () => {
      const prefix = `/after-${round++}-`;
      await getFromEveryWorker(cluster, prefix, { n: 16, each: 4 });
      for (const w of [1, 2]) expect(servers(prefix, w).has(`127.0.0.2:${port}`)).toBe(false);
      return [1, 2].every((w) => servers(prefix, w).has(`127.0.0.4:${port}`));
    }, { what: 'both workers sending to .4', timeoutMs: 15_000 });

    // Only the primary looks the name up and decides membership.
    const changes = cluster.lines.filter((l) => l.msg === 'DNS discovery: servers changed');
    expect(changes.length).toBeGreaterThan(0);
    expect(changes.every((l) => l.role === 'primary')).toBe(true);
  });
});
