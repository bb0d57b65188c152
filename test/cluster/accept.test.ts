/**
 * How `workers: 2` takes connections (src/cluster/accept.ts): each worker accepts its own, so a worker killed with -9
 * under load leaves no connection unanswered (every one gets a response or an error a client can retry, none hangs);
 * a listener on port 0 is one port for every worker; an address another process holds is refused at start and at a
 * reload, as a single process refuses it; and a reload that moves a listener to another port or adds one binds it in
 * every worker.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { createServer, type Server } from 'node:net';
import { namedOrigins, onCleanup } from '../helpers/fixtures.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { accessLines, exitCode, freePorts, getFresh, getFromEveryWorker, killAll, startCluster, writeConfig } from './harness.js';

afterEach(() => killAll());

/** How long a connection may go without a response or an error before it counts as hung. */
const HANG_MS = 5000;

type Outcome = 'answered' | 'hung' | `error ${string}`;

/** One request on a connection of its own; never rejects: what became of it. */
function attempt(port: number): Promise<Outcome> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (outcome: Outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(outcome);
    };
    const req = http.get({ host: '127.0.0.1', port, path: '/load', agent: false, headers: { connection: 'close' } }, (res) => {
      res.resume();
      res.on('end', () => settle(res.statusCode === 200 ? 'answered' : `error status ${res.statusCode}`));
      res.on('error', (err: NodeJS.ErrnoException) => settle(`error ${err.code ?? err.message}`));
    });
    req.on('error', (err: NodeJS.ErrnoException) => settle(`error ${err.code ?? err.message}`));
    const timer = setTimeout(() => {
      settle('hung');
      req.destroy();
    }, HANG_MS);
  });
}

async function heldPort(): Promise<{ server: Server; port: number }> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onCleanup(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { server, port: (server.address() as { port: number }).port };
}

describe('workers accept their own connections', () => {
  it('a worker killed with -9 under new-connection load leaves no connection unanswered', async () => {
    const [a, b] = await namedOrigins('o1', 'o2');
    // A little time at the origin, so that requests are in flight in both workers when one is killed.
    for (const o of [a!, b!]) o.handler = (_req, res) => setTimeout(() => res.end('ok'), 5);
    const cluster = await startCluster((port, adminPort) => `
admin: { listen: 127.0.0.1:${adminPort} }
logging: { level: info, access_log: false }
workers: 2
listeners:
  - { name: web, listen: 127.0.0.1:${port}, routes: [{ upstream: pool }] }
upstreams:
  - { name: pool, servers: [{ address: ${a!.address} }, { address: ${b!.address} }] }
`);
    const [victim] = cluster.workerPids();
    const outcomes: { outcome: Outcome; afterKill: boolean }[] = [];
    let killed = false;
    let stop = false;
    // 16 clients, each opening a new connection per request, as fast as they are answered.
    const clients = Array.from({ length: 16 }, async () => {
      while (!stop) {
        const afterKill = killed;
        outcomes.push({ outcome: await attempt(cluster.port), afterKill });
      }
    });
    try {
      await waitFor(() => outcomes.length >= 300, { what: '300 requests before the kill', timeoutMs: 15_000 });
      const from = cluster.lines.length;
      process.kill(victim!, 'SIGKILL');
      killed = true;
      await cluster.waitForLine((l) => l.msg === 'worker ready', 'another worker ready', { from });
      const now = outcomes.length;
      await waitFor(() => outcomes.length >= now + 300, { what: '300 requests after the restart', timeoutMs: 15_000 });
    } finally {
      stop = true;
      await Promise.all(clients);
    }

    const count = (pick: (o: Outcome) => boolean) => outcomes.filter((o) => pick(o.outcome)).length;
    const errors = outcomes.filter((o) => o.outcome.startsWith('error')).map((o) => o.outcome);
    // Every connection got an answer or an error; none waited out the bound.
    expect(count((o) => o === 'hung')).toBe(0);
    // The errors are the killed worker's connections: reset, or closed before a response (Node's "socket hang up"
    // is ECONNRESET too), which a client can retry. Never a 5xx from the survivor.
    expect(new Set(errors).size === 0 || [...new Set(errors)].every((e) => e === 'error ECONNRESET' || e === 'error EPIPE')).toBe(true);
    // About one per client at most (its connection when the worker died), not a failure that goes on.
    expect(errors.length).toBeLessThan(40);
    expect(outcomes.filter((o) => o.afterKill && o.outcome === 'answered').length).toBeGreaterThanOrEqual(300);
    expect(cluster.lines.filter((l) => l.msg === 'worker exited unexpectedly: starting another')).toHaveLength(1);
  });

  it('a listener on port 0 is one port that every worker accepts on', async () => {
    const [a] = await namedOrigins('o1');
    const cluster = await startCluster((port, adminPort) => `
admin: { listen: 127.0.0.1:${adminPort} }
logging: { level: info, access_log: true }
workers: 2
listeners:
  - { name: web, listen: 127.0.0.1:${port}, routes: [{ upstream: pool }] }
  - { name: any, listen: 127.0.0.1:0, routes: [{ upstream: pool }] }
upstreams:
  - { name: pool, servers: [{ address: ${a!.address} }] }
`);
    const lines = await waitFor(() => cluster.lines.filter((l) => l.msg === 'listening' && l.listener === 'any').length === 2, { what: 'both workers listening on port 0' })
      .then(() => cluster.lines.filter((l) => l.msg === 'listening' && l.listener === 'any'));
    expect(new Set(lines.map((l) => l.worker))).toEqual(new Set([1, 2]));
    const addresses = new Set(lines.map((l) => l.address as string));
    expect(addresses.size).toBe(1);
    const port = Number([...addresses][0]!.split(':').pop());
    expect(port).toBeGreaterThan(0);
    const replies = await getFromEveryWorker({ ...cluster, url: (path = '/') => `http://127.0.0.1:${port}${path}` }, '/any', { n: 10 });
    expect(replies.every((r) => r.status === 200)).toBe(true);
  });

  it('an address another process holds is refused at start, as a single process refuses it', async () => {
    const [a] = await namedOrigins('o1');
    const held = await heldPort();
    const [adminPort] = (await freePorts(1)) as [number];
    const file = writeConfig(`
admin: { listen: 127.0.0.1:${adminPort} }
workers: 2
listeners:
  - { name: web, listen: 127.0.0.1:${held.port}, routes: [{ upstream: pool }] }
upstreams:
  - { name: pool, servers: [{ address: ${a!.address} }] }
`);
    const child = spawn(process.execPath, [new URL('../../dist/cli.js', import.meta.url).pathname, '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.stdout.resume();
    onCleanup(() => void child.kill('SIGKILL'));
    expect(await exitCode(child)).toBe(1);
    expect(stderr).toContain('EADDRINUSE');
    expect(stderr).toContain(`127.0.0.1:${held.port}`);
  });

  it('a reload moves a listener to another port and adds one, in every worker; an address held elsewhere refuses the reload', async () => {
    const [a] = await namedOrigins('o1');
    const [moved, added] = (await freePorts(2)) as [number, number];
    const text = (port: number, adminPort: number, extra = '') => `
admin: { listen: 127.0.0.1:${adminPort} }
logging: { level: info, access_log: true }
workers: 2
listeners:
  - { name: web, listen: 127.0.0.1:${port}, routes: [{ upstream: pool }] }
${extra}
upstreams:
  - { name: pool, servers: [{ address: ${a!.address} }] }
`;
    const cluster = await startCluster((port, adminPort) => text(port, adminPort));
    await getFromEveryWorker(cluster, '/before', { n: 6 });

    // web moves to `moved`; `extra` is new, on `added`.
    writeFileSync(cluster.file, text(moved, cluster.adminPort, `  - { name: extra, listen: 127.0.0.1:${added}, routes: [{ upstream: pool }] }`));
    cluster.child.kill('SIGHUP');
    await cluster.waitForLine((l) => l.msg === 'config reloaded', 'config reloaded');
    for (const [name, port] of [['web', moved], ['extra', added]] as const) {
      const at = { ...cluster, url: (path = '/') => `http://127.0.0.1:${port}${path}` };
      const replies = await getFromEveryWorker(at, `/${name}-after`, { n: 6 });
      expect(replies.every((r) => r.status === 200)).toBe(true);
    }
    await expect(getFresh(cluster.url('/old-port'))).rejects.toThrow(/ECONNREFUSED/);

    // A new listener on a port another process holds: refused, and everything stays as it was.
    const held = await heldPort();
    const from = cluster.lines.length;
    writeFileSync(cluster.file, text(moved, cluster.adminPort, `  - { name: extra, listen: 127.0.0.1:${added}, routes: [{ upstream: pool }] }\n  - { name: taken, listen: 127.0.0.1:${held.port}, routes: [{ upstream: pool }] }`));
    cluster.child.kill('SIGHUP');
    // With a socket per worker the primary finds the port taken before any worker binds; with a shared socket the
    // workers' binds fail, and the primary puts every worker back on the previous config.
    const failed = await cluster.waitForLine((l) => typeof l.msg === 'string' && l.msg.startsWith('reload failed'), 'reload failed', { from });
    expect(JSON.stringify(failed)).toContain('EADDRINUSE');
    await sleep(200);
    expect(cluster.lines.slice(from).filter((l) => l.msg === 'listening' && l.listener === 'taken')).toHaveLength(0);
    const at = { ...cluster, url: (path = '/') => `http://127.0.0.1:${added}${path}` };
    expect((await getFromEveryWorker(at, '/still', { n: 4 })).every((r) => r.status === 200)).toBe(true);
    expect(accessLines(cluster, '/still').every((l) => l.listener === 'extra')).toBe(true);
  });
});
