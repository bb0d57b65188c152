/**
 * Issue #16, done when: a reload under load — SIGHUP, `POST /reload` and `--watch`, one after the other in one `ballast`
 * process — drops no request and keeps every unchanged server's state: a server mid-backoff stays ejected, and its
 * ejection count survives (its next ejection lasts twice as long); servers mid-slow-start go on ramping, never start
 * over. State is read from the admin's /status, as an operator would; the load is keep-alive requests throughout.
 */
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { describe, expect, it } from 'vitest';
import { onCleanup, origins } from './helpers/fixtures.js';
import { spawnCli, exitCode } from './helpers/cli.js';
import { freePort } from './helpers/ballast.js';
import type { Origin } from './helpers/origin.js';
import { waitFor } from './helpers/wait.js';

type Line = Record<string, unknown>;

interface ServerView {
  address: string;
  state: string;
  effective_weight: number;
  health: { ejected_for_ms: number };
}

const BASE_EJECTION_MS = 3000;

function yaml(port: number, adminPort: number, servers: Origin[]): string {
  return `
admin: { listen: 127.0.0.1:${adminPort} }
logging: { level: info, access_log: false }
listeners:
  - { name: web, listen: 127.0.0.1:${port}, routes: [{ upstream: pool }] }
upstreams:
  - name: pool
    balance: weighted-round-robin
    slow_start: 30s
    # interval 60s: no decay of the ejection count during the test.
    outlier_detection: { consecutive_failures: 2, consecutive_gateway_failures: 2, base_ejection_time: ${BASE_EJECTION_MS}ms, max_ejection_time: 60s, max_ejection_percent: 50%, interval: 60s }
    retry: { attempts: 3 }
    servers:
${servers.map((o) => `      - { address: ${o.address}, weight: 100 }`).join('\n')}
`;
}

/**
 * A bounded loop of keep-alive requests on a few connections, until `stop`: every answer is kept, a transport error
 * as status 0.
 */
function load(url: string, concurrency = 4, max = 50_000) {
  const agent = new Agent({ connections: concurrency, keepAliveTimeout: 30_000 });
  const statuses: number[] = [];
  let stopping = false;
  const loops = Array.from({ length: concurrency }, async () => {
    while (!stopping && statuses.length < max) {
      try {
        const res = await request(url, { dispatcher: agent });
        await res.body.dump();
        statuses.push(res.statusCode);
      } catch {
        statuses.push(0);
      }
    }
  });
  let stopped: Promise<void> | undefined;
  return {
    statuses,
    stop(): Promise<void> {
      stopping = true;
      stopped ??= Promise.all(loops).then(() => agent.close());
      return stopped;
    },
  };
}

describe('reload under load keeps every unchanged server\'s state', () => {
  it('SIGHUP, POST /reload and --watch drop no request; an ejected server keeps its ejection and backoff, slow start goes on', async () => {
    const [a, b, c, d] = await origins(4);
    const [port, adminPort] = [await freePort(), await freePort()];
    const file = join(mkdtempSync(join(tmpdir(), 'ballast-reload-load-')), 'ballast.yaml');
    writeFileSync(file, yaml(port, adminPort, [a!, b!, c!]));
    const child = spawnCli(['--config', file, '--watch']);
    onCleanup(async () => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    const lines = (): Line[] => child.out().split('\n').flatMap((l) => {
      try {
        return l.startsWith('{') ? [JSON.parse(l) as Line] : [];
      } catch {
        return [];
      }
    });
    const waitForLine = async (match: (l: Line) => boolean, what: string): Promise<Line> => {
      await waitFor(() => lines().some(match), { timeoutMs: 15_000, what: () => `${what}; output so far:\n${child.out()}${child.err()}` });
      return lines().find(match)!;
    };
    const admin = (path: string) => `http://127.0.0.1:${adminPort}${path}`;
    const servers = async (): Promise<Map<string, ServerView>> => {
      const res = await request(admin('/status'));
      const doc = (await res.body.json()) as { upstreams: { servers: ServerView[] }[] };
      return new Map(doc.upstreams[0]!.servers.map((s) => [s.address, s]));
    };
    const weights = async () => {
      const s = await servers();
      return [s.get(b!.address)!.effective_weight, s.get(c!.address)!.effective_weight];
    };
    const reloaded = (trigger: string) => (l: Line) => l.msg === 'config reloaded' && l.trigger === trigger;
    const ejected = (n: number) => (l: Line) => l.msg === 'server ejected' && l.server === a!.address && l.ejections === n;

    await waitForLine((l) => l.msg === 'watching the config file: a change reloads it', 'the watch');
    await waitForLine((l) => l.msg === 'listening', 'the listener');
    const traffic = load(`http://127.0.0.1:${port}/`);
    onCleanup(() => traffic.stop());

    // Every server slow-starts from start-up (30 s from 1%): let the ramp get far enough that starting over would show.
    await waitFor(async () => (await weights()).every((w) => w >= 5), { what: 'slow start under way' });
    a!.mode = { status: 503 };
    const first = await waitForLine(ejected(1), 'the first ejection');

    // 1. SIGHUP, mid-backoff and mid-slow-start.
    let before = await weights();
    child.kill('SIGHUP');
    await waitForLine(reloaded('signal'), 'the SIGHUP reload');
    let now = await servers();
    expect(now.get(a!.address)).toMatchObject({ state: 'ejected' });
    // The ejection goes on where it was (a new one would have started over, with jitter of its own).
    expect(now.get(a!.address)!.health.ejected_for_ms).toBeLessThanOrEqual(Number(first.ejectedForMs));
    let after = await weights();
    expect(after[0]).toBeGreaterThanOrEqual(before[0]!);
    expect(after[1]).toBeGreaterThanOrEqual(before[1]!);

    // The ejection count came through the reload: back after 3 s, still failing, the server is out for twice as long.
    const second = await waitForLine(ejected(2), 'the second ejection');
    expect(second.ejectedForMs).toBeGreaterThanOrEqual(2 * BASE_EJECTION_MS);

    // 2. POST /reload, during the second ejection.
    before = await weights();
    const res = await request(admin('/reload'), { method: 'POST' });
    expect(res.statusCode).toBe(200);
    expect(await res.body.json()).toMatchObject({ status: 'reloaded', file, servers: { kept: 3, added: 0, removed: 0 } });
    now = await servers();
    expect(now.get(a!.address)).toMatchObject({ state: 'ejected' });
    after = await weights();
    expect(after[0]).toBeGreaterThanOrEqual(before[0]!);
    expect(after[1]).toBeGreaterThanOrEqual(before[1]!);

    // 3. --watch: the file gains a server; the others keep what they had.
    before = await weights();
    writeFileSync(file, yaml(port, adminPort, [a!, b!, c!, d!]));
    await waitForLine(reloaded('watch'), 'the watched reload');
    now = await servers();
    expect([...now.keys()]).toEqual([a!.address, b!.address, c!.address, d!.address]);
    expect(now.get(a!.address)).toMatchObject({ state: 'ejected' });
    after = await weights();
    expect(after[0]).toBeGreaterThanOrEqual(before[0]!);
    expect(after[1]).toBeGreaterThanOrEqual(before[1]!);

    // A bad file is refused, with where; the running config stays.
    writeFileSync(file, yaml(port, adminPort, [a!, b!]).replace('weighted-round-robin', 'weighted-round-robbin'));
    const refused = await waitForLine((l) => String(l.msg).startsWith('reload refused') && l.trigger === 'watch', 'the refused file');
    expect(String(refused.msg)).toContain(`${file}:8:14 upstreams[0].balance`);
    expect([...(await servers()).keys()]).toHaveLength(4);

    await traffic.stop();
    expect(traffic.statuses.length).toBeGreaterThan(100);
    expect(traffic.statuses.filter((s) => s < 200 || s > 299)).toEqual([]);

    const metrics = await (await request(admin('/metrics'))).body.text();
    expect(metrics).toContain('ballast_config_reloads_total{result="success"} 3');
    expect(metrics).toContain('ballast_config_reloads_total{result="failure"} 1');

    child.kill('SIGTERM');
    expect(await exitCode(child)).toBe(0);
  });
});
