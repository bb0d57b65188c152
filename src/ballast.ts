/**
 * A running Ballast: upstream pools, their health, listeners and the admin endpoint built from one validated config.
 */
import type { AddressInfo } from 'node:net';
import type { Clock, Random } from './balancer/types.js';
import type { Config } from './config/schema.js';
import { Metrics } from './admin/metrics.js';
import { AdminServer } from './admin/server.js';
import { serverActions } from './admin/server-actions.js';
import { HealthService } from './health/health-service.js';
import { createLogger, type Logger } from './log.js';
import { HttpListener } from './proxy/http/listener.js';
import { TcpListener } from './proxy/tcp/tcp-listener.js';
import { Upstream } from './upstream/upstream.js';

export interface BallastOptions {
  readonly log?: Logger;
  readonly clock?: Clock;
  readonly random?: Random;
  /** Export Node process metrics (off in tests that start many instances). */
  readonly processMetrics?: boolean;
}

export class Ballast {
  readonly config: Config;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly upstreams: ReadonlyMap<string, Upstream>;
  readonly health: HealthService;
  readonly httpListeners: readonly HttpListener[];
  readonly tcpListeners: readonly TcpListener[];
  readonly admin: AdminServer;
  #ready = false;
  #stopping: Promise<void> | undefined;

  private constructor(config: Config, options: BallastOptions) {
    this.config = config;
    this.log = options.log ?? createLogger(config.logging.level);
    const clock = options.clock ?? (() => performance.now());
    const random = options.random ?? Math.random;
    this.metrics = new Metrics({ processMetrics: options.processMetrics ?? true });
    const upstreams = new Map<string, Upstream>();
    for (const u of config.upstreams) upstreams.set(u.name, new Upstream(u, { clock, random }));
    this.upstreams = upstreams;
    this.metrics.track([...upstreams.values()]);
    this.health = new HealthService([...upstreams.values()], { clock, random, log: this.log, metrics: this.metrics });
    const deps = { upstreams, metrics: this.metrics, log: this.log, accessLog: config.logging.access_log, random };
    this.httpListeners = config.listeners.flatMap((l) => (l.protocol === 'http' ? [new HttpListener(l, deps)] : []));
    this.tcpListeners = config.listeners.flatMap((l) => (l.protocol === 'tcp' ? [new TcpListener(l, deps)] : []));
    this.admin = new AdminServer({
      metrics: this.metrics,
      log: this.log,
      upstreams: () => this.upstreams.values(),
      ready: () => this.#ready && this.#stopping === undefined,
      token: config.admin.token,
      actions: serverActions(() => this.upstreams.values(), this.log),
    });
  }

  /**
   * Build everything, bind the admin listener, probe every server once (bounded by the probe timeout, so the first
   * requests are routed on a real picture of health, as Envoy warms a cluster), then bind every proxy listener.
   */
  static async start(config: Config, options: BallastOptions = {}): Promise<Ballast> {
    const ballast = new Ballast(config, options);
    try {
      await ballast.admin.listen(config.admin.listen.host, config.admin.listen.port);
      await ballast.health.start();
      for (const l of [...ballast.httpListeners, ...ballast.tcpListeners]) {
        const addr = await l.listen();
        ballast.log.info({ listener: l.name, protocol: l.config.protocol, address: `${addr.address}:${addr.port}` }, 'listening');
      }
    } catch (err) {
      await ballast.stop(0);
      throw err;
    }
    ballast.#ready = true;
    return ballast;
  }

  /** The bound port of a listener (useful when the config says port 0). */
  port(listener: string): number {
    const l = this.httpListeners.find((h) => h.name === listener) ?? this.tcpListeners.find((t) => t.name === listener);
    if (!l) throw new Error(`no listener named ${listener}`);
    return l.port;
  }

  get adminAddress(): AddressInfo {
    return this.admin.server.address() as AddressInfo;
  }

  /** Stop accepting, finish in-flight requests until `drainMs`, then release every socket. Idempotent. */
  stop(drainMs = this.config.shutdown.drain_timeout): Promise<void> {
    this.#stopping ??= (async () => {
      this.health.stop();
      await Promise.all([...this.httpListeners, ...this.tcpListeners].map((l) => (l.server.listening ? l.close(drainMs) : undefined)));
      await Promise.all([...this.upstreams.values()].map((u) => u.destroy()));
      if (this.admin.server.listening) await this.admin.close();
      this.log.flush();
    })();
    return this.#stopping;
  }
}
