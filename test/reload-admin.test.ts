/**
 * Reload without loss of state (issue #16), in-process: `POST /reload` on the admin (token, refusals, summary, errors),
 * the reload metrics, the file watcher's "unchanged" rule, and the state a reload used to reset — active-check
 * streaks and latency estimates — now kept for every server that stays.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.js';
import type { Config } from '../src/config/schema.js';
import type { Origin } from './helpers/origin.js';
import { get, type TestBallast } from './helpers/ballast.js';
import { waitFor } from './helpers/wait.js';
import { Fixture, poolConfig } from './health/config.js';

const fx = new Fixture();
afterEach(() => fx.close());

const TOKEN = 'a-reload-token-of-enough-length';

function tempFile(text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'ballast-reload-admin-')), 'ballast.yaml');
  writeFileSync(file, text);
  return file;
}

function config(text: string): Config {
  const r = parseConfig(text, {});
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.config;
}

async function post(b: TestBallast, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await request(`http://127.0.0.1:${b.adminPort}${path}`, { method: 'POST', headers });
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
}

/** Every sample of `name` in the admin's /metrics, by its label text. */
async function metric(b: TestBallast, name: string): Promise<Map<string, number>> {
  const text = (await get(`http://127.0.0.1:${b.adminPort}/metrics`)).body;
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m !== null && m[1] === name) out.set(m[2] ?? '', Number(m[3]));
  }
  return out;
}

const reloads = (b: TestBallast) => metric(b, 'ballast_config_reloads_total');
const lastSuccess = async (b: TestBallast) => (await metric(b, 'ballast_config_last_reload_success_timestamp_seconds')).get('')!;
const originOf = (body: string) => (JSON.parse(body) as { origin: string }).origin;

describe('POST /reload', () => {
  it('re-reads the file: 401 without the token, 403 from another origin, 200 with a summary; the metrics follow', async () => {
    const [a, b, c] = await fx.origins(3);
    const text = (servers: Origin[]) => poolConfig({ servers, admin: `, token: ${TOKEN}` });
    const file = tempFile(text([a!, b!]));
    const startedAt = Date.now() / 1000;
    const ballast = await fx.ballast(text([a!, b!]), { configFile: file });
    expect(await reloads(ballast)).toEqual(new Map([['{result="success"}', 0], ['{result="failure"}', 0]]));
    const atStart = await lastSuccess(ballast);
    expect(atStart).toBeGreaterThanOrEqual(Math.floor(startedAt));

    writeFileSync(file, text([b!, c!]));
    expect((await post(ballast, '/reload')).status).toBe(401);
    const auth = { authorization: `Bearer ${TOKEN}` };
    expect((await post(ballast, '/reload', { ...auth, origin: 'http://evil.example' })).status).toBe(403);
    expect(ballast.ballast.upstreams.get('pool')!.hosts.map((h) => h.address)).toEqual([a!.address, b!.address]);

    const answer = await post(ballast, '/reload', auth);
    expect(answer).toEqual({ status: 200, body: { status: 'reloaded', file, listeners: 1, upstreams: 1, servers: { kept: 1, added: 1, removed: 1 } } });
    expect(ballast.ballast.upstreams.get('pool')!.hosts.map((h) => h.address)).toEqual([b!.address, c!.address]);
    expect((await reloads(ballast)).get('{result="success"}')).toBe(1);
    expect(await lastSuccess(ballast)).toBeGreaterThanOrEqual(atStart);
    expect(ballast.logs.find((l) => l.msg === 'config reloaded')).toMatchObject({ trigger: 'admin', file });
  });

  it('answers 400 with each error\'s key path, line and column for an invalid file, and keeps the running config', async () => {
    const [a, b] = await fx.origins(2);
    const file = tempFile(poolConfig({ servers: [a!] }));
    const ballast = await fx.ballast(poolConfig({ servers: [a!] }), { configFile: file });
    const before = await lastSuccess(ballast);
    writeFileSync(file, poolConfig({ servers: [b!], upstream: '    balance: round-robbin' }));
    const answer = await post(ballast, '/reload');
    expect(answer.status).toBe(400);
    expect(answer.body.error).toMatch(/invalid.*running config is kept/);
    expect(answer.body.errors).toEqual([expect.objectContaining({ path: 'upstreams[0].balance', line: 13, column: 14 })]);
    for (let i = 0; i < 3; i++) expect(originOf((await get(ballast.url('/'))).body)).toBe('o1');
    expect(await reloads(ballast)).toEqual(new Map([['{result="success"}', 0], ['{result="failure"}', 1]]));
    expect(await lastSuccess(ballast)).toBe(before);
  });

  it('answers 500 when a valid config cannot be applied (a listener address taken), and changes nothing', async () => {
    const [a, b] = await fx.origins(2);
    const file = tempFile(poolConfig({ servers: [a!] }));
    const ballast = await fx.ballast(poolConfig({ servers: [a!] }), { configFile: file });
    const clash = `  - { name: clash, listen: 127.0.0.1:${ballast.adminPort}, routes: [{ upstream: pool }] }`;
    writeFileSync(file, poolConfig({ servers: [a!, b!] }).replace('upstreams:', `${clash}\nupstreams:`));
    const answer = await post(ballast, '/reload');
    expect(answer.status).toBe(500);
    expect(String(answer.body.detail)).toContain('EADDRINUSE');
    expect(ballast.ballast.upstreams.get('pool')!.hosts.map((h) => h.address)).toEqual([a!.address]);
    expect((await reloads(ballast)).get('{result="failure"}')).toBe(1);
  });

  it('answers 409 when the instance was started from a config object, with no file to re-read', async () => {
    const [a] = await fx.origins(1);
    const ballast = await fx.ballast(poolConfig({ servers: [a!] }));
    const answer = await post(ballast, '/reload');
    expect(answer.status).toBe(409);
    expect(answer.body.error).toMatch(/no.* file|not a file/);
  });

  it('a reload asked only if the file changed does nothing for the same config, nor for the same invalid text twice', async () => {
    const [a] = await fx.origins(1);
    const text = poolConfig({ servers: [a!] });
    const file = tempFile(`# a comment changes the text, not the config\n${text}`);
    const ballast = await fx.ballast(text, { configFile: file });
    const reloader = ballast.ballast.reloader!;
    expect(await reloader.reload('watch', { onlyIfChanged: true })).toEqual({ result: 'unchanged', file });
    writeFileSync(file, `${text}\nbogus: 1\n`);
    expect((await reloader.reload('watch', { onlyIfChanged: true })).result).toBe('invalid');
    expect((await reloader.reload('watch', { onlyIfChanged: true })).result).toBe('unchanged');
    expect(await reloads(ballast)).toEqual(new Map([['{result="success"}', 0], ['{result="failure"}', 1]]));
    expect(ballast.logs.filter((l) => String(l.msg).startsWith('reload refused'))).toHaveLength(1);
    // An explicit reload (SIGHUP, POST /reload) is never skipped.
    writeFileSync(file, text);
    expect((await reloader.reload('signal')).result).toBe('success');
  });
});

describe('state kept across a reload', () => {
  it('active-check streaks go on: one failing probe does not take a healthy server out, one passing probe does not bring a down one back', async () => {
    const [a, b] = await fx.origins(2);
    b!.healthy = false;
    // A long interval: the only probes are the first ones at start and at the reload. Thresholds of 3 both ways.
    const text = poolConfig({
      servers: [a!, b!],
      upstream: '    health_check: { path: /healthz, interval: 60s, timeout: 2s, healthy_threshold: 3, unhealthy_threshold: 3 }',
    });
    const ballast = await fx.ballast(text);
    const state = (o: Origin) => ballast.ballast.upstreams.get('pool')!.host(o.address)!.state(performance.now());
    expect([state(a!), state(b!)]).toEqual(['healthy', 'unhealthy']);
    a!.healthy = false;
    b!.healthy = true;
    await ballast.ballast.reload(config(text));
    // The reload probed both once more: a fresh history would have flipped each on that one result.
    const checks = await metric(ballast, 'ballast_health_checks_total');
    expect(checks.get(`{upstream="pool",server="${a!.address}",result="failure"}`)).toBe(1);
    expect(checks.get(`{upstream="pool",server="${b!.address}",result="success"}`)).toBe(1);
    expect([state(a!), state(b!)]).toEqual(['healthy', 'unhealthy']);
  });

  it('latency estimates (peak-EWMA) go on where they were', async () => {
    const [a, b] = await fx.origins(2);
    b!.handler = (_req, res) => setTimeout(() => res.end('slow'), 30);
    const text = poolConfig({ servers: [a!, b!], upstream: '    balance: peak-ewma' });
    const ballast = await fx.ballast(text);
    const host = (o: Origin) => ballast.ballast.upstreams.get('pool')!.host(o.address)!;
    await waitFor(async () => {
      await get(ballast.url('/'));
      return host(a!).latency.estimate(performance.now()) > 0 && host(b!).latency.estimate(performance.now()) > 0;
    }, { what: 'an estimate for both servers' });
    const now = performance.now() + 1000;
    const before = [host(a!).latency.estimate(now), host(b!).latency.estimate(now)];
    await ballast.ballast.reload(config(text));
    expect([host(a!).latency.estimate(now), host(b!).latency.estimate(now)]).toEqual(before);
  });
});
