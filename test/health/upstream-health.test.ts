/** Host state and Upstream.pick under health: flags per source, backups, panic and slow start, with a manual clock. */
import { describe, expect, it } from 'vitest';
import type { Host } from '../../src/upstream/host.js';
import { manualClock, seededRandom, upstream } from './units.js';

function counts(pick: () => Host | undefined, n: number): Map<string, number> {
  const out = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const h = pick();
    const k = h?.address ?? 'none';
    out.set(k, (out.get(k) ?? 0) + 1);
  }
  return out;
}

describe('host state', () => {
  it('keeps one flag per source; availability and state are derived', () => {
    const clock = manualClock();
    const h = upstream('').hosts[0]!;
    const now = clock.now;
    expect(h.state(now)).toBe('healthy');
    h.setActiveCheckFailed(true, now);
    h.eject(now + 1000, now);
    expect(h.state(now)).toBe('ejected');
    h.setDraining(true, now);
    h.setDisabled(true, now);
    expect(h.state(now)).toBe('disabled');
    h.setDisabled(false, now);
    expect(h.state(now)).toBe('draining');
    h.setDraining(false, now);
    expect(h.state(now + 1000)).toBe('unhealthy'); // the ejection ended; the failed check did not
    h.setActiveCheckFailed(false, now + 1000);
    expect(h.isAvailable(now + 1000)).toBe(true);
  });

  it('slow-starts from start-up, from a recovery and from the end of an ejection', () => {
    const clock = manualClock();
    const u = upstream('    slow_start: 1000ms', { clock });
    const h = u.hosts[0]!;
    expect(h.effectiveWeight).toBe(0.01);
    clock.now += 500;
    expect(h.effectiveWeight).toBe(0.5);
    clock.now += 500;
    expect(h.effectiveWeight).toBe(1);

    h.setActiveCheckFailed(true, clock.now);
    clock.now += 5000;
    h.setActiveCheckFailed(false, clock.now);
    expect(h.effectiveWeight).toBe(0.01);
    clock.now += 250;
    expect(h.effectiveWeight).toBe(0.25);

    clock.now += 5000;
    h.eject(clock.now + 2000, clock.now);
    clock.now += 2000; // the ejection ends by itself, with no event
    expect(h.effectiveWeight).toBe(0.01);
    clock.now += 100;
    expect(h.effectiveWeight).toBeCloseTo(0.1, 10);

    // A flag that changes while the host is unavailable anyway does not restart anything twice.
    clock.now += 5000;
    h.setDisabled(true, clock.now);
    h.setActiveCheckFailed(true, clock.now);
    h.setDisabled(false, clock.now + 10);
    h.setActiveCheckFailed(false, clock.now + 20);
    expect(h.availableSince).toBe(clock.now + 20);
  });
});

describe('Upstream.pick', () => {
  it('sends to backups only while no primary is available, and back when one returns', () => {
    const clock = manualClock();
    const u = upstream('', { n: 3, backups: 1, clock });
    const [p1, p2, b] = u.hosts as [Host, Host, Host];
    expect(counts(() => u.pick(undefined, undefined), 10).get(b.address)).toBeUndefined();
    p1.setActiveCheckFailed(true, clock.now);
    expect(counts(() => u.pick(undefined, undefined), 10)).toEqual(new Map([[p2.address, 10]]));
    p2.eject(clock.now + 100, clock.now);
    expect(counts(() => u.pick(undefined, undefined), 10)).toEqual(new Map([[b.address, 10]]));
    clock.now += 100;
    expect(counts(() => u.pick(undefined, undefined), 10)).toEqual(new Map([[p2.address, 10]]));
  });

  it('returns nothing when nothing is available (the data path answers 503 at once)', () => {
    const clock = manualClock();
    const u = upstream('', { n: 3, backups: 1, clock });
    for (const h of u.hosts) h.setActiveCheckFailed(true, clock.now);
    expect(u.pick(undefined, undefined)).toBeUndefined();
    expect(u.panicking(clock.now)).toBe(false);
  });

  it('in panic, balances over every primary the admin allows, health ignored, and reports the flips', () => {
    const clock = manualClock();
    const u = upstream('    panic_threshold: 50%', { n: 5, backups: 1, clock });
    const [p1, p2, p3, p4, backup] = u.hosts as [Host, Host, Host, Host, Host];
    const changes: boolean[] = [];
    u.onPanicChange((c) => changes.push(c.panic));
    // The backup is down too: an available backup would take the traffic instead of a panic (next test).
    backup.setActiveCheckFailed(true, clock.now);
    p1.setActiveCheckFailed(true, clock.now);
    p2.eject(clock.now + 10_000, clock.now);
    expect(u.panicking(clock.now)).toBe(false); // 2 of 4 is not below 50%
    p3.setActiveCheckFailed(true, clock.now);
    const seen = counts(() => u.pick(undefined, undefined), 40);
    expect(u.panicking(clock.now)).toBe(true);
    expect([...seen.keys()].sort()).toEqual([p1, p2, p3, p4].map((h) => h.address).sort());
    expect(seen.get(backup.address)).toBeUndefined();
    // Admin intent still holds in panic.
    p1.setDisabled(true, clock.now);
    expect(counts(() => u.pick(undefined, undefined), 30).get(p1.address)).toBeUndefined();
    // Disabled servers are not counted: 1 of 3 eligible is still panic; draining two more is not.
    p2.setDraining(true, clock.now);
    p3.setDraining(true, clock.now);
    expect(u.panicking(clock.now)).toBe(false);
    expect(counts(() => u.pick(undefined, undefined), 10)).toEqual(new Map([[p4.address, 10]]));
    expect(changes).toEqual([true, false]);
  });

  it('does not panic while a backup is available: dead primaries get no traffic', () => {
    const clock = manualClock();
    const u = upstream('    panic_threshold: 50%', { n: 5, backups: 1, clock });
    const [p1, p2, p3, p4] = u.hosts as [Host, Host, Host, Host, Host];
    for (const p of [p1, p2, p3]) p.setActiveCheckFailed(true, clock.now);
    expect(u.panicking(clock.now)).toBe(false);
    expect(counts(() => u.pick(undefined, undefined), 20)).toEqual(new Map([[p4.address, 20]]));
  });

  it('avoids hosts already tried while another is usable, and reuses them only when none is', () => {
    const clock = manualClock();
    const u = upstream('', { n: 2, clock });
    const [a, b] = u.hosts as [Host, Host];
    expect(u.pick(undefined, [a])).toBe(b);
    b.setActiveCheckFailed(true, clock.now);
    expect(u.pick(undefined, [a])).toBe(a);
  });

  it.each(['weighted-round-robin', 'random', 'least-request', 'peak-ewma'])('slow start shapes the shares of %s', (balance) => {
    const clock = manualClock();
    const u = upstream(`    balance: ${balance}\n    slow_start: 1000ms`, { n: 2, clock, random: seededRandom(7) });
    const [a, b] = u.hosts as [Host, Host];
    clock.now += 2000; // start-up ramp over
    a.setActiveCheckFailed(true, clock.now);
    clock.now += 100;
    a.setActiveCheckFailed(false, clock.now);
    clock.now += 100; // a at 10% of its weight
    const early = counts(() => u.pick(undefined, undefined), 2000).get(a.address) ?? 0;
    clock.now += 1000;
    const late = counts(() => u.pick(undefined, undefined), 2000).get(a.address) ?? 0;
    expect(early / 2000).toBeLessThan(0.2);
    expect(late / 2000).toBeGreaterThan(0.4);
    expect(b.effectiveWeight).toBe(1);
  });
});
