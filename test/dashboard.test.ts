/**
 * The admin dashboard (`GET /`), driven in a real browser: Debian's Chromium through playwright-core (.ci/run installs
 * it). Ballast runs in-process over real origins with traffic flowing; the tests wait for DOM states with
 * Playwright's waiting, never for a fixed time. Also: the per-server last-minute windows behind /status, on an
 * injected clock, and the headers and Host rules the page is served under.
 *
 * Screenshots go to a temporary folder (printed), or to BALLAST_SCREENSHOTS when set.
 */
import { existsSync, mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from 'playwright-core';
import { Agent, request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DASHBOARD_ASSETS } from '../src/admin/dashboard/assets.js';
import { AdminServer } from '../src/admin/server.js';
import { statusDocument, type StatusDocument } from '../src/admin/status.js';
import { latencyBucket, Tally, TrafficWindows, LATENCY_BUCKETS } from '../src/admin/traffic-window.js';
import { formatConfigErrors, parseConfig } from '../src/config/load.js';
import { Upstream } from '../src/upstream/upstream.js';
import { get, type TestBallast } from './helpers/ballast.js';
import type { Origin } from './helpers/origin.js';
import { Fixture } from './health/config.js';
import { manualClock } from './health/units.js';

const CHROMIUM = '/usr/bin/chromium';
const TOKEN = 'a-test-token-of-enough-length';

const fx = new Fixture();
afterEach(() => fx.close());

// ---------------------------------------------------------------------------------------------------------------
// The last-minute windows, on a manual clock.

function upstreamOf(yaml: string, clock: () => number, index = 0): Upstream {
  const r = parseConfig(`listeners: [{ name: web, listen: 127.0.0.1:0, routes: [{ upstream: a }] }]\n${yaml}`, {});
  if (!r.ok) throw new Error(formatConfigErrors('test', r.errors));
  return new Upstream(r.config.upstreams[index]!, { clock, random: () => 0.5 });
}

const TWO = `upstreams: [{ name: a, servers: [{ address: 127.0.0.1:1 }, { address: 127.0.0.1:2 }] }]`;

function lastMinute(windows: TrafficWindows, u: Upstream, i: number) {
  const t = new Tally();
  windows.addTo(t, u.hosts[i]!, u.now());
  return t.summary();
}

describe('last-minute traffic windows', () => {
  it('count requests, errors and latency per server, over the time the window has existed', () => {
    const clock = manualClock(0);
    const u = upstreamOf(TWO, clock);
    fx.defer(() => u.destroy());
    const windows = new TrafficWindows();
    windows.track([u]);
    const h1 = u.hosts[0];
    clock.now = 5_000;
    for (let ms = 1; ms <= 100; ms++) u.observe(h1!, { kind: 'response', status: 200, latencyMs: ms });
    u.observe(h1!, { kind: 'response', status: 503, latencyMs: 1 });
    u.observe(h1!, { kind: 'response', status: 404, latencyMs: 1 });
    u.observe(h1!, { kind: 'connect-failure' });
    u.observe(h1!, { kind: 'timeout' });
    clock.now = 10_000;
    const m = lastMinute(windows, u, 0);
    expect(m).toMatchObject({ requests: 104, errors: 3, requests_per_second: 10.4, error_rate: 0.0288 });
    // Within one bucket (×1.5) of the exact quantiles of 1..100 ms plus two 1 ms answers.
    expect(m.p50_ms).toBeGreaterThan(49 / 1.5);
    expect(m.p50_ms).toBeLessThan(49 * 1.5);
    expect(m.p99_ms).toBeGreaterThan(99 / 1.5);
    expect(m.p99_ms).toBeLessThan(99 * 1.5);
    expect(lastMinute(windows, u, 1)).toEqual({ requests: 0, errors: 0, requests_per_second: 0, error_rate: 0, p50_ms: null, p99_ms: null });
  });

  it('forget seconds older than a minute, second by second', () => {
    const clock = manualClock(0);
    const u = upstreamOf(TWO, clock);
    fx.defer(() => u.destroy());
    const windows = new TrafficWindows();
    windows.track([u]);
    const h = u.hosts[0]!;
    for (let s = 0; s < 120; s++) {
      clock.now = s * 1000 + 500;
      u.observe(h, { kind: 'response', status: 200, latencyMs: 2 });
    }
    clock.now = 119_900;
    expect(lastMinute(windows, u, 0)).toMatchObject({ requests: 60, requests_per_second: 1 });
    clock.now = 150_000;
    expect(lastMinute(windows, u, 0).requests).toBe(29);
    clock.now = 179_000;
    expect(lastMinute(windows, u, 0).requests).toBe(0);
    // A long silence, then one request: only that one is in the window.
    clock.now = 1_000_000;
    u.observe(h, { kind: 'connected', latencyMs: 3 });
    const m = lastMinute(windows, u, 0);
    expect(m).toMatchObject({ requests: 1, errors: 0 });
    // 3 ms falls in the bucket (2.85, 4.27]: the quantile is read inside it.
    expect(m.p50_ms).toBeGreaterThan(2.8);
    expect(m.p50_ms).toBeLessThan(4.3);
  });

  it('keep a server\'s numbers across a reload that keeps it, and forget a server that left', () => {
    const clock = manualClock(0);
    const before = upstreamOf(TWO, clock);
    const windows = new TrafficWindows();
    windows.track([before]);
    clock.now = 1000;
    for (const h of before.hosts) u(before, h);
    const after = upstreamOf(`upstreams: [{ name: a, servers: [{ address: 127.0.0.1:2 }, { address: 127.0.0.1:3 }] }]`, clock);
    fx.defer(async () => {
      await before.destroy();
      await after.destroy();
    });
    windows.track([after]);
    // The old upstream finishes a request on the server that stayed: it counts for the new one too.
    u(before, before.hosts[1]!);
    u(after, after.hosts[0]!);
    clock.now = 2000;
    expect(lastMinute(windows, after, 0).requests).toBe(3);
    expect(lastMinute(windows, after, 1).requests).toBe(0);
    // 127.0.0.1:1 left the config: a later config listing it again starts from zero.
    const again = upstreamOf(TWO, clock);
    fx.defer(() => again.destroy());
    windows.track([again]);
    expect(lastMinute(windows, again, 0).requests).toBe(0);
    expect(lastMinute(windows, again, 1).requests).toBe(3);

    function u(up: Upstream, h: Upstream['hosts'][number]): void {
      up.observe(h, { kind: 'response', status: 200, latencyMs: 1 });
    }
  });

  it('put each latency in the bucket whose bounds hold it', () => {
    expect(latencyBucket(0)).toBe(0);
    expect(latencyBucket(0.25)).toBe(0);
    expect(latencyBucket(0.26)).toBe(1);
    expect(latencyBucket(0.375)).toBe(1);
    expect(latencyBucket(0.38)).toBe(2);
    expect(latencyBucket(Number.NaN)).toBe(0);
    expect(latencyBucket(1e9)).toBe(LATENCY_BUCKETS - 1);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The page, its headers and the Host rules.

function rawGet(port: number, path: string, host?: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; size: number }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, agent: false, ...(host !== undefined && { headers: { host } }) }, (res) => {
      let size = 0;
      res.on('data', (c: Buffer) => (size += c.length));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, size }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

function oneServer(address: string, admin = ''): string {
  return `
admin: { listen: 127.0.0.1:0${admin} }
logging: { level: warn, access_log: false }
listeners: [{ name: web, listen: 127.0.0.1:0, routes: [{ upstream: pool }] }]
upstreams: [{ name: pool, servers: [{ address: ${address} }] }]
`;
}

describe('the dashboard is served', () => {
  it('small, from memory, with a policy that allows only its own origin and no framing', async () => {
    const [o] = await fx.origins(1);
    const b = await fx.ballast(oneServer(o!.address));
    let total = 0;
    for (const [path, type] of [['/', 'text/html'], ['/dashboard.css', 'text/css'], ['/dashboard.js', 'text/javascript']] as const) {
      const answer = await rawGet(b.adminPort, path);
      expect(answer.status, path).toBe(200);
      expect(answer.headers['content-type']).toContain(type);
      expect(answer.headers['content-security-policy']).toContain("frame-ancestors 'none'");
      expect(answer.headers['content-security-policy']).toContain("script-src 'self'");
      expect(answer.headers['x-frame-options']).toBe('DENY');
      total += answer.size;
    }
    expect(total).toBe([...DASHBOARD_ASSETS.values()].reduce((n, a) => n + a.body.length, 0));
    expect(total).toBeLessThan(32 * 1024);
  });

  it('not under a Host name that could be rebound, like /status', async () => {
    const [o] = await fx.origins(1);
    const b = await fx.ballast(oneServer(o!.address));
    for (const path of ['/', '/dashboard.js', '/dashboard.css', '/status']) {
      expect((await rawGet(b.adminPort, path, `evil.example:${b.adminPort}`)).status, path).toBe(403);
      expect((await rawGet(b.adminPort, path, `localhost:${b.adminPort}`)).status, path).toBe(200);
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------
// In Chromium.

let browser: Browser;
let shots: string;
const ownShots = process.env.BALLAST_SCREENSHOTS === undefined;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)`);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  shots = process.env.BALLAST_SCREENSHOTS ?? mkdtempSync(join(tmpdir(), 'ballast-dashboard-'));
  mkdirSync(shots, { recursive: true });
});

afterAll(async () => {
  await browser?.close();
  if (ownShots && shots !== undefined) {
    console.log(`dashboard screenshots were in ${shots}`);
    rmSync(shots, { recursive: true, force: true });
  }
});

/** A new browser context and page on the admin, failing the test on any script error or console error (a CSP refusal). */
async function open(b: TestBallast, viewport = { width: 1280, height: 900 }): Promise<{ page: Page; context: BrowserContext; errors: string[] }> {
  const context = await browser.newContext({ viewport });
  fx.defer(() => context.close());
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  await page.addInitScript(() => {
    const w = globalThis as unknown as PageWindow;
    w.renders = [];
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) if (e.name === 'ballast:render') w.renders.push(e.duration);
    }).observe({ type: 'measure' });
  });
  await page.goto(`http://127.0.0.1:${b.adminPort}/`);
  return { page, context, errors };
}

/**
 * The page's window, for the callbacks Playwright runs in it (the project compiles without the DOM's types). Each
 * callback casts `globalThis` itself: it is sent to the page as source text, so it can use no helper of this file.
 */
interface PageWindow {
  renders: number[];
  mutations: number;
  sameDocument?: boolean;
  innerWidth: number;
  document: { documentElement: { scrollWidth: number }; getElementById(id: string): unknown };
  sessionStorage: { setItem(key: string, value: string): void };
  MutationObserver: new (callback: (records: unknown[]) => void) => { observe(target: unknown, options: Record<string, boolean>): void };
  getComputedStyle(element: unknown): { display: string };
}

const row = (page: Page, upstream: string, server: Origin | string): Locator =>
  page.locator(`section[data-upstream="${upstream}"] tr[data-server="${typeof server === 'string' ? server : server.address}"]`);

async function status(b: TestBallast): Promise<StatusDocument> {
  return JSON.parse((await get(`http://127.0.0.1:${b.adminPort}/status`)).body) as StatusDocument;
}

/** Requests through both listeners, a few at a time and paced (a loaded 2-core machine), until stopped (60 s at most). */
function traffic(b: TestBallast): { stop(): Promise<void> } {
  const agent = new Agent({ connections: 8, keepAliveTimeout: 1000 });
  const tcpPort = b.ballast.port('pg');
  let running = true;
  const until = performance.now() + 60_000;
  const worker = async (path: string) => {
    while (running && performance.now() < until) {
      await request(b.url(path), { dispatcher: agent }).then((r) => r.body.dump(), () => {});
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  const tcp = async () => {
    while (running && performance.now() < until) {
      await new Promise<void>((resolve) => {
        const s = connect(tcpPort, '127.0.0.1', () => s.end('GET / HTTP/1.0\r\n\r\n'));
        s.on('data', () => {});
        s.on('close', () => resolve());
        s.on('error', () => resolve());
      });
      await new Promise((r) => setTimeout(r, 150));
    }
  };
  const all = Promise.all([worker('/api/a'), worker('/api/b'), worker('/'), worker('/'), tcp()]);
  return {
    async stop() {
      running = false;
      await all;
      await agent.close();
    },
  };
}

/** Answers after `ms` (± a little), as a real application would. */
function slow(o: Origin, ms: number): void {
  o.handler = (_req, res) => {
    setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end(`{"origin":"${o.name}"}`), ms * (0.5 + Math.random()));
  };
}

describe('the dashboard in Chromium', () => {
  it('lists listeners, upstreams and servers; shows a killed server unhealthy and an ejection without a reload; its Drain button drains', async () => {
    const [api1, api2, api3, www1, www2, www3, pg1] = await fx.origins(7);
    slow(api1!, 12);
    slow(api2!, 20);
    slow(api3!, 8);
    slow(www1!, 3);
    slow(www2!, 4);
    const b = await fx.ballast(`
admin: { listen: 127.0.0.1:0 }
logging: { level: error, access_log: false }
listeners:
  - name: web
    listen: 127.0.0.1:0
    routes:
      - { match: { path_prefix: /api/ }, upstream: api }
      - upstream: www
  - { name: pg, protocol: tcp, listen: 127.0.0.1:0, upstream: pg }
upstreams:
  - name: api
    balance: least-request
    servers: [{ address: ${api1!.address} }, { address: ${api2!.address} }, { address: ${api3!.address}, weight: 2 }]
    health_check: { type: http, path: /healthz, interval: 100ms, timeout: 500ms, healthy_threshold: 1, unhealthy_threshold: 1 }
  - name: www
    servers: [{ address: ${www1!.address} }, { address: ${www2!.address} }, { address: ${www3!.address} }]
    outlier_detection: { consecutive_gateway_failures: 3, base_ejection_time: 60s }
    slow_start: 30s
  - name: pg
    servers: [{ address: ${pg1!.address} }]
`);
    const load = traffic(b);
    fx.defer(() => load.stop());
    const { page, errors } = await open(b);

    await page.locator('tr[data-server]').nth(6).waitFor();
    expect(await page.locator('tr[data-server]').count()).toBe(7);
    const sections = await page.locator('section[data-upstream]').all();
    expect(await Promise.all(sections.map((l) => l.getAttribute('data-upstream')))).toEqual(['api', 'www', 'pg']);
    await page.locator('#listeners .listener', { hasText: 'web' }).filter({ hasText: 'api, www' }).waitFor();
    await page.locator('#listeners .listener', { hasText: 'pg' }).filter({ hasText: 'tcp' }).waitFor();
    // Traffic shows up: a rate and latencies, for HTTP and for TCP.
    await row(page, 'api', api1!).locator('td.rps').filter({ hasText: /[1-9]/ }).waitFor();
    await row(page, 'api', api2!).locator('td.p99').filter({ hasText: /ms/ }).waitFor();
    await row(page, 'pg', pg1!).locator('td.p50').filter({ hasText: /ms/ }).waitFor();
    await page.evaluate(() => ((globalThis as unknown as PageWindow).sameDocument = true));
    // Slow start: a server's effective weight beside its configured one while it ramps up.
    await row(page, 'www', www1!).locator('td.weight').filter({ hasText: /^0\.\d+ \/ 1$/ }).waitFor();

    // A server killed: its checks fail, and the page says so on its own.
    await api2!.kill();
    await row(page, 'api', api2!).locator('.badge', { hasText: 'unhealthy' }).waitFor();
    // A server answering 502: passive outlier detection ejects it, and the page shows the time left.
    www3!.mode = { status: 502 };
    await row(page, 'www', www3!).locator('.badge', { hasText: /^ejected · \d+ s$/ }).waitFor();
    await row(page, 'www', www3!).locator('td.errors').filter({ hasText: /%/ }).waitFor();
    await row(page, 'www', www3!).locator('td.ejections', { hasText: /^1$/ }).waitFor();

    // Drain from the page: the same-origin POST passes the admin's cross-site checks.
    await row(page, 'api', api1!).getByRole('button', { name: 'Drain' }).click();
    await row(page, 'api', api1!).locator('.badge', { hasText: 'draining' }).waitFor();
    await row(page, 'api', api1!).getByRole('button', { name: 'Undrain' }).waitFor();
    await page.locator('#toast', { hasText: `api ${api1!.address}: draining` }).click();
    await page.locator('#toast').waitFor({ state: 'hidden' });
    const s = await status(b);
    expect(s.upstreams[0]!.servers.map((x) => x.state)).toEqual(['draining', 'unhealthy', 'healthy']);
    expect(s.upstreams[1]!.servers[2]).toMatchObject({ state: 'ejected', ejections: 1 });
    expect(b.logs.filter((l) => l.msg === 'admin: request refused')).toEqual([]);
    expect(await page.evaluate(() => (globalThis as unknown as PageWindow).sameDocument)).toBe(true);

    // The upstream's summary line adds its servers up.
    await page.locator('section[data-upstream="api"] .summary', { hasText: /^1\/3 healthy · .* req\/s · .* errors · p50 .* · p99 / }).waitFor();
    await page.screenshot({ path: join(shots, 'dashboard.png'), fullPage: true });

    // A phone: the table becomes one card per server, and nothing is wider than the screen.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.locator('section[data-upstream="api"] thead').waitFor({ state: 'hidden' });
    expect(await page.evaluate(() => {
      const w = globalThis as unknown as PageWindow;
      return w.document.documentElement.scrollWidth <= w.innerWidth;
    })).toBe(true);
    expect(await row(page, 'api', api1!).evaluate((tr) => (globalThis as unknown as PageWindow).getComputedStyle(tr).display)).toBe('grid');
    await page.screenshot({ path: join(shots, 'dashboard-phone.png'), fullPage: true });
    expect(errors).toEqual([]);
  });

  it('asks for the admin token when one is set, sends it as a bearer token, and keeps it for the tab', async () => {
    const [o1, o2] = await fx.origins(2);
    const b = await fx.ballast(`
admin: { listen: 127.0.0.1:0, token: ${TOKEN} }
logging: { level: error, access_log: false }
listeners: [{ name: web, listen: 127.0.0.1:0, routes: [{ upstream: pool }] }]
upstreams: [{ name: pool, servers: [{ address: ${o1!.address} }, { address: ${o2!.address} }] }]
`);
    const { page, errors } = await open(b);
    const dialog = page.locator('#token-dialog');
    await row(page, 'pool', o1!).getByRole('button', { name: 'Disable' }).click();
    await dialog.waitFor();
    expect(await dialog.textContent()).toContain('needs the admin token');
    await page.locator('#token').fill('not-the-token-of-enough-length');
    await dialog.getByRole('button', { name: 'Send' }).click();
    await dialog.locator('p', { hasText: 'refused that token' }).waitFor();
    await page.locator('#token').fill(TOKEN);
    await dialog.getByRole('button', { name: 'Send' }).click();
    await dialog.waitFor({ state: 'hidden' });
    await row(page, 'pool', o1!).locator('.badge', { hasText: 'disabled' }).waitFor();
    expect((await status(b)).upstreams[0]!.servers.map((x) => x.state)).toEqual(['disabled', 'healthy']);

    // Kept: the next action does not ask again. Cancelling a prompt sends nothing.
    await row(page, 'pool', o1!).getByRole('button', { name: 'Enable' }).click();
    await row(page, 'pool', o1!).locator('.badge', { hasText: 'healthy' }).waitFor();
    expect(await dialog.isVisible()).toBe(false);
    await page.evaluate(() => (globalThis as unknown as PageWindow).sessionStorage.setItem('ballast-admin-token', 'stale-token-of-enough-length'));
    await page.reload();
    await row(page, 'pool', o2!).getByRole('button', { name: 'Drain' }).click();
    await dialog.locator('p', { hasText: 'refused that token' }).waitFor();
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await dialog.waitFor({ state: 'hidden' });
    expect((await status(b)).upstreams[0]!.servers.map((x) => x.state)).toEqual(['healthy', 'healthy']);
    // The only 401s were the wrong and the stale token; nothing was refused as cross-site.
    expect(b.logs.filter((l) => l.msg === 'admin: request refused')).toEqual([]);
    expect(errors.filter((e) => !e.includes('401'))).toEqual([]);

    // The admin gone: the page says so instead of showing old numbers as live.
    await b.stop();
    await page.locator('#live.down', { hasText: 'unreachable' }).waitFor();
  });

  it('shows what a cluster primary knows, and says why the traffic numbers are missing', async () => {
    const [o] = await fx.origins(1);
    const b = await fx.ballast(oneServer(o!.address));
    // The cluster primary's admin answers /status from its own view of health, with no traffic of its own.
    const primary = new AdminServer({
      metrics: b.ballast.metrics,
      log: b.ballast.log,
      upstreams: () => b.ballast.upstreams.values(),
      ready: () => true,
      token: undefined,
      status: () => Promise.resolve(statusDocument(b.ballast.upstreams.values())),
    });
    await primary.listen('127.0.0.1', 0);
    fx.defer(() => primary.close());
    const { page, errors } = await open({ ...b, adminPort: primary.port });
    await row(page, 'pool', o!).locator('.badge', { hasText: 'healthy' }).waitFor();
    await page.locator('#note', { hasText: 'does not carry the traffic' }).waitFor();
    expect(await row(page, 'pool', o!).locator('td.rps').textContent()).toBe('–');
    expect(await row(page, 'pool', o!).locator('td.ejections').textContent()).toBe('–');
    expect(await page.locator('#listeners').isVisible()).toBe(false);
    expect(errors).toEqual([]);
  });

  it('renders 200 servers, then updates them in place: an update with nothing new writes nothing', async () => {
    const servers = Array.from({ length: 200 }, (_, i) => `{ address: 127.0.0.1:${20_000 + i} }`);
    const b = await fx.ballast(`
admin: { listen: 127.0.0.1:0 }
logging: { level: error, access_log: false }
listeners: [{ name: web, listen: 127.0.0.1:0, routes: [{ upstream: big }] }]
upstreams: [{ name: big, servers: [${servers.join(', ')}] }]
`);
    const { page, errors } = await open(b);
    await page.locator('tr[data-server]').nth(199).waitFor();
    expect(await page.locator('tr[data-server]').count()).toBe(200);
    const first = await page.locator('tr[data-server="127.0.0.1:20000"]').elementHandle();

    // Count every DOM change under the upstreams across two more updates.
    const seen = await page.evaluate(() => {
      const w = globalThis as unknown as PageWindow;
      w.mutations = 0;
      new w.MutationObserver((records) => (w.mutations += records.length)).observe(w.document.getElementById('upstreams'), {
        subtree: true, childList: true, attributes: true, characterData: true,
      });
      return w.renders.length;
    });
    await page.waitForFunction((n) => (globalThis as unknown as PageWindow).renders.length >= n + 2, seen);
    const { renders, mutations } = await page.evaluate(() => {
      const w = globalThis as unknown as PageWindow;
      return { renders: w.renders, mutations: w.mutations };
    });
    expect(mutations).toBe(0);
    expect(await first!.evaluate((tr) => tr.isConnected)).toBe(true);
    const updates = renders.slice(1);
    console.log(`200 servers: first render ${renders[0]!.toFixed(1)} ms, updates ${updates.map((d) => d.toFixed(1)).join(', ')} ms`);
    // A frame is 16 ms; an update that changes nothing is far below, even on a loaded machine.
    expect(Math.max(...updates)).toBeLessThan(50);

    // The filter narrows the 200 rows to the matching ones.
    await page.locator('#filter').fill('127.0.0.1:20123');
    await page.locator('tr[data-server]:visible').first().waitFor();
    expect(await page.locator('tr[data-server]:visible').count()).toBe(1);
    await page.screenshot({ path: join(shots, 'dashboard-200.png') });
    expect(errors).toEqual([]);
  });
});
