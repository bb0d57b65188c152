/** Slow start end to end: a recovered server's share ramps up over slow_start instead of jumping. */
import { afterEach, describe, expect, it } from 'vitest';
import { sleep, waitFor } from '../helpers/wait.js';
import { Fixture, poolConfig } from './config.js';
import { report, startTraffic } from './traffic.js';

const fx = new Fixture();
afterEach(() => fx.close());

describe('slow start', () => {
  it('ramps a recovered server up over the window (weighted round robin)', async () => {
    const [o1, o2] = await fx.origins(2);
    const window = 1500;
    const b = await fx.ballast(poolConfig({
      servers: [o1!, o2!],
      upstream: `    balance: weighted-round-robin
    slow_start: ${window}ms
    health_check: { type: http, interval: 50ms, healthy_threshold: 1, unhealthy_threshold: 1 }`,
    }));
    const u = b.ballast.upstreams.get('pool')!;
    const h1 = u.hosts[0]!;
    const h2 = u.hosts[1]!;
    // Both servers slow-start from their first passing probe at start-up, too: let that ramp finish first.
    expect(h2.effectiveWeight).toBeLessThan(1);
    await waitFor(() => h2.effectiveWeight === 1, { what: 'start-up ramp over' });
    o1!.healthy = false;
    await waitFor(() => !h1.isAvailable(u.now()), { what: 'o1 out' });
    const traffic = startTraffic(b, { concurrency: 4, pauseMs: 1 });
    o1!.healthy = true;
    await waitFor(() => h1.isAvailable(u.now()), { what: 'o1 back' });
    // The ramp starts when the host became available: Ballast's clock is this process's performance.now().
    const since = h1.availableSince;
    await sleep(window + 600 - (performance.now() - since));
    await traffic.stop();
    const quarter = window / 4; // five windows: the four of the ramp, then one at full weight
    const shares = [0, 1, 2, 3, 4].map((i) => {
      const s = traffic.between(since + i * quarter, since + (i + 1) * quarter);
      return s.filter((x) => x.origin === 'o1').length / Math.max(1, s.length);
    });
    report(`slow start 1.5s, o1 share per 375ms window: ${shares.map((x) => `${(100 * x).toFixed(0)}%`).join(', ')}`, 0);
    // A linear ramp against a full-weight peer: about 11%, 27%, 38%, 47% of the requests, then 50%.
    expect(shares[0]).toBeLessThan(0.22);
    expect(shares[1]).toBeGreaterThan(shares[0]!);
    expect(shares[3]).toBeGreaterThan(shares[1]!);
    expect(shares[4]).toBeGreaterThan(0.42);
    expect(traffic.samples.every((s) => s.status === 200)).toBe(true);
  });
});
