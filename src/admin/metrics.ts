/**
 * Prometheus metrics (names are part of the contract: design.md "Admin contract").
 * Labels stay bounded: listener, upstream, server address, code class, outcome, reason — never a path, a client IP
 * or a request id. The data path holds pre-resolved label children, so recording is a field increment; gauges
 * that mirror state are computed at scrape time (`collect`), not per request.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Upstream } from '../upstream/upstream.js';

const CODE_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;

export interface RouteMetrics {
  /** Record a finished request; status 499 (client gone) counts as 4xx. */
  request(status: number, seconds: number): void;
}

export class Metrics {
  readonly registry = new Registry();
  readonly requests: Counter<'listener' | 'upstream' | 'code_class'>;
  readonly duration: Histogram<'listener' | 'upstream'>;
  readonly attempts: Counter<'upstream' | 'server' | 'outcome'>;
  readonly retries: Counter<'upstream' | 'reason'>;
  readonly retriesSkipped: Counter<'upstream' | 'reason'>;
  readonly ejections: Counter<'upstream' | 'server' | 'reason'>;
  readonly overflows: Counter<'upstream' | 'limit'>;
  readonly activeConnections: Gauge<'listener'>;
  readonly healthChecks: Counter<'upstream' | 'server' | 'result'>;
  readonly healthCheckFailures: Counter<'upstream' | 'server' | 'reason'>;
  readonly badRequests: Counter<'listener' | 'reason'>;
  #upstreams: readonly Upstream[] = [];

  constructor(options: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    this.requests = new Counter({ name: 'ballast_requests_total', help: 'Requests answered, by listener, upstream and status class.', labelNames: ['listener', 'upstream', 'code_class'], registers });
    this.duration = new Histogram({
      name: 'ballast_request_duration_seconds',
      help: 'Time from request received to response complete.',
      labelNames: ['listener', 'upstream'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.attempts = new Counter({ name: 'ballast_upstream_attempts_total', help: 'Attempts sent to each server, by outcome.', labelNames: ['upstream', 'server', 'outcome'], registers });
    this.retries = new Counter({ name: 'ballast_retries_total', help: 'Retries made, by the reason the previous attempt failed.', labelNames: ['upstream', 'reason'], registers });
    this.retriesSkipped = new Counter({ name: 'ballast_retries_skipped_total', help: 'Failures that retry_on covered but were not retried, and why.', labelNames: ['upstream', 'reason'], registers });
    this.ejections = new Counter({ name: 'ballast_outlier_ejections_total', help: 'Servers ejected by passive outlier detection.', labelNames: ['upstream', 'server', 'reason'], registers });
    this.overflows = new Counter({ name: 'ballast_circuit_overflows_total', help: 'Requests refused because a circuit-breaker limit was reached.', labelNames: ['upstream', 'limit'], registers });
    this.activeConnections = new Gauge({ name: 'ballast_active_connections', help: 'Open client connections per listener.', labelNames: ['listener'], registers });
    this.healthChecks = new Counter({ name: 'ballast_health_checks_total', help: 'Active health-check probes, by result (success or failure).', labelNames: ['upstream', 'server', 'result'], registers });
    this.healthCheckFailures = new Counter({
      name: 'ballast_health_check_failures_total',
      help: 'Failed active health-check probes, by reason: status, timeout, connect or error.',
      labelNames: ['upstream', 'server', 'reason'],
      registers,
    });
    this.badRequests = new Counter({ name: 'ballast_bad_requests_total', help: 'Requests refused before routing (malformed or ambiguous framing).', labelNames: ['listener', 'reason'], registers });

    const self = this;
    new Gauge({
      name: 'ballast_upstream_server_healthy',
      help: '1 when the server is available for new requests, else 0.',
      labelNames: ['upstream', 'server'],
      registers,
      collect() {
        this.reset();
        for (const u of self.#upstreams) {
          const now = u.now();
          for (const h of u.hosts) this.set({ upstream: u.name, server: h.address }, h.isAvailable(now) ? 1 : 0);
        }
      },
    });
    new Gauge({
      name: 'ballast_upstream_active_requests',
      help: 'Requests in flight to each server.',
      labelNames: ['upstream', 'server'],
      registers,
      collect() {
        this.reset();
        for (const u of self.#upstreams) for (const h of u.hosts) this.set({ upstream: u.name, server: h.address }, h.inflight);
      },
    });
    new Gauge({
      name: 'ballast_upstream_panic',
      help: '1 while too few servers are available (below panic_threshold) and the upstream balances over all of them.',
      labelNames: ['upstream'],
      registers,
      collect() {
        this.reset();
        for (const u of self.#upstreams) this.set({ upstream: u.name }, u.panicking(u.now()) ? 1 : 0);
      },
    });
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  /** The upstreams whose state the scrape-time gauges read. */
  track(upstreams: readonly Upstream[]): void {
    this.#upstreams = upstreams;
  }

  forRoute(listener: string, upstream: string): RouteMetrics {
    const classes = CODE_CLASSES.map((code_class) => this.requests.labels({ listener, upstream, code_class }));
    const duration = this.duration.labels({ listener, upstream });
    return {
      request(status, seconds) {
        const i = Math.min(4, Math.max(0, Math.floor(status / 100) - 1));
        classes[i]!.inc();
        duration.observe(seconds);
      },
    };
  }
}
