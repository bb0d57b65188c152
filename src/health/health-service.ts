/**
 * The health of every upstream in one place: the active checker (one probe loop per server), an outlier detector per
 * upstream that configures `outlier_detection`, and panic-mode reporting. This is where health events become log
 * lines and metrics; the pieces it wires stay free of both.
 *
 * Logs are written only when something flips: a server fails or passes its active checks, is ejected or returns,
 * an ejection is refused by max_ejection_percent, an upstream enters or leaves panic.
 */
import type { Clock, Random } from '../balancer/types.js';
import type { Metrics } from '../admin/metrics.js';
import type { Logger } from '../log.js';
import type { Upstream } from '../upstream/upstream.js';
import { ActiveChecker, type CheckedHost } from './active-checker.js';
import { OutlierDetector } from './outlier-detector.js';
import type { ProbeResult } from './probe.js';

export interface HealthDeps {
  readonly clock: Clock;
  readonly random: Random;
  readonly log: Logger;
  readonly metrics: Metrics;
}

export class HealthService {
  readonly checker: ActiveChecker;
  readonly #detectors = new Map<Upstream, OutlierDetector>();

  constructor(upstreams: readonly Upstream[], deps: HealthDeps) {
    const { log, metrics } = deps;
    for (const upstream of upstreams) {
      const name = upstream.name;
      upstream.onPanicChange(({ panic, available, eligible }) => {
        const fields = { upstream: name, available, eligible, panic_threshold: upstream.config.panic_threshold };
        if (panic) log.warn(fields, 'upstream in panic: too few servers available, balancing over all of them');
        else log.info(fields, 'upstream left panic');
      });
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
          },
          returned: (host, early) => {
            log.info({ upstream: name, server: host.address, early }, early ? 'server ejection ended by a passing active check' : 'server ejection ended');
            upstream.panicking(upstream.now());
          },
          capped: (host, reason) => {
            log.warn({ upstream: name, server: host.address, reason, max_ejection_percent: config.max_ejection_percent }, 'server not ejected: max_ejection_percent reached');
          },
        },
      });
      upstream.onOutcome((host, outcome) => detector.observe(host, outcome));
      this.#detectors.set(upstream, detector);
    }

    this.checker = new ActiveChecker(upstreams, {
      clock: deps.clock,
      random: deps.random,
      events: {
        probed: ({ upstream, host }: CheckedHost, result: ProbeResult, startedAt: number) => {
          metrics.healthChecks.inc({ upstream: upstream.name, server: host.address, result: result.ok ? 'success' : 'failure' });
          if (!result.ok) metrics.healthCheckFailures.inc({ upstream: upstream.name, server: host.address, reason: result.reason });
          else this.#detectors.get(upstream)?.activeCheckPassed(host, startedAt);
        },
        flipped: (members, healthy, result, probes) => {
          for (const { upstream, host } of members) {
            const fields = { upstream: upstream.name, server: host.address, probes, ...(!result.ok && { reason: result.reason, detail: result.detail }) };
            if (healthy) log.info(fields, 'server passed its active health checks');
            else log.warn(fields, 'server failed its active health checks');
            // A flip may take the upstream into or out of panic; report it now, not at the next request.
            upstream.panicking(upstream.now());
          }
        },
        error: (err) => log.error({ err }, 'health check listener failed'),
      },
    });
  }

  /** Start probing and detecting; resolves after every server's first probe (see ActiveChecker.start). */
  start(): Promise<void> {
    for (const d of this.#detectors.values()) d.start();
    return this.checker.start();
  }

  /** Stop every probe and timer. */
  stop(): void {
    this.checker.stop();
    for (const d of this.#detectors.values()) d.stop();
  }
}
