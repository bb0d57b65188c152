/** Slow start end to end: a recovered server's share ramps up over slow_start instead of jumping. */
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/wait.js';
import { Fixture, poolConfig } from './config.js';
import { report, send, type Sample } from './traffic.js';
import { heldClock } from './units.js';

const fx = new Fixture();
afterEach(() => fx.close());

/** `n` requests, four at a time. */
async function requests(b: Parameters<typeof send>[0], n: number): Promise<Sample[]> {
  const samples: Sample[] = [];
  let sent = 0;
  await Promise.all(Array.from({ length: 4 }, async () => {
    while (sent < n) {
      sent++;
      samples.push(await send(b));
    }
  }));
  return samples;
}

describe('slow start', () => {
  it('ramps a recovered server up over the window (weighted round robin)', async () => {
    const [o1, o2] = await fx.origins(2);
    const window = 1500;
    // Ballast's clock, held still at five moments of the ramp while 200 requests are sent at each: the shares are
    // then those of the ramp at those moments, not of however many requests a busy machine fits into a time window.
    const clock = heldClock();
    const b = await fx.ballast(poolConfig({
      servers: [o1!, o2!],
      upstream: `    balance: weighted-round-robin
    slow_start: ${window}ms
    health_check: { type: http, interval: 50ms, healthy_threshold: 1, unhealthy_threshold: 1 }`,
    }), { clock });
    const u = b.ballast.upstreams.get('pool')!;
    const h1 = u.hosts[0]!;
    const h2 = u.hosts[1]!;
    // Both servers slow-start from their first passing probe at start-up, too: let that ramp finish first.
    expect(h2.effectiveWeight).toBeLessThan(1);
    await waitFor(() => h2.effectiveWeight === 1, { what: 'start-up ramp over' });
    o1!.healthy = false;
    await waitFor(() => !h1.isAvailable(u.now()), { what: 'o1 out' });
    // Held from before o1 comes back, so no moment of its ramp has passed before the test holds the clock there.
    const since = clock.hold();
    o1!.healthy = true;
    await waitFor(() => h1.isAvailable(u.now()), { what: 'o1 back' });
    // The ramp starts when the host became available.
    expect(h1.availableSince).toBe(since);
    const quarter = window / 4; // five moments: the middle of each quarter of the ramp, then one at full weight
    const all: Sample[] = [];
    const shares: number[] = [];
    for (let i = 0; i < 5; i++) {
      clock.hold(since + (i + 0.5) * quarter);
      const s = await requests(b, 200);
      all.push(...s);
      shares.push(s.filter((x) => x.origin === 'o1').length / s.length);
    }
    clock.release();
    report(`slow start 1.5s, o1 share at the middle of each 375ms quarter: ${shares.map((x) => `${(100 * x).toFixed(0)}%`).join(', ')}`, 0);
    // A linear ramp against a full-weight peer: about 11%, 27%, 38%, 47% of the requests, then 50%.
    expect(shares[0]).toBeLessThan(0.22);
    expect(shares[1]).toBeGreaterThan(shares[0]!);
    expect(shares[3]).toBeGreaterThan(shares[1]!);
    expect(shares[4]).toBeGreaterThan(0.42);
    [0.111, 0.273, 0.385, 0.467, 0.5].forEach((expected, i) => expect(Math.abs(shares[i]! - expected), `share ${i}`).toBeLessThan(0.03));
    expect(all.every((s) => s.status === 200)).toBe(true);
  });
});
