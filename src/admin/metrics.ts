/**
 * Prometheus metrics (names are part of the contract: design.md "Admin contract").
 * Labels stay bounded: listener, upstream, server address, code class, outcome, reason — never a path, a client IP
 * or a request id. The data path records requests and attempts into plain cells (hot-metrics.ts) that the scrape
 * reads, so recording is a field increment; gauges that mirror state are computed at scrape time (`collect`).
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Upstream } from '../upstream/upstream.js';
import { flushCells, HotHistogram, registerHotHistograms, type HotCell, type LabelledCell, type LevelCell } from './hot-metrics.js';
import { TrafficWindows } from './traffic-window.js';
import { EdgeMetrics } from './edge-metrics.js';

export type { HotCell, LevelCell };

const CODE_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;

export interface RouteMetrics {
  /** Record a finished request; status 499 (client gone) counts as 4xx. */
  request(status: number, seconds: number): void;
}

const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class Metrics {
  readonly registry = new Registry();
  readonly requests: Counter<'listener' | 'upstream' | 'code_class'>;
  readonly #durations: HotHistogram[] = [];
  readonly #routes = new Map<string, { classes: HotCell[]; duration: HotHistogram }>();
  readonly #requestCells: LabelledCell<'listener' | 'upstream' | 'code_class'>[] = [];
  readonly #attemptCells = new Map<string, LabelledCell<'upstream' | 'server' | 'outcome'>>();
  readonly #rateLimitedCells = new Map<string, LabelledCell<'listener' | 'route'>>();
  readonly attempts: Counter<'upstream' | 'server' | 'outcome'>;
  readonly retries: Counter<'upstream' | 'reason'>;
  readonly retriesSkipped: Counter<'upstream' | 'reason'>;
  readonly ejections: Counter<'upstream' | 'server' | 'reason'>;
  readonly overflows: Counter<'upstream' | 'limit'>;
  /** Open client connections per listener name, HTTP and TCP alike; read by `ballast_active_connections`. */
  readonly #openConnections = new Map<string, LevelCell>();
  readonly healthChecks: Counter<'upstream' | 'server' | 'result'>;
  readonly healthCheckFailures: Counter<'upstream' | 'server' | 'reason'>;
  readonly badRequests: Counter<'listener' | 'reason'>;
  readonly #configReloads: Counter<'result'>;
  readonly #lastReloadSuccess: Gauge;
  /** Discovery lookups not applied (failed or empty), per upstream: src/discovery/dns-discovery.ts. */
  readonly discoveryErrors: Counter<'upstream'>;
  /** Each server's last minute of requests, errors and latency, for /status and the dashboard. */
  readonly traffic = new TrafficWindows();
  /** TLS handshakes, certificate expiry, HTTP/2 rapid reset. */
  readonly edge: EdgeMetrics;
  #upstreams: readonly Upstream[] = [];

  constructor(options: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    const self = this;
    this.requests = new Counter({
      name: 'ballast_requests_total',
      help: 'Requests answered, by listener, upstream and status class.',
      labelNames: ['listener', 'upstream', 'code_class'],
      registers,
      collect() {
        flushCells(this, self.#requestCells);
      },
    });
    registerHotHistograms(this.registry, 'ballast_request_duration_seconds', 'Time from request received to response complete.', this.#durations);
    this.attempts = new Counter({
      name: 'ballast_upstream_attempts_total',
      help: 'Attempts sent to each server, by outcome.',
      labelNames: ['upstream', 'server', 'outcome'],
      registers,
      collect() {
        flushCells(this, self.#attemptCells.values());
      },
    });
    new Counter({
      name: 'ballast_rate_limited_total',
      help: 'Requests refused with 429 by client.rate_limit, by listener and route (its position in the listener\'s routes).',
      labelNames: ['listener', 'route'],
      registers,
      collect() {
        flushCells(this, self.#rateLimitedCells.values());
      },
    });
    this.retries = new Counter({ name: 'ballast_retries_total', help: 'Retries made, by the reason the previous attempt failed.', labelNames: ['upstream', 'reason'], registers });
    this.retriesSkipped = new Counter({ name: 'ballast_retries_skipped_total', help: 'Failures that retry_on covered but were not retried, and why.', labelNames: ['upstream', 'reason'], registers });
    this.ejections = new Counter({ name: 'ballast_outlier_ejections_total', help: 'Servers ejected by passive outlier detection.', labelNames: ['upstream', 'server', 'reason'], registers });
    this.overflows = new Counter({ name: 'ballast_circuit_overflows_total', help: 'Requests refused because a circuit-breaker limit was reached.', labelNames: ['upstream', 'limit'], registers });
    new Gauge({
      name: 'ballast_active_connections',
      help: 'Open client connections per listener.',
      labelNames: ['listener'],
      registers,
      collect() {
        this.reset();
        for (const [listener, cell] of self.#openConnections) this.set({ listener }, cell.value);
      },
    });
    this.healthChecks = new Counter({ name: 'ballast_health_checks_total', help: 'Active health-check probes, by result (success or failure).', labelNames: ['upstream', 'server', 'result'], registers });
    this.healthCheckFailures = new Counter({
      name: 'ballast_health_check_failures_total',
      help: 'Failed active health-check probes, by reason: status, timeout, connect or error.',
      labelNames: ['upstream', 'server', 'reason'],
      registers,
    });
    this.discoveryErrors = new Counter({
      name: 'ballast_discovery_errors_total',
      help: 'DNS discovery lookups that failed or came back empty; the upstream kept its last servers.',
      labelNames: ['upstream'],
      registers,
    });
    this.badRequests = new Counter({ name: 'ballast_bad_requests_total', help: 'Requests refused before routing (malformed or ambiguous framing).', labelNames: ['listener', 'reason'], registers });

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
    // Prometheus' own prometheus_config_reloads_total / prometheus_config_last_reload_success_timestamp_seconds: the
    // timestamp is set at start, so `time() - …` says how long the config in force has been running either way.
    this.#configReloads = new Counter({ name: 'ballast_config_reloads_total', help: 'Reloads of the config file (SIGHUP, POST /reload, --watch), by result: success or failure.', labelNames: ['result'], registers });
    for (const result of ['success', 'failure']) this.#configReloads.inc({ result }, 0);
    this.#lastReloadSuccess = new Gauge({ name: 'ballast_config_last_reload_success_timestamp_seconds', help: 'When the config in force was loaded: at start, then at each successful reload (Unix seconds).', registers });
    this.#lastReloadSuccess.set(Date.now() / 1000);
    this.edge = new EdgeMetrics(this.registry);
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  /** A reload of the config file ended (reload/config-reloader.ts); `atMs`: wall-clock time of its end. */
  configReloaded(ok: boolean, atMs = Date.now()): void {
    this.#configReloads.inc({ result: ok ? 'success' : 'failure' });
    if (ok) this.#lastReloadSuccess.set(atMs / 1000);
  }

  /** The upstreams whose state the scrape-time gauges read, and whose outcomes the traffic windows record. */
  track(upstreams: readonly Upstream[]): void {
    this.#upstreams = upstreams;
    this.traffic.track(upstreams);
  }

  /** Passive ejections so far per server, all reasons together (what `ballast_outlier_ejections_total` counts). */
  async ejectionCounts(): Promise<(upstream: string, server: string) => number> {
    const sums = new Map<string, number>();
    for (const { labels, value } of (await this.ejections.get()).values) {
      const k = `${String(labels.upstream)}\u0000${String(labels.server)}`;
      sums.set(k, (sums.get(k) ?? 0) + value);
    }
    return (upstream, server) => sums.get(`${upstream}\u0000${server}`) ?? 0;
  }

  /** Open client connections of a listener now. */
  connections(listener: string): number {
    return this.#openConnections.get(listener)?.value ?? 0;
  }

  /**
   * The open-connection count of one listener. A listener that is reloaded (or replaced under the same name) gets
   * the same cell, so connections still open from before are counted until they close.
   */
  openConnections(listener: string): LevelCell {
    let cell = this.#openConnections.get(listener);
    if (cell === undefined) this.#openConnections.set(listener, (cell = { value: 0 }));
    return cell;
  }

  /** The cell for one (upstream, server, outcome): the data path adds to `pending`, the scrape moves it over. */
  attemptCell(upstream: string, server: string, outcome: string): HotCell {
    const key = `${upstream}\u0000${server}\u0000${outcome}`;
    let entry = this.#attemptCells.get(key);
    if (entry === undefined) {
      entry = { labels: { upstream, server, outcome }, cell: { pending: 0 } };
      this.#attemptCells.set(key, entry);
    }
    return entry.cell;
  }

  /** The cell counting one route's rate-limit refusals; the same across reloads. */
  rateLimitedCell(listener: string, route: string): HotCell {
    const key = `${listener}\u0000${route}`;
    let entry = this.#rateLimitedCells.get(key);
    if (entry === undefined) this.#rateLimitedCells.set(key, (entry = { labels: { listener, route }, cell: { pending: 0 } }));
    return entry.cell;
  }

  forRoute(listener: string, upstream: string): RouteMetrics {
    // Keyed by labels, so a config reload that compiles the same route again keeps counting into the same series.
    const key = `${listener}\u0000${upstream}`;
    let route = this.#routes.get(key);
    if (route === undefined) {
      const classes = CODE_CLASSES.map((code_class) => {
        const cell: HotCell = { pending: 0 };
        this.#requestCells.push({ labels: { listener, upstream, code_class }, cell });
        return cell;
      });
      const duration = new HotHistogram(DURATION_BUCKETS, { listener, upstream });
      this.#durations.push(duration);
      route = { classes, duration };
      this.#routes.set(key, route);
    }
    const { classes, duration } = route;
    return {
      request(status, seconds) {
        const i = Math.min(4, Math.max(0, Math.floor(status / 100) - 1));
        classes[i]!.pending++;
        duration.observe(seconds);
      },
    };
  }
}
