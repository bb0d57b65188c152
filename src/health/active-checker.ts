/**
 * Active health checks (`health_check`): each server is probed on its own connection every `interval` (with jitter;
 * `unhealthy_interval` while it is down), and rise/fall hysteresis (hysteresis.ts) decides when its
 * `activeCheckFailed` flag flips. Only flips change the host and are reported for logging; every probe is counted.
 *
 * Probes run once per server per process: servers that appear in several upstreams with the same check share one
 * probe loop (a target), whose verdict applies to each of them. A loop schedules its next probe only when the
 * current one has ended, so probes never pile up on a slow server: the cadence is interval + probe time.
 *
 * Cost: one timer and at most one open socket per target; nothing on the request path.
 */
import type { Clock, Random } from '../util/clock.js';
import type { HealthCheckConfig } from '../config/schema.js';
import type { Host } from '../upstream/host.js';
import type { Upstream } from '../upstream/upstream.js';
import { httpProbe } from './http-probe.js';
import { initialHistory, observeHealth, type HealthHistory } from './hysteresis.js';
import type { Probe, ProbeResult, ProbeTarget } from './probe.js';
import { jittered, probeInterval } from './schedule.js';
import { tcpProbe } from './tcp-probe.js';

/** A host a probe loop speaks for. */
export interface CheckedHost {
  readonly upstream: Upstream;
  readonly host: Host;
}

export interface ActiveCheckEvents {
  /** Every probe result, once per host the probe speaks for; `startedAt` is when the probe began (clock ms). */
  probed(member: CheckedHost, result: ProbeResult, startedAt: number): void;
  /** The verdict flipped; the hosts' flags are already updated. `probes`: the consecutive results that did it. */
  flipped(members: readonly CheckedHost[], healthy: boolean, result: ProbeResult, probes: number): void;
  /** A listener threw; the loop goes on. */
  error(err: unknown): void;
}

export interface ActiveCheckerDeps {
  readonly clock: Clock;
  readonly random: Random;
  readonly events: ActiveCheckEvents;
  /** Replaces the real probes (tests). */
  readonly probe?: (config: HealthCheckConfig) => Probe;
}

/** Servers reached another way (TLS settings, protocol) are probed apart, each the way its traffic goes. */
function targetKey(host: Host, config: HealthCheckConfig): string {
  return `${host.transport.identity} ${JSON.stringify(config)}`;
}

export function probeFor(config: HealthCheckConfig): Probe {
  return config.type === 'tcp' ? (t, s) => tcpProbe(t, config, s) : (t, s) => httpProbe(t, config, s);
}

class Target {
  readonly members: CheckedHost[] = [];
  history: HealthHistory;
  timer: NodeJS.Timeout | undefined;
  controller: AbortController | undefined;
  /** Its last server left (discovery): the loop ends. */
  removed = false;

  /**
   * `healthy`: what the hosts' flag says now: `initial_state` for a new server, the inherited verdict after a reload
   * (a history that disagreed with the flag would never flip it: a server healthy before a reload that failed its
   * first probe after it would keep its traffic).
   */
  constructor(
    readonly endpoint: ProbeTarget,
    readonly config: HealthCheckConfig,
    readonly probe: Probe,
    healthy: boolean,
  ) {
    this.history = initialHistory(healthy);
  }
}

export class ActiveChecker {
  readonly #targets = new Map<string, Target>();
  readonly #deps: ActiveCheckerDeps;
  #started = false;
  #stopped = false;

  constructor(upstreams: Iterable<Upstream>, deps: ActiveCheckerDeps) {
    this.#deps = deps;
    for (const upstream of upstreams) for (const host of upstream.hosts) this.#join(upstream, host);
  }

  /** The probe loop `host` of `upstream` belongs to, created if it is the first; undefined without health checks. */
  #join(upstream: Upstream, host: Host): Target | undefined {
    const config = upstream.config.health_check;
    if (config === undefined) return undefined;
    const key = targetKey(host, config);
    let target = this.#targets.get(key);
    if (target === undefined) {
      target = new Target({ host: host.host, port: host.port, address: host.address, transport: host.transport }, config, (this.#deps.probe ?? probeFor)(config), !host.activeCheckFailed);
      this.#targets.set(key, target);
    }
    target.members.push({ upstream, host });
    return target;
  }

  /**
   * A server discovery added (upstream.ts `setMembers`): probed from now on, at once if its loop is new and the
   * checker runs, so it takes traffic as soon as it passes (with `initial_state: unhealthy`, not before).
   */
  add(upstream: Upstream, host: Host): void {
    const target = this.#join(upstream, host);
    if (target === undefined || this.#stopped || !this.#started || target.members.length > 1) return;
    this.#run(target).catch((err: unknown) => this.#deps.events.error(err));
  }

  /** A server discovery removed: no longer probed for `upstream`; its loop stops when nobody else shares it. */
  remove(upstream: Upstream, host: Host): void {
    const config = upstream.config.health_check;
    if (config === undefined) return;
    const key = targetKey(host, config);
    const target = this.#targets.get(key);
    if (target === undefined) return;
    const at = target.members.findIndex((m) => m.host === host);
    if (at !== -1) target.members.splice(at, 1);
    if (target.members.length > 0) return;
    this.#targets.delete(key);
    target.removed = true;
    clearTimeout(target.timer);
    target.timer = undefined;
    target.controller?.abort();
  }

  /**
   * After a reload: each probe loop whose server and check are unchanged continues the rise/fall streak of the loop
   * it replaces (issue #16), so a reload neither restarts a server that was two passes from healthy nor lets one
   * failing probe right after it take a healthy server out at once (a fresh history decides on its first result).
   * A loop whose verdict disagrees with its hosts' inherited flag keeps its own history (see Target).
   */
  continueFrom(previous: ActiveChecker): void {
    for (const [key, target] of this.#targets) {
      const before = previous.#targets.get(key);
      if (before !== undefined && before.history.healthy === target.history.healthy) target.history = before.history;
    }
  }

  /** Probe loops running (distinct server and check pairs). */
  get targets(): number {
    return this.#targets.size;
  }

  /**
   * Probe every server now and keep probing. Resolves when each server has had its first result (bounded by the
   * probe timeout), so a caller can wait for a first picture of health before taking traffic (Envoy's cluster
   * warming); never rejects.
   */
  start(): Promise<void> {
    this.#started = true;
    const events = this.#deps.events;
    return Promise.all([...this.#targets.values()].map((t) => this.#run(t).catch((err: unknown) => events.error(err)))).then(() => undefined);
  }

  /** Stop every loop and abort the probes in flight. */
  stop(): void {
    this.#stopped = true;
    for (const t of this.#targets.values()) {
      clearTimeout(t.timer);
      t.timer = undefined;
      t.controller?.abort();
    }
  }

  async #run(target: Target): Promise<void> {
    if (this.#stopped || target.removed) return;
    const { clock, events } = this.#deps;
    const controller = new AbortController();
    target.controller = controller;
    const startedAt = clock();
    try {
      const result = await target.probe(target.endpoint, controller.signal);
      target.controller = undefined;
      if (this.#stopped || target.removed) return;
      this.#record(target, result, startedAt);
    } catch (err) {
      events.error(err);
    }
    // Whatever happened to this probe, the next one is scheduled: a loop that stops silently is a server frozen in
    // whatever state it was in.
    if (this.#stopped || target.removed) return;
    const delay = jittered(probeInterval(target.config, target.history.healthy), target.config.jitter, this.#deps.random);
    target.timer = setTimeout(() => {
      this.#run(target).catch((err: unknown) => events.error(err));
    }, delay);
    target.timer.unref();
  }

  #record(target: Target, result: ProbeResult, startedAt: number): void {
    const before = target.history;
    const { history, flipped } = observeHealth(before, result.ok, {
      healthy: target.config.healthy_threshold,
      unhealthy: target.config.unhealthy_threshold,
    });
    target.history = history;
    const events = this.#deps.events;
    const now = this.#deps.clock();
    // Every copy follows the verdict, not only on a flip: a server listed in two upstreams shares this loop, and a
    // copy that started elsewhere (a new upstream after a reload) must not wait for a flip that never comes.
    for (const m of target.members) if (m.host.activeCheckFailed === history.healthy) m.host.setActiveCheckFailed(!history.healthy, now);
    if (flipped) events.flipped(target.members, history.healthy, result, before.probed ? before.streak + 1 : 1);
    for (const m of target.members) events.probed(m, result, startedAt);
  }
}
