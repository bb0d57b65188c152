/** The `ballast` command as a user runs it: a separate process, real signals, real sockets. */
import { afterEach, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { startOrigin, type Origin } from './helpers/origin.js';
import { freePort, get } from './helpers/ballast.js';
import { waitFor } from './helpers/wait.js';
import { exitCode, spawnCli, type CliProcess } from './helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'ballast-cli-'));
const children: ChildProcess[] = [];
const origins: Origin[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
  for (const o of origins.splice(0)) await o.close();
});

function run(args: string[]): CliProcess {
  const child = spawnCli(args);
  children.push(child);
  return child;
}

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe('ballast validate', () => {
  it('exits 0 for a valid file', async () => {
    const child = run(['validate', '--config', join(import.meta.dirname, '..', 'config', 'ballast.yaml')]);
    expect(await exitCode(child)).toBe(0);
    expect(child.out()).toContain('ok');
  });

  it('prints every error with file, line and column, and exits 1', async () => {
    const path = file('bad.yaml', `listeners:
  - { name: web, listen: 127.0.0.1:8080, routes: [{ upstream: api }] }
upstreams:
  - name: api
    balance: round-robbin
    servers: [{ address: 127.0.0.1:9000, wieght: 2 }]
`);
    const child = run(['validate', '--config', path]);
    expect(await exitCode(child)).toBe(1);
    expect(child.err()).toContain(`${path}:5:14 upstreams[0].balance: Invalid option`);
    expect(child.err()).toContain(`${path}:6:42 upstreams[0].servers[0].wieght: unknown key "wieght"`);
    expect(child.err()).toContain('2 errors');
  });

  it('prints an alias to an undefined anchor with file, line and column', async () => {
    const path = file('bad-alias.yaml', `listeners:
  - { name: web, listen: 127.0.0.1:8080, routes: [{ upstream: api }] }
upstreams:
  - { name: api, servers: &servers [{ address: 127.0.0.1:9000 }] }
  - { name: canary, servers: *srvers }
`);
    const child = run(['validate', '--config', path]);
    expect(await exitCode(child)).toBe(1);
    expect(child.err()).toContain(`${path}:5:30 upstreams[1].servers: alias *srvers has no anchor`);
    expect(child.err()).not.toContain('ballast: ');
  });

  it('refuses to start on an invalid file, binding nothing', async () => {
    const path = file('bad-run.yaml', 'listeners: []\nupstreams: []\n');
    const child = run(['--config', path]);
    expect(await exitCode(child)).toBe(1);
    expect(child.err()).toContain('at least one listener');
  });
});

describe('ballast --config', () => {
  /** `ballast --config` in front of one origin, once it has logged that it listens. */
  async function runProxy(origin: Origin, accessLog: boolean, upstreams = `  - { name: api, servers: [{ address: ${origin.address} }] }\n`): Promise<{ child: ReturnType<typeof run>; port: number; path: string }> {
    const port = await freePort();
    const path = file(`run-${port}.yaml`, `
admin: { listen: 127.0.0.1:0 }
logging: { level: info, access_log: ${accessLog} }
listeners:
  - { name: web, listen: 127.0.0.1:${port}, routes: [{ upstream: api }] }
upstreams:
${upstreams}`);
    const child = run(['--config', path]);
    await until(child, '"listening"', 10_000);
    return { child, port, path };
  }

  async function until(child: ReturnType<typeof run>, text: string, timeoutMs = 5000): Promise<void> {
    const missing = (): string => `no ${text} in the output: ${child.out()}${child.err()}`;
    await waitFor(() => {
      if (child.exitCode !== null) throw new Error(`exited ${child.exitCode}: ${missing()}`);
      return child.out().includes(text);
    }, { timeoutMs, intervalMs: 20, what: missing });
  }

  it('proxies, then on SIGTERM finishes the request in flight and exits 0', async () => {
    const origin = await startOrigin('slow');
    origins.push(origin);
    origin.handler = (_req, res) => setTimeout(() => res.end('finished'), 500);
    const { child, port } = await runProxy(origin, false);
    const inflight = get(`http://127.0.0.1:${port}/slow`);
    await waitFor(() => origin.received.length > 0, { what: 'request at the origin' });
    child.kill('SIGTERM');
    const res = await inflight;
    expect(res.status).toBe(200);
    expect(res.body).toBe('finished');
    expect(await exitCode(child)).toBe(0);
    expect(child.out()).toContain('draining');
  });

  it('a second SIGTERM exits at once, and the access lines already made still reach stdout', async () => {
    const origin = await startOrigin('quick');
    origins.push(origin);
    origin.handler = (req, res) => (req.url === '/slow' ? setTimeout(() => res.end('late'), 2000) : res.end('ok'));
    const { child, port } = await runProxy(origin, true);
    // A request in flight keeps the drain going, so the second signal is what ends the process: process.exit()
    // without stop(), while the line of /done is still in the access log's 50 ms batch.
    void get(`http://127.0.0.1:${port}/slow`).catch(() => {});
    await waitFor(() => origin.received.length > 0, { what: 'request at the origin' });
    expect((await get(`http://127.0.0.1:${port}/done`)).status).toBe(200);
    child.kill('SIGTERM');
    await waitFor(() => child.out().includes('draining'), { intervalMs: 5, what: 'draining in the output' });
    child.kill('SIGTERM');
    expect(await exitCode(child)).toBe(1);
    const access = child.out().split('\n').filter((l) => l.includes('"kind":"access"')).map((l) => JSON.parse(l) as { url: string });
    expect(access.map((l) => l.url)).toContain('/done');
  });

  it('SIGHUP with an alias to an undefined anchor refuses the file at the alias and keeps serving', async () => {
    const origin = await startOrigin('kept');
    origins.push(origin);
    const upstreams = (alias: string) => `  - { name: api, servers: &servers [{ address: ${origin.address} }] }\n  - { name: canary, servers: ${alias} }\n`;
    const { child, port, path } = await runProxy(origin, false, upstreams('*servers'));
    expect((await get(`http://127.0.0.1:${port}/`)).status).toBe(200);

    writeFileSync(path, readFileSync(path, 'utf8').replace(upstreams('*servers'), upstreams('*srvers')));
    child.kill('SIGHUP');
    await until(child, 'reload refused');
    expect(child.out()).toContain(`${path}:8:30 upstreams[1].servers: alias *srvers has no anchor`);
    expect((await get(`http://127.0.0.1:${port}/`)).status).toBe(200);
    expect(child.exitCode).toBeNull();
    expect(child.err()).toBe('');
  });
});
