/**
 * The health of every upstream in one place: the active checker (one probe loop per server), an outlier detector per
 * upstream that configures `outlier_detection`, and panic-mode reporting. This is where health events become log
 * lines and metrics; the pieces it wires stay free of both.
 *
 * Logs are written only when something flips: a server fails or passes its active checks, is ejected or returns,
 * an ejection is refused by max_ejection_percent, an upstream enters or leaves panic. One more, once per server: a
 * server that starts down (the default `initial_state: unhealthy`) and stays down never flips, so it is reported
 * when it has still not become healthy after a few probes (NEVER_HEALTHY_PROBES).
 *
 * Its feed (health-feed.ts) says whether this process probes, and carries health across processes: every change
 * decided here is published to it, and it applies what other processes decided through `apply` / `applySnapshot`,
 * which neither log nor publish again. A process that does not probe (a cluster worker) logs what it decides, not
 * what follows from everyone's decisions (panic, ejection ends): the process that probes hears of all of them and
 * logs each once.
 */
import { isLoopback } from '../config/schema.js';
import type { Clock, Random } from '../util/clock.js';
import type { Metrics } from '../admin/metrics.js';
import type { Logger } from '../log.js';
import type { Host } from '../upstream/host.js';
import type { Upstream } from '../upstream/upstream.js';
import { ActiveChecker, type CheckedHost } from './active-checker.js';
import type { HealthFeed } from './health-feed.js';
import { OutlierDetector } from './outlier-detector.js';
import type { ProbeResult } from './probe.js';
import type { HealthEvent, HostHealth } from './shared-health.js';

export interface HealthDeps {
  readonly clock: Clock;
  readonly random: Random;
  readonly log: Logger;
  readonly metrics: Metrics;
  /** Where health from other processes comes in and the changes decided here go; says whether to probe. */
  readonly feed: HealthFeed;
}

/**
 * Probes after which a server that has never been healthy since start-up is reported (at least one more than its
 * healthy_threshold, so a server that passes from its first probe on is never reported while it rises).
 */
export const NEVER_HEALTHY_PROBES = 3;

/**
 * Why a loopback server nobody answers on is the usual first-run surprise in a container (issue #16): the packaged
 * example's 127.0.0.1:9001 is the container itself there, so every request gets 503 until the config names
 * addresses the container can reach.
 */
export const LOOPBACK_HINT = 'nothing accepts connections on this loopback address; inside a container, loopback is the container itself, not the host: '
  + 'name the origins by an address the container reaches (host.docker.internal for the host, a service name, or run with --network host)';

export class HealthService {
  readonly checker: ActiveChecker;
  readonly #feed: HealthFeed;
  readonly #detectors = new Map<Upstream, OutlierDetector>();
  readonly #upstreams = new Map<string, Upstream>();
  /**
   * The first probes are still coming in. Servers start unhealthy (`initial_state`) and pass one by one, so panic is
   * not judged until all have answered: the pool would look like it fell to 1 of 4, then rose back (Envoy holds panic
   * during initial health checking too). No request is served before then (`start`).
   */
  #initialProbes = true;
  #stopped = false;
  /**
   * Servers (`upstream server`) that have been healthy since start-up, or were reported as never having become so:
   * neither is reported again. Carried across reloads (`inheritFrom`).
   */
  readonly #settled = new Set<string>();
  /** Probes of each server not yet settled, counted from start-up. */
  readonly #probesSinceStart = new Map<string, number>();

  constructor(upstreams: readonly Upstream[], deps: HealthDeps) {
    const { log, metrics, feed } = deps;
    this.#feed = feed;
    const emit = (event: HealthEvent): void => {
      try {
        feed.publish(event);
      } catch (err) {
        log.error({ err }, 'health event listener failed');
      }
    };
    for (const upstream of upstreams) {
      this.#upstreams.set(upstream.name, upstream);
      const name = upstream.name;
      if (feed.probes) {
        upstream.onPanicChange(({ panic, available, eligible }) => {
          const fields = { upstream: name, available, eligible, panic_threshold: upstream.config.panic_threshold };
          if (panic) log.warn(fields, 'upstream in panic: too few servers available, balancing over all of them');
          else log.info(fields, 'upstream left panic');
        });
      }
      const config = upstream.config.outlier_detection;
      if (config === undefined) continue;
      const detector = new OutlierDetector(upstream.hosts, config, {
        clock: deps.clock,
        random: deps.random,
        events: {
          ejected: ({ host, reason, durationMs, count, detail }) => {
            metrics.ejections.inc({ upstream: name, server: host.address, reason });
            log.warn({ upstream: name, server: host.address, reason, ejectedForMs: Math.round(durationMs), ejections: count, ...detail }, 'server ejected');
            upstream.panicking(upstream.now());
            emit({ kind: 'ejected', upstream: name, server: host.address, forMs: durationMs, count, reason });
          },
          returned: (host, early) => {
            if (feed.probes) log.info({ upstream: name, server: host.address, early }, early ? 'server ejection ended by a passing active check' : 'server ejection ended');
            upstream.panicking(upstream.now());
            // An ejection that ends with time ends by itself everywhere; only an early end must be told.
            if (early) emit({ kind: 'ejection-ended', upstream: name, server: host.address });
          },
          capped: (host, reason) => {
            log.warn({ upstream: name, server: host.address, reason, max_ejection_percent: config.max_ejection_percent }, 'server not ejected: max_ejection_percent reached');
          },
        },
      });
      upstream.onOutcome((host, outcome) => detector.observe(host, outcome));
      this.#detectors.set(upstream, detector);
    }
    // Discovery changes membership at run time: the new servers are probed and watched, the removed ones forgotten.
    for (const upstream of upstreams) {
      upstream.onMembershipChange(({ added, removed }) => {
        if (this.#stopped) return;
        const detector = this.#detectors.get(upstream);
        for (const host of removed) {
          this.checker.remove(upstream, host);
          detector?.remove(host);
        }
        for (const host of added) {
          detector?.add(host);
          if (feed.probes) this.checker.add(upstream, host);
        }
        upstream.panicking(upstream.now());
      });
    }

    this.checker = new ActiveChecker(feed.probes ? upstreams : [], {
      clock: deps.clock,
      random: deps.random,
      events: {
        probed: ({ upstream, host }: CheckedHost, result: ProbeResult, startedAt: number) => {
          metrics.healthChecks.inc({ upstream: upstream.name, server: host.address, result: result.ok ? 'success' : 'failure' });
          if (!result.ok) metrics.healthCheckFailures.inc({ upstream: upstream.name, server: host.address, reason: result.reason });
          else this.#detectors.get(upstream)?.activeCheckPassed(host, startedAt);
          this.#watchFirstHealth(upstream, host, result, log);
        },
        flipped: (members, healthy, result, probes) => {
          for (const { upstream, host } of members) {
            const fields = { upstream: upstream.name, server: host.address, probes, ...(!result.ok && { reason: result.reason, detail: result.detail }) };
            if (healthy) log.info(fields, 'server passed its active health checks');
            else log.warn(fields, 'server failed its active health checks');
            // A flip may take the upstream into or out of panic; report it now, not at the next request.
            if (!this.#initialProbes) upstream.panicking(upstream.now());
            emit({ kind: 'active', upstream: upstream.name, server: host.address, failed: !healthy });
          }
        },
        error: (err) => log.error({ err }, 'health check listener failed'),
      },
    });
  }

  /**
   * Take in the feed's health, then start detecting and probing; resolves after every server's first probe (see
   * ActiveChecker.start). Called after a reload's `inheritFrom`, so the feed's picture comes on top of the inherited one.
   */
  async start(): Promise<void> {
    this.#feed.attach(this);
    for (const d of this.#detectors.values()) d.start();
    await this.checker.start();
    this.#initialProbes = false;
    // Now judged once, on every server's first verdict: a pool that starts in panic says so here.
    for (const upstream of this.#upstreams.values()) upstream.panicking(upstream.now());
  }

  /** Stop every probe and timer, and take in nothing more from the feed. */
  stop(): void {
    this.#stopped = true;
    this.#feed.detach(this);
    this.checker.stop();
    for (const d of this.#detectors.values()) d.stop();
  }

  /**
   * After a reload: take over the active-check streaks and the outlier-detection state of the servers that stay
   * (same upstream, same address) from the service this one replaces. Their flags, ejections, slow start and latency
   * estimates came with the hosts (Host.inheritState).
   */
  inheritFrom(previous: HealthService): void {
    this.checker.continueFrom(previous.checker);
    for (const key of previous.#settled) this.#settled.add(key);
    for (const [key, probes] of previous.#probesSinceStart) if (!this.#settled.has(key)) this.#probesSinceStart.set(key, probes);
    for (const [upstream, detector] of this.#detectors) {
      const before = previous.#upstreams.get(upstream.name);
      const previousDetector = before === undefined ? undefined : previous.#detectors.get(before);
      if (before === undefined || previousDetector === undefined) continue;
      for (const host of upstream.hosts) {
        const previousHost = before.host(host.address);
        if (previousHost !== undefined) detector.inherit(host, previousDetector, previousHost);
      }
    }
  }

  /**
   * Report, once, a server that has not become healthy since start-up: with `initial_state: unhealthy` (the default)
   * a server that is down from the start never flips, so nothing else would say that it is not taking traffic.
   */
  #watchFirstHealth(upstream: Upstream, host: Host, result: ProbeResult, log: Logger): void {
    const key = `${upstream.name} ${host.address}`;
    if (this.#settled.has(key)) return;
    if (!host.activeCheckFailed) {
      this.#settled.add(key);
      this.#probesSinceStart.delete(key);
      return;
    }
    const probes = (this.#probesSinceStart.get(key) ?? 0) + 1;
    this.#probesSinceStart.set(key, probes);
    const threshold = Math.max(NEVER_HEALTHY_PROBES, (upstream.config.health_check?.healthy_threshold ?? 0) + 1);
    if (result.ok || probes < threshold) return;
    this.#settled.add(key);
    this.#probesSinceStart.delete(key);
    log.warn(
      { upstream: upstream.name, server: host.address, probes, reason: result.reason, detail: result.detail, ...(result.reason === 'connect' && isLoopback(host.host) && { hint: LOOPBACK_HINT }) },
      'server has not become healthy since start-up: it still fails its active health checks',
    );
  }

  /** After the service this one replaced (`inheritFrom`) is stopped: report the end of the ejections it left. */
  takeOverEjections(): void {
    for (const detector of this.#detectors.values()) detector.takeOverEjections();
  }

  /** Every server's flags now, for a process that starts or reloads later (`applySnapshot`, through its feed). */
  snapshot(): HostHealth[] {
    const out: HostHealth[] = [];
    for (const upstream of this.#upstreams.values()) {
      const now = upstream.now();
      const detector = this.#detectors.get(upstream);
      for (const h of upstream.hosts) {
        out.push({
          upstream: upstream.name,
          server: h.address,
          activeCheckFailed: h.activeCheckFailed,
          ejectedForMs: Math.max(0, h.ejectedUntil - now),
          ejections: detector?.ejections(h) ?? 0,
          draining: h.draining,
          disabled: h.disabled,
        });
      }
    }
    return out;
  }

  /**
   * Take in a snapshot from the process that probes: its active-check and admin flags replace ours (it alone decides
   * them); an ejection is merged, the longer one kept, so one decided here and not yet known there survives.
   * Servers the snapshot does not know (or we do not) are left alone.
   */
  applySnapshot(hosts: readonly HostHealth[]): void {
    for (const s of hosts) {
      const found = this.#find(s.upstream, s.server);
      if (found === undefined) continue;
      const [upstream, host] = found;
      const now = upstream.now();
      if (host.activeCheckFailed !== s.activeCheckFailed) host.setActiveCheckFailed(s.activeCheckFailed, now);
      if (host.draining !== s.draining) host.setDraining(s.draining, now);
      if (host.disabled !== s.disabled) host.setDisabled(s.disabled, now);
      if (s.ejectedForMs > 0) this.#adopt(upstream, host, s.ejectedForMs, s.ejections);
      upstream.panicking(now);
    }
  }

  /**
   * Apply a change another process decided; nothing is logged or reported again (that process did both).
   * Returns whether a server was found and changed.
   */
  apply(event: HealthEvent): boolean {
    const found = this.#find(event.upstream, event.server);
    if (found === undefined) return false;
    const [upstream, host] = found;
    const now = upstream.now();
    let changed = false;
    switch (event.kind) {
      case 'active':
        changed = host.activeCheckFailed !== event.failed;
        if (changed) host.setActiveCheckFailed(event.failed, now);
        break;
      case 'admin':
        changed = host.draining !== event.draining || host.disabled !== event.disabled;
        if (host.draining !== event.draining) host.setDraining(event.draining, now);
        if (host.disabled !== event.disabled) host.setDisabled(event.disabled, now);
        break;
      case 'ejected':
        changed = this.#adopt(upstream, host, event.forMs, event.count);
        break;
      case 'ejection-ended': {
        const detector = this.#detectors.get(upstream);
        if (detector !== undefined) changed = detector.release(host);
        else if (host.ejectedUntil > now) {
          host.endEjection(now);
          changed = true;
        }
        break;
      }
    }
    if (changed) upstream.panicking(now);
    return changed;
  }

  #find(upstreamName: string, server: string): [Upstream, Host] | undefined {
    const upstream = this.#upstreams.get(upstreamName);
    const host = upstream?.host(server);
    return upstream === undefined || host === undefined ? undefined : [upstream, host];
  }

  #adopt(upstream: Upstream, host: Host, forMs: number, count: number): boolean {
    const detector = this.#detectors.get(upstream);
    if (detector !== undefined) return detector.adopt(host, forMs, count);
    // This config has no outlier detection (a reload removed it): keep the verdict anyway, it ends with time.
    const now = upstream.now();
    if (host.ejectedUntil >= now + forMs) return false;
    host.eject(now + forMs, now);
    return true;
  }
}
