/** Passive outlier detection end to end: origins that answer 500, 502, die or hang under real traffic. */
import { afterEach, describe, expect, it } from 'vitest';
import { get } from '../helpers/ballast.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { Fixture, poolConfig } from './config.js';
import { byOrigin, logsWith, report, send, startTraffic } from './traffic.js';

const fx = new Fixture();
afterEach(() => fx.close());

describe('passive outlier detection', () => {
  it('ejects a server answering 500 after consecutive_failures, gives it one trial, ejects it twice as long, then takes it back', async () => {
    const [o1, o2] = await fx.origins(2);
    o1!.mode = { status: 500 };
    const base = 300;
    const b = await fx.ballast(poolConfig({
      servers: [o1!, o2!],
      // interval 60s: no decay of the ejection count during the test.
      upstream: `    outlier_detection: { consecutive_failures: 3, consecutive_gateway_failures: 0, base_ejection_time: ${base}ms, max_ejection_time: 10s, max_ejection_percent: 50%, interval: 60s }
    retry: { attempts: 1 }`,
    }));
    const host = b.ballast.upstreams.get('pool')!.hosts[0]!;
    // One client, one request at a time: every 500 the client sees is one the detector saw.
    const traffic = startTraffic(b, { concurrency: 1, pauseMs: 5 });
    await waitFor(() => logsWith(b, 'server ejected').length === 1, { what: 'first ejection' });
    const first = logsWith(b, 'server ejected')[0]!;
    expect(first).toMatchObject({ server: o1!.address, reason: 'consecutive_failures', ejections: 1, failures: 3 });
    expect(first.ejectedForMs).toBeGreaterThanOrEqual(base);
    expect(first.ejectedForMs).toBeLessThanOrEqual(base * 1.1 + 1);

    await waitFor(() => logsWith(b, 'server ejected').length === 2, { what: 'second ejection' });
    const second = logsWith(b, 'server ejected')[1]!;
    // One trial after the ejection ended: one more 500 ejects it for twice the base time.
    expect(second).toMatchObject({ server: o1!.address, reason: 'consecutive_failures', ejections: 2, failures: 4 });
    expect(second.ejectedForMs).toBeGreaterThanOrEqual(2 * base);
    expect(second.ejectedForMs).toBeLessThanOrEqual(2 * base * 1.1 + 1);
    // The trial came only once the first ejection was over. Log times are Date.now(), the wall clock, which a busy VM
    // was seen to advance 3 ms less than the monotonic clock ejections are timed by over these 300 ms; and
    // ejectedForMs is rounded. Hence the same 5 ms of slack as below.
    expect((second.time as number) - (first.time as number)).toBeGreaterThanOrEqual((first.ejectedForMs as number) - 5);
    o1!.mode = 'ok';
    const fixedAt = performance.now();
    // A 200 from o1: the trial's own 500 (x-origin: o1 too) may reach the client just after fixedAt.
    const servedByO1 = (s: { origin: string | undefined; status: number }) => s.origin === 'o1' && s.status === 200;
    await waitFor(() => traffic.between(fixedAt).some(servedByO1), { what: 'o1 back' });
    const backAt = traffic.between(fixedAt).find(servedByO1)!.at;
    // It stayed out for the whole second ejection (sample times are performance.now(); log times Date.now()).
    expect(performance.timeOrigin + backAt).toBeGreaterThanOrEqual((second.time as number) + (second.ejectedForMs as number) - 5);
    // Back in rotation, not a one-off: it serves requests sent after its first 200 too.
    await waitFor(() => traffic.sentBetween(backAt + 20).some(servedByO1), { what: 'o1 serving again' });
    await traffic.stop();
    const failures = traffic.samples.filter((s) => s.status === 500);
    expect(failures).toHaveLength(4); // 3 to eject, 1 trial
    expect(host.state(b.ballast.upstreams.get('pool')!.now())).toBe('healthy');
    expect(logsWith(b, 'server ejection ended').length).toBeGreaterThanOrEqual(2);
    const shares = byOrigin(traffic.sentBetween(backAt + 20).filter((s) => s.status === 200));
    expect(shares.o1).toBeGreaterThan(0);
    const metrics = (await get(`http://127.0.0.1:${b.adminPort}/metrics`)).body;
    expect(metrics).toContain(`ballast_outlier_ejections_total{upstream="pool",server="${o1!.address}",reason="consecutive_failures"} 2`);
    report('500s: first ejection -> failed trial (base 300ms)', (second.time as number) - (first.time as number));
    report('500s: second ejection -> back in rotation once it answers 200 (600ms ejection)', performance.timeOrigin + backAt - (second.time as number));
  });

  it('counts refused connections as local-origin gateway failures, apart from 502 answers; retries hide both from clients', async () => {
    const [o1, o2, o3] = await fx.origins(3);
    o2!.mode = { status: 502 };
    const b = await fx.ballast(poolConfig({
      servers: [o1!, o2!, o3!],
      upstream: `    outlier_detection: { consecutive_failures: 0, consecutive_gateway_failures: 2, base_ejection_time: 5s, max_ejection_percent: 100% }
    retry: { attempts: 3 }`,
    }));
    await o1!.kill();
    const samples = [];
    for (let i = 0; i < 30; i++) samples.push(await send(b));
    expect(samples.every((s) => s.status === 200 && s.origin === 'o3')).toBe(true);
    const ejected = logsWith(b, 'server ejected');
    expect(ejected.map((l) => [l.server, l.reason])).toEqual(expect.arrayContaining([
      [o1!.address, 'consecutive_local_origin_failures'],
      [o2!.address, 'consecutive_gateway_failures'],
    ]));
    expect(ejected).toHaveLength(2);
  });

  it('ejects a server that hangs after consecutive timeouts, so requests stop waiting for it', async () => {
    const [o1, o2] = await fx.origins(2);
    o1!.mode = 'hang';
    const b = await fx.ballast(poolConfig({
      servers: [o1!, o2!],
      upstream: `    outlier_detection: { consecutive_gateway_failures: 2, base_ejection_time: 10s, max_ejection_percent: 50% }
    retry: { attempts: 2, per_try_timeout: 200ms, retry_on: [timeout] }`,
    }));
    const samples = [];
    for (let i = 0; i < 20; i++) samples.push(await send(b));
    expect(samples.every((s) => s.status === 200 && s.origin === 'o2')).toBe(true);
    // Only the requests that met the hanging server before its ejection waited for the per-try timeout, and each of
    // those was retried once for it.
    expect(o1!.received.length).toBeLessThanOrEqual(2);
    const retries = (await b.ballast.metrics.retries.get()).values;
    expect(retries.map((v) => [v.labels.reason, v.value])).toEqual([['timeout', o1!.received.length]]);
    expect(logsWith(b, 'server ejected')).toEqual([expect.objectContaining({ server: o1!.address, reason: 'consecutive_local_origin_failures' })]);
  });

  it('max_ejection_percent 50% ejects exactly 2 of 4 failing servers; below panic_threshold the pool balances over all 4', async () => {
    const os = await fx.origins(4);
    for (const o of os) o.mode = { status: 500 };
    const b = await fx.ballast(poolConfig({
      servers: os,
      upstream: `    outlier_detection: { consecutive_failures: 2, base_ejection_time: 30s, max_ejection_percent: 50% }
    panic_threshold: 75%
    retry: { attempts: 1 }`,
    }));
    const u = b.ballast.upstreams.get('pool')!;
    for (let i = 0; i < 16; i++) await send(b);
    expect(u.hosts.map((h) => h.state(u.now())).sort()).toEqual(['ejected', 'ejected', 'healthy', 'healthy']);
    expect(logsWith(b, 'server ejected')).toHaveLength(2);
    expect(logsWith(b, 'server not ejected: max_ejection_percent reached')).toHaveLength(2);
    // 2 of 4 available is below 75%: panic. Traffic goes to all four, the ejected two included.
    expect(logsWith(b, 'upstream in panic: too few servers available, balancing over all of them')).toEqual([
      expect.objectContaining({ upstream: 'pool', available: 2, eligible: 4 }),
    ]);
    const before = os.map((o) => o.received.length);
    for (let i = 0; i < 40; i++) await send(b);
    expect(os.every((o, i) => o.received.length > before[i]!)).toBe(true);
    const metrics = (await get(`http://127.0.0.1:${b.adminPort}/metrics`)).body;
    expect(metrics).toContain('ballast_upstream_panic{upstream="pool"} 1');
    expect(metrics.match(/ballast_upstream_server_healthy\{[^}]*\} 0/g)).toHaveLength(2);
    const status = JSON.parse((await get(`http://127.0.0.1:${b.adminPort}/status`)).body) as { upstreams: { panic: boolean }[] };
    expect(status.upstreams[0]!.panic).toBe(true);

    // The servers recover: the two in rotation answer 200, so nothing new is ejected; panic lasts while two are out.
    for (const o of os) o.mode = 'ok';
    for (let i = 0; i < 8; i++) expect((await send(b)).status).toBe(200);
  });

  it('without panic (threshold 50%), the two ejected servers get nothing', async () => {
    const os = await fx.origins(4);
    for (const o of os) o.mode = { status: 500 };
    const b = await fx.ballast(poolConfig({
      servers: os,
      upstream: `    outlier_detection: { consecutive_failures: 2, base_ejection_time: 30s, max_ejection_percent: 50% }
    panic_threshold: 50%
    retry: { attempts: 1 }`,
    }));
    const u = b.ballast.upstreams.get('pool')!;
    for (let i = 0; i < 16; i++) await send(b);
    const ejected = u.hosts.filter((h) => h.state(u.now()) === 'ejected');
    expect(ejected).toHaveLength(2);
    const before = os.map((o) => o.received.length);
    for (let i = 0; i < 20; i++) await send(b);
    const gained = os.map((o, i) => o.received.length - before[i]!);
    expect(gained.filter((g) => g === 0)).toHaveLength(2);
    expect(gained.reduce((a, g) => a + g, 0)).toBe(20);
    expect(logsWith(b, 'upstream in panic: too few servers available, balancing over all of them')).toHaveLength(0);
  });

  it('ejects a server whose success rate is an outlier over the interval', async () => {
    const os = await fx.origins(5);
    let n = 0;
    os[4]!.handler = (_req, res) => {
      // Fails 3 requests in 4; the consecutive rules are off, so only the success-rate rule can see it.
      n++;
      res.writeHead(n % 4 === 0 ? 200 : 500, { 'x-origin': 'o5' }).end();
    };
    const b = await fx.ballast(poolConfig({
      servers: os,
      upstream: `    outlier_detection: { consecutive_failures: 0, consecutive_gateway_failures: 0, interval: 400ms, success_rate_minimum_hosts: 5, success_rate_request_volume: 10, base_ejection_time: 10s, max_ejection_percent: 20% }
    retry: { attempts: 1 }`,
    }));
    const traffic = startTraffic(b, { concurrency: 2, pauseMs: 1 });
    await waitFor(() => logsWith(b, 'server ejected').length > 0, { what: 'success-rate ejection' });
    await traffic.stop();
    expect(logsWith(b, 'server ejected')).toEqual([expect.objectContaining({ server: os[4]!.address, reason: 'success_rate' })]);
  });

  it('a passing active check ends an ejection early, unless configured otherwise', async () => {
    for (const uneject of [true, false]) {
      const [o1, o2] = await fx.origins(2);
      o1!.mode = { status: 500 }; // /healthz still answers 200
      const b = await fx.ballast(poolConfig({
        servers: [o1!, o2!],
        upstream: `    health_check: { type: http, interval: 100ms }
    outlier_detection: { consecutive_failures: 2, base_ejection_time: 20s, max_ejection_percent: 50%, uneject_on_active_success: ${uneject} }
    retry: { attempts: 1 }`,
      }));
      const u = b.ballast.upstreams.get('pool')!;
      for (let i = 0; i < 4; i++) await send(b);
      expect(u.hosts[0]!.state(u.now())).toBe('ejected');
      if (uneject) {
        const ms = await waitFor(() => u.hosts[0]!.state(u.now()) === 'healthy', { what: 'ejection ended early' });
        expect(ms).toBeLessThan(5000);
        expect(logsWith(b, 'server ejection ended by a passing active check')).toHaveLength(1);
      } else {
        await sleep(500);
        expect(u.hosts[0]!.state(u.now())).toBe('ejected');
      }
    }
  });
});
