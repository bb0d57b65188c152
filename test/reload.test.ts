/** Reload: the new config takes over without dropping a connection, and server health survives it. */
import { describe, expect, it } from 'vitest';
import { onCleanup, origins } from './helpers/fixtures.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Origin } from './helpers/origin.js';
import { freePort, get, startBallast, type TestBallast } from './helpers/ballast.js';
import { waitFor } from './helpers/wait.js';
import { parseConfig } from '../src/config/load.js';
import { poolConfig } from './health/config.js';
import { logsWith, send } from './health/traffic.js';
import type { Config } from '../src/config/schema.js';

function yaml(servers: Origin[], extraListener = ''): string {
  return `
admin: { listen: 127.0.0.1:0 }
logging: { level: info, access_log: false }
listeners:
  - { name: web, listen: 127.0.0.1:0, routes: [{ upstream: pool }] }
${extraListener}
upstreams:
  - name: pool
    servers:
${servers.map((o) => `      - { address: ${o.address} }`).join('\n')}
`;
}

function config(text: string): Config {
  const r = parseConfig(text, {});
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.config;
}

const originOf = (body: string) => (JSON.parse(body) as { origin: string }).origin;

describe('reload', () => {
  it('adds a server and a listener, keeps the port, keeps a disabled server disabled, finishes requests in flight', async () => {
    const [a, b, c] = await origins(3);
    const ballast: TestBallast = await startBallast(yaml([a!, b!]));
    onCleanup(() => ballast.stop());
    const port = ballast.port;
    ballast.ballast.upstreams.get('pool')!.host(b!.address)!.setDisabled(true, performance.now());
    a!.handler = (_req, res) => setTimeout(() => res.end(JSON.stringify({ origin: 'o1' })), 300);
    const inflight = get(ballast.url('/slow'));
    await waitFor(() => a!.received.length === 1);

    await ballast.ballast.reload(config(yaml([a!, b!, c!], '  - { name: extra, listen: 127.0.0.1:0, routes: [{ upstream: pool }] }')));
    a!.handler = undefined;

    expect((await inflight).status).toBe(200);
    expect(ballast.ballast.port('web')).toBe(port);
    const status = JSON.parse((await get(`http://127.0.0.1:${ballast.adminPort}/status`)).body) as { upstreams: { servers: { address: string; state: string }[] }[] };
    expect(status.upstreams[0]!.servers.map((s) => [s.address, s.state])).toEqual([
      [a!.address, 'healthy'],
      [b!.address, 'disabled'],
      [c!.address, 'healthy'],
    ]);
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) seen.add(originOf((await get(ballast.url('/'))).body));
    expect(seen).toEqual(new Set(['o1', 'o3']));
    const extra = ballast.ballast.port('extra');
    expect((await get(`http://127.0.0.1:${extra}/`)).status).toBe(200);

    // And back: the extra listener goes away, its port is closed.
    await ballast.ballast.reload(config(yaml([a!, c!])));
    await expect(get(`http://127.0.0.1:${extra}/`)).rejects.toThrow();
    expect((await get(ballast.url('/'))).status).toBe(200);
  });

  it('access_log and a level above info switch access lines on and off at a reload', async () => {
    const [a] = await origins(1);
    const ballast = await startBallast(yaml([a!]));
    onCleanup(() => ballast.stop());
    const accessLines = () => ballast.logs.filter((l) => l.kind === 'access').map((l) => l.url);
    await get(ballast.url('/off'));
    await ballast.ballast.reload(config(yaml([a!]).replace('access_log: false', 'access_log: true')));
    await get(ballast.url('/on'));
    await waitFor(() => accessLines().length === 1);
    await ballast.ballast.reload(config(yaml([a!]).replace('level: info, access_log: false', 'level: warn, access_log: true')));
    await get(ballast.url('/quiet'));
    await ballast.ballast.reload(config(yaml([a!]).replace('access_log: false', 'access_log: true')));
    await get(ballast.url('/again'));
    await waitFor(() => accessLines().length === 2);
    expect(accessLines()).toEqual(['/on', '/again']);
  });

  it('a retry waiting out Retry-After across a reload still reaches its origin', async () => {
    const [a] = await origins(1);
    a!.mode = { status: 503, headers: { 'retry-after': '1' } };
    const ballast = await startBallast(yaml([a!]));
    onCleanup(() => ballast.stop());
    const pending = get(ballast.url('/'));
    await waitFor(() => a!.received.length === 1);
    a!.mode = 'ok';
    await ballast.ballast.reload(config(yaml([a!])));
    const res = await pending;
    expect(res.status).toBe(200);
    expect(a!.received).toHaveLength(2);
  });

  it('a reload that removes health_check frees a server its checks had marked down', async () => {
    const [a] = await origins(1);
    a!.healthy = false;
    const checked = yaml([a!]) + '    health_check: { interval: 50ms, timeout: 500ms, unhealthy_threshold: 1, healthy_threshold: 1, initial_state: healthy }\n';
    const ballast = await startBallast(checked);
    onCleanup(() => ballast.stop());
    const host = () => ballast.ballast.upstreams.get('pool')!.hosts[0]!;
    await waitFor(() => host().state(performance.now()) === 'unhealthy');
    expect((await get(ballast.url('/'))).status).toBe(503);
    await ballast.ballast.reload(config(yaml([a!])));
    expect(host().state(performance.now())).toBe('healthy');
    expect((await get(ballast.url('/'))).status).toBe(200);
  });

  it('a server added to a second upstream by a reload follows the checks it already has', async () => {
    const [a] = await origins(1);
    const two = (extra: string) => `
admin: { listen: 127.0.0.1:0 }
logging: { level: silent }
listeners:
  - name: web
    listen: 127.0.0.1:0
    routes:
${extra ? '      - { match: { path_prefix: /two }, upstream: two }\n' : ''}      - { upstream: one }
upstreams:
  - { name: one, servers: [{ address: ${a!.address} }], health_check: { interval: 50ms, timeout: 500ms, healthy_threshold: 1 } }
${extra}`;
    const ballast = await startBallast(two(''));
    onCleanup(() => ballast.stop());
    expect((await get(ballast.url('/'))).status).toBe(200);
    await ballast.ballast.reload(config(two(`  - { name: two, servers: [{ address: ${a!.address} }], health_check: { interval: 50ms, timeout: 500ms, healthy_threshold: 1 } }`)));
    await waitFor(async () => (await get(ballast.url('/two'))).status === 200, { timeoutMs: 3000 });
    expect((await get(ballast.url('/'))).status).toBe(200);
  });

  it('an ejected server stays ejected across a reload, its end is still logged, and its next ejection lasts twice as long', async () => {
    const [a, b] = await origins(2);
    a!.mode = { status: 500 };
    const base = 300;
    // interval 60s: no decay of the ejection count during the test; no retry, so every 500 reaches the detector once.
    const text = poolConfig({
      servers: [a!, b!],
      upstream: `    outlier_detection: { consecutive_failures: 2, consecutive_gateway_failures: 0, base_ejection_time: ${base}ms, max_ejection_time: 10s, max_ejection_percent: 50%, interval: 60s }
    retry: { attempts: 1 }`,
    });
    const ballast = await startBallast(text);
    onCleanup(() => ballast.stop());
    const ejections = () => logsWith(ballast, 'server ejected');
    const host = () => ballast.ballast.upstreams.get('pool')!.host(a!.address)!;
    while (ejections().length === 0) await send(ballast);
    expect(ejections()[0]).toMatchObject({ server: a!.address, ejections: 1 });

    await ballast.ballast.reload(config(text));
    expect(host().state(performance.now())).toBe('ejected');
    await waitFor(() => logsWith(ballast, 'server ejection ended').length === 1, { what: 'the end of the ejection, logged after the reload' });
    while (ejections().length === 1) await send(ballast);
    const second = ejections()[1]!;
    expect(second).toMatchObject({ server: a!.address, ejections: 2 });
    expect(second.ejectedForMs).toBeGreaterThanOrEqual(2 * base);
    expect(logsWith(ballast, 'server ejection ended')).toHaveLength(1);
  });

  it('refuses a reload whose new listener cannot bind, and changes nothing', async () => {
    const [a, b] = await origins(2);
    const ballast = await startBallast(yaml([a!]));
    onCleanup(() => ballast.stop());
    const taken = `  - { name: clash, listen: 127.0.0.1:${ballast.adminPort}, routes: [{ upstream: pool }] }`;
    await expect(ballast.ballast.reload(config(yaml([a!, b!], taken)))).rejects.toThrow();
    expect(ballast.ballast.upstreams.get('pool')!.hosts.map((h) => h.address)).toEqual([a!.address]);
    for (let i = 0; i < 3; i++) expect(originOf((await get(ballast.url('/'))).body)).toBe('o1');
  });

  it('SIGHUP with an invalid file keeps the running config and logs where the error is; a fixed file applies', async () => {
    const [a, b] = await origins(2);
    const dir = mkdtempSync(join(tmpdir(), 'ballast-reload-'));
    const file = join(dir, 'ballast.yaml');
    const port = await freePort();
    const text = (servers: Origin[], balance = 'round-robin') => `
admin: { listen: 127.0.0.1:0 }
logging: { level: info, access_log: false }
listeners:
  - { name: web, listen: 127.0.0.1:${port}, routes: [{ upstream: pool }] }
upstreams:
  - name: pool
    balance: ${balance}
    servers:
${servers.map((o) => `      - { address: ${o.address} }`).join('\n')}
`;
    writeFileSync(file, text([a!]));
    const child: ChildProcess = spawn(process.execPath, [join(import.meta.dirname, '..', 'dist', 'cli.js'), '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    onCleanup(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
    await waitFor(() => out.includes('"listening"'), { timeoutMs: 10_000 }).catch((err: unknown) => {
      throw new Error(`${String(err)}: ${out}`);
    });
    expect(originOf((await get(`http://127.0.0.1:${port}/`)).body)).toBe('o1');

    writeFileSync(file, text([a!, b!], 'round-robbin'));
    child.kill('SIGHUP');
    await waitFor(() => out.includes('reload refused'), { timeoutMs: 5000 });
    expect(out).toContain(`${file}:8:14 upstreams[0].balance`);
    for (let i = 0; i < 3; i++) expect(originOf((await get(`http://127.0.0.1:${port}/`)).body)).toBe('o1');

    writeFileSync(file, text([b!]));
    child.kill('SIGHUP');
    await waitFor(() => out.includes('config reloaded'), { timeoutMs: 5000 });
    for (let i = 0; i < 3; i++) expect(originOf((await get(`http://127.0.0.1:${port}/`)).body)).toBe('o2');
  });
});
