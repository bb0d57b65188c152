/**
 * Passive outlier detection (`outlier_detection`) for one upstream, fed by the outcome of every proxied attempt
 * through `Upstream.observe` (Envoy `DetectorImpl`): consecutive-failure rules on every outcome
 * (consecutive-failures.ts), success-rate and failure-percentage rules once per `interval` (success-rate.ts).
 *
 * An ejection sets the host's `ejectedUntil` and nothing else; it ends by itself when the clock passes it (the host
 * slow-starts from there: host.ts), or earlier when an active probe started after the ejection passes
 * (`uneject_on_active_success`, Envoy `successful_active_health_check_uneject_host`). Its length grows with the
 * number of times the server was ejected (ejection.ts); that count decays by one every interval the server spends
 * un-ejected (Envoy), so a server that behaves for a while starts over at the base time.
 *
 * Cost per outcome: a map lookup and a few integer updates. Clock, random and timers are injected.
 */
import { REAL_TIMERS, type Clock, type Random, type Timers } from '../util/clock.js';
import type { OutlierDetectionConfig } from '../config/schema.js';
import type { Host } from '../upstream/host.js';
import type { Outcome } from '../upstream/outcome.js';
import { brokenRule, classifyOutcome, NO_FAILURES, nextRuns, type ConsecutiveReason, type FailureRuns } from './consecutive-failures.js';
import { ejectionDuration, maxEjectionCount, mayEject, type EjectionTimes } from './ejection.js';
import { failurePercentageOutliers, successRateOutliers, type IntervalCounts } from './success-rate.js';

export type EjectionReason = ConsecutiveReason | 'success_rate' | 'failure_percentage';

export interface Ejection {
  readonly host: Host;
  readonly reason: EjectionReason;
  readonly durationMs: number;
  /** Times ejected, this one included (after decay): the multiplier of the base time. */
  readonly count: number;
  /** What broke the rule, for the log. */
  readonly detail: Record<string, number>;
}

export interface OutlierEvents {
  ejected(ejection: Ejection): void;
  /**
   * An ejection ended: by time, or early after a passing active check. Those taken in with `adopt` too: whether a
   * process logs an end is its caller's business (health-service.ts), not a matter of who decided the ejection.
   */
  returned(host: Host, early: boolean): void;
  /** A rule was broken but `max_ejection_percent` would be exceeded; reported once until the server recovers. */
  capped(host: Host, reason: EjectionReason): void;
}

class Monitor {
  runs: FailureRuns = NO_FAILURES;
  /** Times ejected, decayed; the multiplier of the next ejection's base time. */
  ejections = 0;
  /** When the current (or last) ejection began. */
  ejectedAt = -Infinity;
  /** The timer that reports the end of the current ejection. */
  returnTimer: unknown;
  /** An ejection was refused by `max_ejection_percent` and not reported since. */
  capped = false;
  /** This interval's attempts. */
  successes = 0;
  failures = 0;
}

export class OutlierDetector {
  readonly #config: OutlierDetectionConfig;
  readonly #monitors = new Map<Host, Monitor>();
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #events: OutlierEvents;
  readonly #timers: Timers;
  readonly #times: EjectionTimes;
  #interval: unknown;
  #stopped = false;

  constructor(hosts: readonly Host[], config: OutlierDetectionConfig, deps: { clock: Clock; random: Random; events: OutlierEvents; timers?: Timers }) {
    this.#config = config;
    this.#clock = deps.clock;
    this.#random = deps.random;
    this.#events = deps.events;
    this.#timers = deps.timers ?? REAL_TIMERS;
    this.#times = { baseMs: config.base_ejection_time, maxMs: config.max_ejection_time };
    for (const h of hosts) this.#monitors.set(h, new Monitor());
  }

  /** Run the interval rules every `interval`. */
  start(): void {
    const every = (): void => {
      this.#interval = this.#timers.set(() => {
        this.tick();
        if (!this.#stopped) every();
      }, this.#config.interval);
    };
    every();
  }

  stop(): void {
    this.#stopped = true;
    this.#timers.clear(this.#interval);
    for (const m of this.#monitors.values()) this.#timers.clear(m.returnTimer);
  }

  /** A server discovery added: watched from its first attempt, with no history. */
  add(host: Host): void {
    if (!this.#monitors.has(host)) this.#monitors.set(host, new Monitor());
  }

  /** A server discovery removed: forgotten, its pending end-of-ejection report dropped; later outcomes are ignored. */
  remove(host: Host): void {
    const m = this.#monitors.get(host);
    if (m === undefined) return;
    this.#timers.clear(m.returnTimer);
    this.#monitors.delete(host);
  }

  /** The outcome of one attempt at `host` (the `Upstream.observe` sink). */
  observe(host: Host, outcome: Outcome): void {
    // After a reload, requests still finishing on the old config must not eject anything.
    if (this.#stopped) return;
    const m = this.#monitors.get(host);
    if (m === undefined) return;
    const cls = classifyOutcome(outcome);
    if (cls === 'success') {
      m.successes++;
      m.capped = false;
    } else {
      m.failures++;
    }
    m.runs = nextRuns(m.runs, cls);
    const reason = brokenRule(m.runs, { failures: this.#config.consecutive_failures, gateway: this.#config.consecutive_gateway_failures });
    if (reason === undefined) return;
    const now = this.#clock();
    // Attempts still in flight when the server was ejected land here too: they do not eject it twice.
    if (host.ejectedUntil > now) return;
    const detail = reason === 'consecutive_failures' ? { failures: m.runs.failures } : { gateway_failures: m.runs.gateway, local_origin_failures: m.runs.localOrigin };
    this.#eject(host, m, reason, detail, now);
  }

  /**
   * The interval rules, then a fresh interval: success rate, failure percentage, and the decay of ejection counts.
   * Called by the timer that `start` sets; public so tests drive it with their own clock.
   */
  tick(): void {
    const now = this.#clock();
    const c = this.#config;
    const counts: IntervalCounts<Host>[] = [];
    for (const [host, m] of this.#monitors) counts.push({ key: host, successes: m.successes, failures: m.failures });
    const volume = { minimumHosts: c.success_rate_minimum_hosts, requestVolume: c.success_rate_request_volume };
    for (const v of successRateOutliers(counts, { ...volume, stdevFactor: c.success_rate_stdev_factor })) {
      if (v.key.ejectedUntil > now) continue;
      this.#eject(v.key, this.#monitors.get(v.key)!, 'success_rate', { success_rate: round(v.successRate), threshold: round(v.threshold) }, now);
    }
    if (c.failure_percentage_threshold !== undefined) {
      for (const v of failurePercentageOutliers(counts, { ...volume, threshold: c.failure_percentage_threshold })) {
        if (v.key.ejectedUntil > now) continue;
        this.#eject(v.key, this.#monitors.get(v.key)!, 'failure_percentage', { failure_share: round(v.failureShare) }, now);
      }
    }
    for (const [host, m] of this.#monitors) {
      m.successes = 0;
      m.failures = 0;
      if (m.ejections > 0 && host.ejectedUntil <= now) m.ejections--;
    }
  }

  /** A probe that started at `startedAt` passed: end an ejection that began before it, if so configured. */
  activeCheckPassed(host: Host, startedAt: number): void {
    if (!this.#config.uneject_on_active_success) return;
    const m = this.#monitors.get(host);
    const now = this.#clock();
    if (m === undefined || host.ejectedUntil <= now || startedAt < m.ejectedAt) return;
    this.#timers.clear(m.returnTimer);
    m.returnTimer = undefined;
    host.endEjection(now);
    this.#events.returned(host, true);
  }

  /**
   * An ejection decided by another process (a cluster worker): eject `host` for `durationMs` from now unless it is
   * already ejected for longer, and raise its ejection count to `count`, so an ejection decided here next lasts as
   * long as it would have there. Reports no `ejected` (the process that decided it did); its end is reported like
   * any other. Returns whether it applied.
   */
  adopt(host: Host, durationMs: number, count: number): boolean {
    const m = this.#monitors.get(host);
    if (m === undefined) return false;
    const now = this.#clock();
    m.ejections = Math.min(Math.max(m.ejections, count), maxEjectionCount(this.#times));
    const until = now + durationMs;
    if (host.ejectedUntil >= until) return false;
    // max_ejection_percent holds here too: ejections relayed from several workers must not add up past it.
    if (host.ejectedUntil <= now) {
      let ejected = 0;
      for (const h of this.#monitors.keys()) if (h.ejectedUntil > now) ejected++;
      if (!mayEject(ejected, this.#monitors.size, this.#config.max_ejection_percent)) return false;
    }
    m.ejectedAt = now;
    m.capped = false;
    host.eject(until, now);
    this.#onEnd(host, m, until);
    return true;
  }

  /** Another process ended `host`'s ejection early (a passing active check there). Returns whether it was ejected. */
  release(host: Host): boolean {
    const m = this.#monitors.get(host);
    const now = this.#clock();
    if (m === undefined || host.ejectedUntil <= now) return false;
    this.#timers.clear(m.returnTimer);
    m.returnTimer = undefined;
    host.endEjection(now);
    return true;
  }

  /**
   * Take over what `previous` (the detector of the config a reload replaces) knows of the same server: its ejection
   * count, so the backoff does not start over at the base time after every reload; the failure run in progress and
   * the success-rate counts of the interval in progress; and when its current ejection began, so only a probe
   * started after it ends it early. The host itself already carries the ejection (Host.inheritState). Its end is
   * reported by the old detector until that one is stopped, then by this one (`takeOverEjections`).
   */
  inherit(host: Host, previous: OutlierDetector, previousHost: Host): void {
    const m = this.#monitors.get(host);
    const before = previous.#monitors.get(previousHost);
    if (m === undefined || before === undefined) return;
    m.ejections = Math.min(before.ejections, maxEjectionCount(this.#times));
    m.runs = before.runs;
    m.ejectedAt = before.ejectedAt;
    m.capped = before.capped;
    // The interval in progress goes on: its counts join the first interval after the reload.
    m.successes = before.successes;
    m.failures = before.failures;
  }

  /**
   * The detector a reload replaced is stopped: from now on this one reports the end of the ejections it inherited.
   * Until now the old one did, so no end is told twice.
   */
  takeOverEjections(): void {
    const now = this.#clock();
    for (const [host, m] of this.#monitors) {
      if (host.ejectedUntil <= now || m.returnTimer !== undefined) continue;
      this.#onEnd(host, m, host.ejectedUntil);
    }
  }

  /** Times `host` has been ejected, decayed (for /status and tests). */
  ejections(host: Host): number {
    return this.#monitors.get(host)?.ejections ?? 0;
  }

  #eject(host: Host, m: Monitor, reason: EjectionReason, detail: Record<string, number>, now: number): void {
    let ejected = 0;
    for (const h of this.#monitors.keys()) if (h.ejectedUntil > now) ejected++;
    if (!mayEject(ejected, this.#monitors.size, this.#config.max_ejection_percent)) {
      if (!m.capped) this.#events.capped(host, reason);
      m.capped = true;
      return;
    }
    m.capped = false;
    m.ejections = Math.min(m.ejections + 1, maxEjectionCount(this.#times));
    m.ejectedAt = now;
    const durationMs = ejectionDuration(m.ejections, this.#times, this.#random);
    const until = now + durationMs;
    host.eject(until, now);
    this.#onEnd(host, m, until);
    this.#events.ejected({ host, reason, durationMs, count: m.ejections, detail });
  }

  /**
   * Report the end once the clock has passed `until`, unless the ejection is replaced or ended before. A timer can
   * fire a little before the clock gets there (Node counts from the loop's cached time, which lags), and at that
   * moment the host is still ejected: it is then set again for what is left.
   */
  #onEnd(host: Host, m: Monitor, until: number): void {
    this.#timers.clear(m.returnTimer);
    m.returnTimer = undefined;
    if (this.#stopped) return;
    const wait = (ms: number): void => {
      m.returnTimer = this.#timers.set(() => {
        m.returnTimer = undefined;
        if (host.ejectedUntil !== until || this.#stopped) return;
        const left = until - this.#clock();
        if (left > 0) wait(Math.ceil(left));
        else this.#events.returned(host, false);
      }, ms);
    };
    wait(Math.ceil(until - this.#clock()));
  }
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
