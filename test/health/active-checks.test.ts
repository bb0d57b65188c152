/** Active health checks end to end: real origins whose /healthz fails, hangs or dies, a real Ballast in front. */
import { afterEach, describe, expect, it } from 'vitest';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { get } from '../helpers/ballast.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { Fixture, poolConfig } from './config.js';
import { byOrigin, logsWith, report, send, startTraffic } from './traffic.js';

const fx = new Fixture();
afterEach(() => fx.close());

const INTERVAL = 100;

describe('active health checks', () => {
  it('stops sending to a server whose /healthz turns 503 within unhealthy_threshold probes, and takes it back after healthy_threshold', async () => {
    const [o1, o2] = await fx.origins(2);
    const b = await fx.ballast(poolConfig({
      servers: [o1!, o2!],
      upstream: `    health_check: { type: http, path: /healthz, interval: ${INTERVAL}ms, timeout: 500ms, healthy_threshold: 2, unhealthy_threshold: 3 }`,
    }));
    const upstream = b.ballast.upstreams.get('pool')!;
    // Ballast.start waits for the first probe round: both servers take traffic from the first request.
    expect(upstream.hosts.map((h) => h.state(upstream.now()))).toEqual(['healthy', 'healthy']);

    const traffic = startTraffic(b);
    await waitFor(() => traffic.samples.some((s) => s.origin === 'o1') && traffic.samples.some((s) => s.origin === 'o2'), { what: 'both servers serving' });
    const flippedDown = performance.now();
    o1!.healthy = false;
    await waitFor(() => upstream.hosts[0]!.state(upstream.now()) === 'unhealthy', { what: 'o1 unhealthy' });
    const markedDown = performance.now();
    await waitFor(() => traffic.sentBetween(markedDown).length > 10, { what: 'more than 10 requests sent with o1 unhealthy' });
    const downSamples = traffic.between(flippedDown);
    const lastToO1 = Math.max(...downSamples.filter((s) => s.origin === 'o1').map((s) => s.at), flippedDown);
    const detection = lastToO1 - flippedDown;
    // interval × unhealthy_threshold, plus up to one interval of phase, plus jitter: 440 ms. Bounded generously for
    // a loaded machine; the exact claim is the probe count below.
    expect(detection).toBeLessThan(3000);
    const down = logsWith(b, 'server failed its active health checks');
    expect(down).toHaveLength(1);
    expect(down[0]).toMatchObject({ upstream: 'pool', server: o1!.address, probes: 3, reason: 'status', detail: 'status 503' });
    // Once unhealthy, o1 gets nothing and no request fails: o2 takes it all.
    const after = traffic.sentBetween(markedDown);
    expect(after.length).toBeGreaterThan(10);
    expect(after.every((s) => s.origin === 'o2' && s.status === 200)).toBe(true);
    expect(traffic.between(lastToO1 + 1).every((s) => s.origin === 'o2' && s.status === 200)).toBe(true);

    const flippedUp = performance.now();
    o1!.healthy = true;
    await waitFor(() => traffic.between(flippedUp).some((s) => s.origin === 'o1'), { what: 'o1 back in rotation' });
    const firstBack = traffic.between(flippedUp).find((s) => s.origin === 'o1')!;
    const recovery = firstBack.at - flippedUp;
    // The first entries are start-up: each server's first passing probe is a flip from its initial unhealthy state.
    const up = logsWith(b, 'server passed its active health checks').slice(2);
    expect(up).toHaveLength(1);
    expect(up[0]).toMatchObject({ server: o1!.address, probes: 2 });
    // From the first request o1 answered on, the two take turns.
    await waitFor(() => traffic.sentBetween(firstBack.sentAt).length >= 40, { what: '40 requests sent with o1 back' });
    await traffic.stop();
    const shares = byOrigin(traffic.sentBetween(firstBack.sentAt));
    expect(shares.o1).toBeGreaterThan(0);
    expect(Math.abs((shares.o1 ?? 0) - (shares.o2 ?? 0))).toBeLessThanOrEqual(3);
    expect(traffic.samples.every((s) => s.status === 200)).toBe(true);
    report('healthz 503 -> traffic stopped (interval 100ms, unhealthy_threshold 3)', detection);
    report('healthz 200 -> traffic resumed (interval 100ms, healthy_threshold 2)', recovery);

    const metrics = (await get(`http://127.0.0.1:${b.adminPort}/metrics`)).body;
    expect(metrics).toMatch(new RegExp(`ballast_health_check_failures_total\\{upstream="pool",server="${o1!.address}",reason="status"\\} [3-9]`));
    expect(metrics).toMatch(new RegExp(`ballast_health_checks_total\\{upstream="pool",server="${o2!.address}",result="success"\\} \\d+`));
  });

  it('probes with the configured method, path, Host header and expected statuses', async () => {
    const [o1] = await fx.origins(1);
    const probes: { method: string; url: string; host: string | undefined }[] = [];
    let answer = 204;
    o1!.server.removeAllListeners('request');
    o1!.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (req.url === '/ready-check') {
        probes.push({ method: req.method ?? '', url: req.url, host: req.headers.host });
        res.writeHead(answer).end();
        return;
      }
      res.writeHead(200, { 'x-origin': 'o1' }).end('ok');
    });
    const b = await fx.ballast(poolConfig({
      servers: [o1!],
      upstream: `    health_check: { type: http, method: HEAD, path: /ready-check, host: health.internal, expected_status: "204, 300-301", interval: ${INTERVAL}ms, healthy_threshold: 1, unhealthy_threshold: 1 }`,
    }));
    expect(probes[0]).toEqual({ method: 'HEAD', url: '/ready-check', host: 'health.internal' });
    expect((await send(b)).status).toBe(200);
    answer = 200; // not in "204, 300-301"
    const host = b.ballast.upstreams.get('pool')!.hosts[0]!;
    await waitFor(() => host.activeCheckFailed, { what: 'a 200 fails the check' });
    const res = await send(b);
    expect(res.status).toBe(503);
    expect(res.retryAfter).toBe('1');
    answer = 301;
    await waitFor(() => !host.activeCheckFailed, { what: 'a 301 passes the check' });
  });

  it('starts servers unhealthy until their first passing probe, and healthy when so configured', async () => {
    const [up, dead] = await fx.origins(2);
    await dead!.kill();
    const check = `interval: ${INTERVAL}ms, timeout: 500ms, healthy_threshold: 3, unhealthy_threshold: 3`;
    const b = await fx.ballast(poolConfig({ servers: [up!, dead!], upstream: `    health_check: { type: http, ${check} }` }));
    const u = b.ballast.upstreams.get('pool')!;
    // One passing probe made `up` healthy (not healthy_threshold of them); one failing probe kept `dead` out.
    expect(u.hosts.map((h) => h.state(u.now()))).toEqual(['healthy', 'unhealthy']);
    for (let i = 0; i < 6; i++) expect((await send(b)).origin).toBe('o1');
    await dead!.restart();
    // From here on it is a known-unhealthy server: it needs healthy_threshold passing probes.
    await waitFor(() => u.hosts[1]!.state(u.now()) === 'healthy', { what: 'restarted server healthy' });
    expect(logsWith(b, 'server passed its active health checks')).toEqual([
      expect.objectContaining({ server: up!.address, probes: 1 }),
      expect.objectContaining({ server: dead!.address, probes: 3 }),
    ]);

    // initial_state: healthy — before the first probe a server is assumed up; its first failure takes it out at once.
    const [o3] = await fx.origins(1, 'h');
    o3!.healthy = false;
    const b2 = await fx.ballast(poolConfig({ servers: [o3!], upstream: `    health_check: { type: http, initial_state: healthy, ${check} }` }));
    const u2 = b2.ballast.upstreams.get('pool')!;
    expect(u2.hosts[0]!.state(u2.now())).toBe('unhealthy');
    expect(logsWith(b2, 'server failed its active health checks')).toEqual([expect.objectContaining({ probes: 1 })]);
  });

  it('judges panic once every server has its first verdict, not while the first probes come in one by one', async () => {
    const check = `    health_check: { type: http, interval: ${INTERVAL}ms, timeout: 500ms }`;
    const healthy = await fx.origins(4);
    const b = await fx.ballast(poolConfig({ servers: healthy, upstream: check }));
    await send(b);
    // Servers start unhealthy and pass one at a time: 1 of 4 available was never a panic.
    expect(logsWith(b, 'upstream in panic: too few servers available, balancing over all of them')).toEqual([]);
    expect(logsWith(b, 'upstream left panic')).toEqual([]);

    const [up, ...dead] = await fx.origins(4, 'd');
    for (const d of dead) d.healthy = false;
    const b2 = await fx.ballast(poolConfig({ servers: [up!, ...dead], upstream: check }));
    // A pool that really starts in panic says so once.
    expect(logsWith(b2, 'upstream in panic: too few servers available, balancing over all of them')).toEqual([
      expect.objectContaining({ available: 1, eligible: 4 }),
    ]);
  });

  it('tcp checks: a killed server goes unhealthy, a restarted one comes back', async () => {
    const [o1, o2] = await fx.origins(2);
    const b = await fx.ballast(poolConfig({
      servers: [o1!, o2!],
      upstream: `    health_check: { type: tcp, interval: ${INTERVAL}ms, timeout: 300ms, healthy_threshold: 2, unhealthy_threshold: 2 }`,
    }));
    const u = b.ballast.upstreams.get('pool')!;
    await o1!.kill();
    await waitFor(() => u.hosts[0]!.state(u.now()) === 'unhealthy', { what: 'killed server unhealthy' });
    expect(logsWith(b, 'server failed its active health checks')[0]).toMatchObject({ reason: 'connect' });
    await o1!.restart();
    await waitFor(() => u.hosts[0]!.state(u.now()) === 'healthy', { what: 'restarted server healthy' });
    const seen = new Set<string | undefined>();
    for (let i = 0; i < 4; i++) seen.add((await send(b)).origin);
    expect(seen).toEqual(new Set(['o1', 'o2']));
  });

  it('never starts a probe while the previous one is in flight, and gives up on a hanging one at the timeout', async () => {
    const [o1, o2] = await fx.origins(2);
    let open = 0;
    let maxOpen = 0;
    let probes = 0;
    const hang = { on: false };
    const original = o1!.server.listeners('request')[0] as (req: IncomingMessage, res: ServerResponse) => void;
    o1!.server.removeAllListeners('request');
    o1!.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (req.url !== '/healthz' || !hang.on) return original(req, res);
      probes++;
      open++;
      maxOpen = Math.max(maxOpen, open);
      req.socket.once('close', () => open--);
    });
    const b = await fx.ballast(poolConfig({
      servers: [o1!, o2!],
      // The timeout is three intervals long: a scheduler that did not wait for the probe would stack three.
      upstream: `    health_check: { type: http, interval: 50ms, unhealthy_interval: 50ms, timeout: 150ms, healthy_threshold: 1, unhealthy_threshold: 2 }`,
    }));
    const u = b.ballast.upstreams.get('pool')!;
    hang.on = true;
    await waitFor(() => u.hosts[0]!.activeCheckFailed, { what: 'hanging server unhealthy' });
    await waitFor(() => probes >= 5, { what: 'five hanging probes' });
    expect(maxOpen).toBe(1);
    // Each hanging probe's socket is closed at its timeout: none is left open behind it.
    await waitFor(() => open <= 1, { what: 'probe sockets closed' });
    expect(logsWith(b, 'server failed its active health checks')).toEqual([expect.objectContaining({ reason: 'timeout' })]);
    // Logged once, though every probe since has failed too.
    const metrics = (await get(`http://127.0.0.1:${b.adminPort}/metrics`)).body;
    const failures = Number(new RegExp(`ballast_health_check_failures_total\\{upstream="pool",server="${o1!.address}",reason="timeout"\\} (\\d+)`).exec(metrics)?.[1]);
    expect(failures).toBeGreaterThanOrEqual(3);
  });

  it('probes a server listed in two upstreams once, and stops probing when Ballast stops', async () => {
    const [o1] = await fx.origins(1);
    let probes = 0;
    const original = o1!.server.listeners('request')[0] as (req: IncomingMessage, res: ServerResponse) => void;
    o1!.server.removeAllListeners('request');
    o1!.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (req.url === '/healthz') probes++;
      original(req, res);
    });
    const check = `    health_check: { type: http, interval: ${INTERVAL}ms, jitter: 0% }`;
    const b = await fx.ballast(`
admin: { listen: 127.0.0.1:0 }
logging: { level: info, access_log: false }
listeners:
  - name: web
    listen: 127.0.0.1:0
    routes:
      - { match: { path_prefix: /a/ }, upstream: a }
      - upstream: b
upstreams:
  - name: a
    servers: [{ address: ${o1!.address} }]
${check}
  - name: b
    servers: [{ address: ${o1!.address} }]
${check}
`);
    expect(b.ballast.health.checker.targets).toBe(1);
    // One loop probes about once per interval; two would reach the same count in half the time.
    const started = performance.now();
    const atStart = probes;
    await waitFor(() => probes >= atStart + 10, { what: 'ten more probes' });
    const elapsed = performance.now() - started;
    expect(probes - atStart).toBeLessThanOrEqual(Math.ceil(elapsed / INTERVAL) + 2);
    await b.stop();
    const atStop = probes;
    await sleep(4 * INTERVAL);
    expect(probes).toBe(atStop);
  });
});
