/** The outlier detector with an injected clock, random and timers: exact and instant. */
import { describe, expect, it } from 'vitest';
import { OutlierDetector, type Ejection } from '../../src/health/outlier-detector.js';
import type { Timers } from '../../src/util/clock.js';
import type { Host } from '../../src/upstream/host.js';
import { CONNECT_FAILURE, type Outcome } from '../../src/upstream/outcome.js';
import type { Upstream } from '../../src/upstream/upstream.js';
import { manualClock, upstream } from './units.js';

const ok: Outcome = { kind: 'response', status: 200, latencyMs: 1 };
const e500: Outcome = { kind: 'response', status: 500, latencyMs: 1 };

/** Timers that fire only when the test advances the manual clock. */
function manualTimers(clock: { now: number }) {
  const pending = new Set<{ at: number; fn: () => void }>();
  const timers: Timers = {
    set(fn, ms) {
      const t = { at: clock.now + ms, fn };
      pending.add(t);
      return t;
    },
    clear(handle) {
      pending.delete(handle as { at: number; fn: () => void });
    },
  };
  const advance = (ms: number): void => {
    const until = clock.now + ms;
    for (;;) {
      const next = [...pending].filter((t) => t.at <= until).sort((a, b) => a.at - b.at)[0];
      if (next === undefined) break;
      pending.delete(next);
      clock.now = next.at;
      next.fn();
    }
    clock.now = until;
  };
  return { timers, advance, pending };
}

function setup(keys: string, n = 4) {
  const clock = manualClock();
  const u: Upstream = upstream(`    outlier_detection: ${keys}`, { n, clock });
  const { timers, advance } = manualTimers(clock);
  const events = { ejected: [] as Ejection[], returned: [] as [Host, boolean][], capped: [] as [Host, string][] };
  const d = new OutlierDetector(u.hosts, u.config.outlier_detection!, {
    clock,
    random: () => 0,
    timers,
    events: {
      ejected: (e) => events.ejected.push(e),
      returned: (h, early) => events.returned.push([h, early]),
      capped: (h, r) => events.capped.push([h, r]),
    },
  });
  const feed = (h: Host, o: Outcome, times = 1): void => {
    for (let i = 0; i < times; i++) d.observe(h, o);
  };
  return { clock, u, d, events, advance, feed, hosts: u.hosts };
}

describe('outlier detector', () => {
  it('ejects after consecutive failures for base × count; one failure after the ejection ejects again for twice as long', () => {
    const { clock, d, events, advance, feed, hosts } = setup('{ consecutive_failures: 3, base_ejection_time: 1s, max_ejection_time: 10s, max_ejection_percent: 100% }');
    const h = hosts[0]!;
    feed(h, e500, 2);
    expect(h.isAvailable(clock.now)).toBe(true);
    feed(h, e500);
    expect(h.state(clock.now)).toBe('ejected');
    expect(h.ejectedUntil - clock.now).toBe(1000);
    expect(events.ejected[0]).toMatchObject({ reason: 'consecutive_failures', count: 1, durationMs: 1000 });
    advance(999);
    expect(h.state(clock.now)).toBe('ejected');
    advance(1);
    expect(h.state(clock.now)).toBe('healthy');
    expect(events.returned).toEqual([[h, false]]);
    // The trial fails: ejected again at once, for twice as long.
    feed(h, e500);
    expect(events.ejected[1]).toMatchObject({ count: 2, durationMs: 2000 });
    advance(2000);
    feed(h, ok);
    feed(h, e500, 2);
    expect(h.isAvailable(clock.now)).toBe(true); // the success cleared its record
    expect(d.ejections(h)).toBe(2);
  });

  it('caps the ejection time at max_ejection_time and decays the count one per interval spent un-ejected', () => {
    const { d, events, advance, feed, hosts } = setup('{ consecutive_failures: 1, base_ejection_time: 1s, max_ejection_time: 3s, interval: 10s, max_ejection_percent: 100% }');
    const h = hosts[0]!;
    for (let i = 0; i < 5; i++) {
      feed(h, e500);
      advance(5000);
    }
    expect(events.ejected.map((e) => e.durationMs)).toEqual([1000, 2000, 3000, 3000, 3000]);
    expect(d.ejections(h)).toBe(3);
    d.tick();
    d.tick();
    expect(d.ejections(h)).toBe(1);
    feed(h, e500);
    expect(events.ejected.at(-1)).toMatchObject({ count: 2, durationMs: 2000 });
    d.tick(); // ejected during this tick: no decay
    expect(d.ejections(h)).toBe(2);
  });

  it('honours max_ejection_percent exactly, reporting a refusal once', () => {
    for (const [share, expected] of [['0%', 0], ['25%', 1], ['50%', 2], ['74%', 2], ['75%', 3], ['100%', 4]] as const) {
      const { clock, events, feed, hosts } = setup(`{ consecutive_failures: 2, max_ejection_percent: ${share} }`);
      for (const h of hosts) feed(h, e500, 5);
      expect(hosts.filter((h) => h.state(clock.now) === 'ejected')).toHaveLength(expected);
      expect(events.capped).toHaveLength(4 - expected);
    }
  });

  it('counts refused connections as gateway failures and says they were local', () => {
    const { events, feed, hosts } = setup('{ consecutive_gateway_failures: 2, max_ejection_percent: 100% }');
    feed(hosts[0]!, CONNECT_FAILURE, 2);
    feed(hosts[1]!, { kind: 'response', status: 503, latencyMs: 1 }, 2);
    expect(events.ejected.map((e) => [e.host, e.reason])).toEqual([
      [hosts[0], 'consecutive_local_origin_failures'],
      [hosts[1], 'consecutive_gateway_failures'],
    ]);
  });

  it('does not eject twice for attempts that were in flight when the server was ejected', () => {
    const { events, feed, hosts } = setup('{ consecutive_failures: 2, max_ejection_percent: 100% }');
    feed(hosts[0]!, e500, 6);
    expect(events.ejected).toHaveLength(1);
  });

  it('ejects success-rate and failure-percentage outliers at the interval, then starts a fresh interval', () => {
    const { clock, events, feed, hosts, d } = setup('{ consecutive_failures: 0, consecutive_gateway_failures: 0, success_rate_minimum_hosts: 5, success_rate_request_volume: 10, failure_percentage_threshold: 50%, max_ejection_percent: 100% }', 6);
    for (const h of hosts.slice(0, 4)) feed(h, ok, 20);
    feed(hosts[4]!, ok, 10);
    feed(hosts[4]!, e500, 10);
    feed(hosts[5]!, e500, 19);
    feed(hosts[5]!, ok, 1);
    d.tick();
    // Rates 1, 1, 1, 1, 0.5, 0.05: mean 0.758, stdev 0.366, so below 0.064 is a success-rate outlier: only the
    // last. The one at 0.5 fails half its requests, which the 50% failure-percentage rule catches.
    expect(events.ejected.map((e) => [hosts.indexOf(e.host), e.reason])).toEqual([
      [5, 'success_rate'],
      [4, 'failure_percentage'],
    ]);
    expect(hosts[5]!.state(clock.now)).toBe('ejected');
    // Fresh interval: too little volume for anything.
    d.tick();
    expect(events.ejected).toHaveLength(2);
  });

  it('failure percentage catches a pool where every server fails alike', () => {
    const { events, feed, hosts, d } = setup('{ consecutive_failures: 0, consecutive_gateway_failures: 0, success_rate_minimum_hosts: 4, success_rate_request_volume: 10, failure_percentage_threshold: 50%, max_ejection_percent: 50% }');
    for (const h of hosts) {
      feed(h, e500, 15);
      feed(h, ok, 5);
    }
    d.tick();
    expect(events.ejected.map((e) => e.reason)).toEqual(['failure_percentage', 'failure_percentage']);
    expect(events.capped).toHaveLength(2);
  });

  it('ends an ejection early on a passing probe that started after it, when so configured', () => {
    for (const uneject of [true, false]) {
      const { clock, d, events, feed, hosts } = setup(`{ consecutive_failures: 1, base_ejection_time: 30s, max_ejection_percent: 100%, uneject_on_active_success: ${uneject} }`);
      const h = hosts[0]!;
      const probeStarted = clock.now;
      clock.now += 10;
      feed(h, e500);
      d.activeCheckPassed(h, probeStarted); // began before the ejection: says nothing about it
      expect(h.state(clock.now)).toBe('ejected');
      clock.now += 100;
      d.activeCheckPassed(h, clock.now - 5);
      expect(h.state(clock.now)).toBe(uneject ? 'healthy' : 'ejected');
      expect(events.returned).toEqual(uneject ? [[h, true]] : []);
      if (uneject) expect(h.availableSince).toBe(clock.now);
    }
  });

  it('a reload carries the ejection count, the failure run and the ejection in progress to the new detector', () => {
    const keys = '    outlier_detection: { consecutive_failures: 2, base_ejection_time: 1s, max_ejection_time: 10s, max_ejection_percent: 100%, uneject_on_active_success: true }';
    const clock = manualClock();
    const { timers, advance } = manualTimers(clock);
    const returned: [Host, boolean][] = [];
    const ejected: Ejection[] = [];
    const events = { ejected: (e: Ejection) => ejected.push(e), returned: (h: Host, early: boolean) => returned.push([h, early]), capped() {} };
    const detector = (u: Upstream) => new OutlierDetector(u.hosts, u.config.outlier_detection!, { clock, random: () => 0, timers, events });
    const before = upstream(keys, { clock });
    const old = detector(before);
    const [a, b] = before.hosts;
    old.observe(a!, e500);
    old.observe(a!, e500); // ejected once, for 1s
    const probeBeforeEjection = clock.now - 1;
    old.observe(b!, e500); // half a run
    const [, , c, d] = before.hosts;
    old.adopt(c!, 800, 1); // decided by another process
    advance(300);
    old.adopt(d!, 50, 1); // ends while the new detector is still being prepared
    advance(100);

    const after = upstream(keys, { clock });
    for (const h of after.hosts) h.inheritState(before.host(h.address)!);
    const next = detector(after);
    const [a2, b2, c2, d2] = after.hosts;
    for (const h of after.hosts) next.inherit(h, old, before.host(h.address)!);
    // Until the old detector stops, it reports the ends; then the new one takes over, so none is told twice.
    advance(10);
    expect(returned).toEqual([[d, false]]);
    old.stop();
    next.takeOverEjections();
    expect(next.ejections(a2!)).toBe(1);
    // The ejection began before this probe did: the probe says nothing about it.
    next.activeCheckPassed(a2!, probeBeforeEjection);
    expect(a2!.state(clock.now)).toBe('ejected');
    // Its end is still reported, by the new detector (the old one is stopped); so is the end of the ejection another
    // process decided, like any other.
    advance(600);
    expect(a2!.state(clock.now)).toBe('healthy');
    expect(c2!.state(clock.now)).toBe('healthy');
    expect(returned).toEqual([[d, false], [c2, false], [a2, false]]);
    // And none is told twice.
    advance(300);
    expect(returned).toEqual([[d, false], [c2, false], [a2, false]]);
    expect(d2!.state(clock.now)).toBe('healthy');
    // The next ejection is the second: twice the base time, not the base time again.
    next.observe(a2!, e500);
    next.observe(a2!, e500);
    expect(ejected.at(-1)).toMatchObject({ host: a2, count: 2, durationMs: 2000 });
    // The run that began before the reload goes on: one more failure completes it.
    next.observe(b2!, e500);
    expect(ejected.at(-1)).toMatchObject({ host: b2, count: 1, reason: 'consecutive_failures' });
  });

  it('a reload carries the success-rate counts of the interval in progress into the new detector', () => {
    const keys = '{ consecutive_failures: 0, consecutive_gateway_failures: 0, success_rate_minimum_hosts: 4, success_rate_request_volume: 10, failure_percentage_threshold: 50%, max_ejection_percent: 50% }';
    const before = setup(keys);
    // Half the interval's volume before the reload, half after: only together do they reach the request volume.
    for (const h of before.hosts.slice(0, 3)) before.feed(h, ok, 5);
    before.feed(before.hosts[3]!, e500, 5);
    const after = setup(keys);
    for (const h of after.hosts) after.d.inherit(h, before.d, before.u.host(h.address)!);
    before.d.stop();
    for (const h of after.hosts.slice(0, 3)) after.feed(h, ok, 5);
    after.feed(after.hosts[3]!, e500, 5);
    after.d.tick();
    expect(after.events.ejected.map((e) => [after.hosts.indexOf(e.host), e.reason])).toEqual([[3, 'failure_percentage']]);
  });

  it('reports the end of an ejection only once the clock has passed it, though the timer fire early', () => {
    const clock = manualClock();
    const u = upstream('    outlier_detection: { consecutive_failures: 1, base_ejection_time: 1s, max_ejection_percent: 100% }', { clock });
    // Node counts a timer from the event loop's cached time, which lags the clock: here it fires up to 2 ms early.
    const { timers: exact, advance } = manualTimers(clock);
    const early: Timers = { set: (fn, ms) => exact.set(fn, Math.max(1, ms - 2)), clear: exact.clear };
    const seen: string[] = [];
    const d = new OutlierDetector(u.hosts, u.config.outlier_detection!, {
      clock,
      random: () => 0,
      timers: early,
      events: { ejected() {}, returned: (h) => seen.push(`returned ${h.address} at ${clock.now}`), capped() {} },
    });
    const [a, b] = u.hosts;
    const start = clock.now;
    d.observe(a!, e500);
    d.adopt(b!, 500, 1);
    advance(2000);
    expect(seen).toEqual([`returned ${b!.address} at ${start + 500}`, `returned ${a!.address} at ${start + 1000}`]);
  });

  it('stop() clears every timer', () => {
    const clock = manualClock();
    const u = upstream('    outlier_detection: { consecutive_failures: 1, max_ejection_percent: 100% }', { clock });
    const { timers, pending } = manualTimers(clock);
    const d = new OutlierDetector(u.hosts, u.config.outlier_detection!, { clock, random: () => 0, timers, events: { ejected() {}, returned() {}, capped() {} } });
    d.start();
    d.observe(u.hosts[0]!, e500);
    expect(pending.size).toBe(2);
    d.stop();
    expect(pending.size).toBe(0);
  });
});
