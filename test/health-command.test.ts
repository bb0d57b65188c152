/**
 * `ballast health --config FILE` (the Docker HEALTHCHECK): asks the admin address the config names, on loopback for
 * a wildcard one, and exits 0 only while that Ballast is ready: not before it runs, not while it drains.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../src/config/load.js';
import { adminUrl } from '../src/health-command.js';
import { freePort, get } from './helpers/ballast.js';
import { exitCode, spawnCli } from './helpers/cli.js';
import { startOrigin, type Origin } from './helpers/origin.js';
import { waitFor } from './helpers/wait.js';

const dir = mkdtempSync(join(tmpdir(), 'ballast-health-'));
const TOKEN = 'health-test-token-0123456789';
const children: ChildProcess[] = [];
const origins: Origin[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
  for (const o of origins.splice(0)) await o.close();
});

/** A config whose admin listens on every interface (so it needs its token, from the environment). */
async function configFile(origin: string): Promise<{ path: string; proxyPort: number; adminPort: number }> {
  const [proxyPort, adminPort] = [await freePort(), await freePort()];
  const path = join(dir, `ballast-${adminPort}.yaml`);
  writeFileSync(path, `
admin: { listen: "0.0.0.0:${adminPort}", token: "\${BALLAST_ADMIN_TOKEN}" }
logging: { level: info, access_log: false }
shutdown: { drain_timeout: 10s }
listeners:
  - { name: web, listen: 127.0.0.1:${proxyPort}, routes: [{ upstream: api }] }
upstreams:
  - { name: api, servers: [{ address: ${origin} }] }
`);
  return { path, proxyPort, adminPort };
}

async function health(path: string): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawnCli(['health', '--config', path], { BALLAST_ADMIN_TOKEN: TOKEN });
  children.push(child);
  const code = await exitCode(child);
  return { code, out: child.out(), err: child.err() };
}

describe('ballast health', () => {
  it('says not ready while nothing listens, ready once Ballast runs the config, not ready again while it drains', async () => {
    const origin = await startOrigin('o1');
    origins.push(origin);
    const { path, proxyPort, adminPort } = await configFile(origin.address);

    const before = await health(path);
    expect(before.code).toBe(1);
    expect(before.err).toBe(`ballast health: not ready: http://127.0.0.1:${adminPort}/ready: connection refused (is Ballast running with this config?)\n`);

    const ballast = spawnCli(['--config', path], { BALLAST_ADMIN_TOKEN: TOKEN });
    children.push(ballast);
    let last = before;
    await waitFor(async () => {
      if (ballast.exitCode !== null) throw new Error(`ballast exited ${ballast.exitCode}: ${ballast.err()}`);
      last = await health(path);
      return last.code === 0;
    }, { timeoutMs: 15_000, intervalMs: 100, what: () => `ballast health to pass; last: ${last.out}${last.err}` });
    expect(last.out).toBe(`ballast health: ready: http://127.0.0.1:${adminPort}/ready: 200 ready\n`);

    // A request the origin holds until the check is done keeps the drain going after SIGTERM: the admin still
    // answers, and says 503.
    let release = (): void => {};
    origin.handler = (_req, res) => (release = () => res.end('late'));
    const inflight = get(`http://127.0.0.1:${proxyPort}/slow`);
    await waitFor(() => origin.received.length > 0, { what: 'the request at the origin' });
    ballast.kill('SIGTERM');
    await waitFor(async () => {
      last = await health(path);
      return last.code === 1;
    }, { timeoutMs: 10_000, intervalMs: 50, what: () => `ballast health to fail while draining; last: ${last.out}${last.err}` });
    release();
    expect(last.err).toBe(`ballast health: not ready: http://127.0.0.1:${adminPort}/ready: 503 starting\n`);
    expect((await inflight).status).toBe(200);
    expect(await exitCode(ballast)).toBe(0);
  });

  it('an invalid config is reported with its errors, exit 1', async () => {
    const path = join(dir, 'bad.yaml');
    writeFileSync(path, 'listeners: []\nupstreams: []\n');
    const answer = await health(path);
    expect(answer.code).toBe(1);
    expect(answer.err).toContain('at least one listener');
  });

  it('asks a wildcard admin address on its loopback twin, and a specific one where it is', () => {
    const url = (listen: string) => {
      const result = parseConfig(`admin: { listen: "${listen}", token: ${TOKEN} }\nlisteners: [{ name: web, listen: "127.0.0.1:8080", routes: [{ upstream: a }] }]\nupstreams: [{ name: a, servers: [{ address: "127.0.0.1:9000" }] }]\n`);
      if (!result.ok) throw new Error(JSON.stringify(result.errors));
      return adminUrl(result.config, '/ready')?.href;
    };
    expect(url('0.0.0.0:9901')).toBe('http://127.0.0.1:9901/ready');
    expect(url('[::]:9902')).toBe('http://[::1]:9902/ready');
    expect(url(':9903')).toBe('http://127.0.0.1:9903/ready');
    expect(url('10.1.2.3:9904')).toBe('http://10.1.2.3:9904/ready');
    expect(url('127.0.0.1:0')).toBeUndefined();
  });
});
