/**
 * A running Ballast: upstream pools, their health, listeners and the admin endpoint built from one validated config.
 * By default one process runs all of it. In cluster mode (src/cluster/) the primary and each worker run a Ballast
 * too, told apart by two options only: which listeners it binds (`bind`), and where its health comes from and goes
 * (`health`, a HealthFeed: the primary probes and publishes, a worker applies what the primary sends).
 */
import type { AddressInfo } from 'node:net';
import type { Clock, Random } from './util/clock.js';
import type { Config, ListenerConfig, ServerConfig } from './config/schema.js';
import { Discovery, sameLookup } from './discovery/discovery.js';
import { Metrics } from './admin/metrics.js';
import { AdminServer } from './admin/server.js';
import { serverActions } from './admin/server-actions.js';
import { RELOAD_PATH, reloadAction } from './admin/reload-action.js';
import { LocalHealthFeed, type HealthFeed } from './health/health-feed.js';
import { HealthService } from './health/health-service.js';
import { AccessLog } from './access-log.js';
import { createLogger, type Logger } from './log.js';
import { sameShape } from './proxy/http/acceptor.js';
import { ConfigReloader } from './reload/config-reloader.js';
import { HttpListener } from './proxy/http/listener.js';
import { TcpListener } from './proxy/tcp/tcp-listener.js';
import { Upstream } from './upstream/upstream.js';

export interface BallastOptions {
  readonly log?: Logger;
  readonly clock?: Clock;
  readonly random?: Random;
  /** Export Node process metrics (off in tests that start many instances). */
  readonly processMetrics?: boolean;
  /**
   * The listeners to bind: `all` (the default), `proxy` only (a cluster worker: the primary serves admin), or `none`
   * (the cluster primary: its workers serve traffic, and it serves an admin endpoint of its own over all of them).
   */
  readonly bind?: 'all' | 'proxy' | 'none';
  /** Where health comes from and where the changes decided here go; default: a LocalHealthFeed nobody listens to. */
  readonly health?: HealthFeed;
  /**
   * The file the config was read from (the CLI's `--config`): `reloader` re-reads it, for SIGHUP, `--watch` and the
   * admin's `POST /reload`. Without it, `POST /reload` answers 409 and only `reload(config)` reloads.
   */
  readonly configFile?: string;
  /**
   * Where discovered servers (`discovery.dns`) come from: looked up here (the default), each new set told to
   * `publish` (the cluster primary relays it); or `follow`: another process looks them up and this one is handed
   * its sets (a cluster worker: the map holds the primary's latest set per upstream, and the caller applies each new
   * one with `setMembers`).
   */
  readonly discovery?: { readonly publish?: (upstream: string, servers: readonly ServerConfig[]) => void } | { readonly follow: ReadonlyMap<string, readonly ServerConfig[]> };
}

export class Ballast {
  /** The config in force; replaced whole by a successful reload. */
  config: Config;
  readonly log: Logger;
  readonly metrics: Metrics;
  upstreams: ReadonlyMap<string, Upstream>;
  health: HealthService;
  httpListeners: readonly HttpListener[];
  tcpListeners: readonly TcpListener[];
  /** Undefined unless started with `bind: 'all'`. */
  readonly admin: AdminServer | undefined;
  /** Re-reads `configFile` and reloads from it; undefined without one. */
  readonly reloader: ConfigReloader | undefined;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #feed: HealthFeed;
  readonly #bindProxy: boolean;
  readonly #discoveryOptions: NonNullable<BallastOptions['discovery']>;
  /** The lookups of the config in force; undefined when this process follows another's (`discovery.follow`). */
  #discovery: Discovery | undefined;
  #ready = false;
  #stopping: Promise<void> | undefined;
  #reloading: Promise<void> = Promise.resolve();
  /** Listeners and upstreams a reload replaced, still finishing what they carry. */
  readonly #retiring = new Set<HttpListener | TcpListener>();
  readonly #retiringUpstreams = new Set<Upstream>();
  /** Shared by every listener (and kept across reloads), so all their lines go out in the same batches. */
  readonly #accessLog: AccessLog | undefined;

  private constructor(config: Config, options: BallastOptions) {
    this.config = config;
    this.log = options.log ?? createLogger(config.logging.level);
    this.#accessLog = AccessLog.of(this.log);
    if (this.#accessLog !== undefined) process.on('exit', this.#flushAccessLogOnExit);
    const clock = options.clock ?? (() => performance.now());
    const random = options.random ?? Math.random;
    this.#clock = clock;
    this.#random = random;
    this.#feed = options.health ?? new LocalHealthFeed();
    const bind = options.bind ?? 'all';
    this.#bindProxy = bind !== 'none';
    this.metrics = new Metrics({ processMetrics: options.processMetrics ?? true });
    this.reloader = options.configFile === undefined ? undefined : new ConfigReloader({
      file: options.configFile,
      current: () => this.config,
      apply: (next) => this.reload(next),
      metrics: this.metrics,
      log: this.log,
    });
    this.#discoveryOptions = options.discovery ?? {};
    const upstreams = new Map<string, Upstream>();
    for (const u of config.upstreams) {
      const upstream = new Upstream(u, { clock, random, metrics: this.metrics });
      this.#seedMembers(upstream, undefined);
      upstreams.set(u.name, upstream);
    }
    this.upstreams = upstreams;
    this.metrics.track([...upstreams.values()]);
    this.health = this.#healthService(upstreams);
    this.#discovery = this.#discover(upstreams, config);
    const deps = { upstreams, metrics: this.metrics, log: this.log, accessLog: this.#accessLogFor(config), random };
    const listeners = this.#bindProxy ? config.listeners : [];
    this.httpListeners = listeners.flatMap((l) => (l.protocol === 'http' ? [new HttpListener(l, deps)] : []));
    this.tcpListeners = listeners.flatMap((l) => (l.protocol === 'tcp' ? [new TcpListener(l, deps)] : []));
    this.admin = bind !== 'all' ? undefined : new AdminServer({
      metrics: this.metrics,
      log: this.log,
      upstreams: () => this.upstreams.values(),
      listeners: () => [...this.httpListeners, ...this.tcpListeners],
      ready: () => this.#ready && this.#stopping === undefined,
      token: config.admin.token,
      allowedHosts: () => this.config.admin.allowed_hosts,
      actions: new Map<string, (params: URLSearchParams) => unknown>([
        ...serverActions(() => this.upstreams.values(), this.log, (event) => this.#feed.publish(event)),
        [RELOAD_PATH, reloadAction(this.reloader)],
      ]),
    });
  }

  readonly #flushAccessLogOnExit = (): void => this.#accessLog?.flushSync();

  /** Access lines are `info` lines: a `level` above info turns them off, as it would through pino. */
  #accessLogFor(config: Config): AccessLog | undefined {
    const levels = this.log.levels.values;
    const on = config.logging.access_log && (levels[config.logging.level] ?? 0) <= (levels.info ?? 30);
    return on ? this.#accessLog : undefined;
  }

  /**
   * A new upstream's discovered servers before its first lookup: what the process this one follows found, or, on a
   * reload, what the upstream it replaces found if it looks up the same name.
   */
  #seedMembers(upstream: Upstream, previous: Upstream | undefined): void {
    if (upstream.config.discovery === undefined) return;
    const options = this.#discoveryOptions;
    if ('follow' in options) upstream.setMembers(options.follow.get(upstream.name) ?? []);
    else if (previous !== undefined && sameLookup(previous.config, upstream.config)) upstream.setMembers(previous.discovered);
  }

  /** The lookups over `upstreams`, not started; none when this process follows another's. */
  #discover(upstreams: ReadonlyMap<string, Upstream>, config: Config): Discovery | undefined {
    const options = this.#discoveryOptions;
    if ('follow' in options) return undefined;
    return new Discovery(upstreams.values(), {
      log: this.log,
      metrics: this.metrics,
      drainMs: config.shutdown.drain_timeout,
      changed: (upstream, servers) => {
        if (this.upstreams.get(upstream.name) === upstream) this.metrics.track([...this.upstreams.values()]);
        options.publish?.(upstream.name, servers);
      },
    });
  }

  /**
   * Replace the discovered servers of upstream `name` (a cluster worker: the set its primary found). Servers that
   * stay keep all their state; see Upstream.setMembers. Unknown upstreams, or ones without discovery, are ignored.
   */
  setMembers(name: string, servers: readonly ServerConfig[]): void {
    const upstream = this.upstreams.get(name);
    if (upstream?.config.discovery === undefined) return;
    try {
      if (upstream.setMembers(servers, this.config.shutdown.drain_timeout) !== undefined) this.metrics.track([...this.upstreams.values()]);
    } catch (err) {
      this.log.error({ upstream: name, err }, 'discovered servers could not be applied');
    }
  }

  /** Every discovering upstream's discovered servers now (for a process that follows this one). */
  members(): Record<string, readonly ServerConfig[]> {
    const out: Record<string, readonly ServerConfig[]> = {};
    for (const u of this.upstreams.values()) if (u.config.discovery !== undefined) out[u.name] = u.discovered;
    return out;
  }

  /** `previous`: the service a reload replaces, whose outlier-detection state the new one takes over first. */
  #healthService(upstreams: ReadonlyMap<string, Upstream>, previous?: HealthService): HealthService {
    const health = new HealthService([...upstreams.values()], {
      clock: this.#clock,
      random: this.#random,
      log: this.log,
      metrics: this.metrics,
      feed: this.#feed,
    });
    if (previous !== undefined) health.inheritFrom(previous);
    return health;
  }

  /**
   * Build everything, bind the admin listener, probe every server once (bounded by the probe timeout, so the first
   * requests are routed on a real picture of health, as Envoy warms a cluster), then bind every proxy listener.
   */
  static async start(config: Config, options: BallastOptions = {}): Promise<Ballast> {
    const ballast = new Ballast(config, options);
    try {
      await ballast.admin?.listen(config.admin.listen.host, config.admin.listen.port);
      // The first answers come before the first probes, so those cover the discovered servers too.
      await ballast.#discovery?.start();
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

  /**
   * Apply a new, already validated config without dropping a connection: listeners that keep their name, protocol
   * and address keep their socket and switch to the new routes; others are opened or drained and closed. Servers
   * that stay (same upstream, same address) keep their state — down, ejected, draining or disabled, their slow
   * start, their active-check rise/fall streak, their latency estimate and their outlier-detection history (the
   * ejection count that sets how long the next ejection lasts) — so a reload never sends traffic to a server known
   * to be down, nor restarts what was learnt about it (issue #16). Requests in flight finish on the old pools, which are
   * closed once idle. Reloads run one at a time.
   */
  reload(next: Config): Promise<void> {
    const run = this.#reloading.then(() => this.#reload(next));
    this.#reloading = run.catch(() => {});
    return run;
  }

  async #reload(next: Config): Promise<void> {
    if (this.#stopping !== undefined) throw new Error('Ballast is stopping');
    const previous = this.upstreams;
    const upstreams = new Map<string, Upstream>();
    for (const u of next.upstreams) {
      const upstream = new Upstream(u, { clock: this.#clock, random: this.#random, metrics: this.metrics });
      const old = previous.get(u.name);
      this.#seedMembers(upstream, old);
      if (old !== undefined) {
        for (const host of upstream.hosts) {
          const before = old.host(host.address);
          if (before !== undefined) host.inheritState(before);
        }
      }
      upstreams.set(u.name, upstream);
    }
    const health = this.#healthService(upstreams, this.health);
    const discovery = this.#discover(upstreams, next);
    await discovery?.start();
    await health.start();
    if (this.#stopping !== undefined) {
      // stop() arrived while the new servers were probed: bind nothing.
      discovery?.stop();
      health.stop();
      await Promise.all([...upstreams.values()].map((u) => u.destroy()));
      throw new Error('Ballast is stopping');
    }

    const deps = { upstreams, metrics: this.metrics, log: this.log, accessLog: this.#accessLogFor(next), random: this.#random };
    // An HTTP listener whose TLS or HTTP/2 shape changes accepts on another kind of socket: it is replaced.
    const sameSocket = (a: ListenerConfig, b: ListenerConfig) =>
      a.name === b.name && a.protocol === b.protocol && a.listen.host === b.listen.host && a.listen.port === b.listen.port &&
      (a.protocol === 'http' && b.protocol === 'http' ? sameShape(a, b) : (a.tls === undefined) === (b.tls === undefined) &&
        (a.tls?.client_ca === undefined) === (b.tls?.client_ca === undefined));
    const current = [...this.httpListeners, ...this.tcpListeners];
    const kept = new Map<HttpListener | TcpListener, ListenerConfig>();
    for (const l of current) {
      const config = next.listeners.find((n) => sameSocket(n, l.config));
      if (config !== undefined) kept.set(l, config);
    }
    const retired = current.filter((l) => !kept.has(l));
    const fresh = this.#bindProxy ? next.listeners.filter((n) => ![...kept.values()].includes(n)) : [];
    const addressOf = (c: ListenerConfig) => `${c.listen.host}:${c.listen.port}`;
    const retiredAddresses = new Set(retired.map((l) => addressOf(l.config)));
    const create = (c: ListenerConfig) => (c.protocol === 'http' ? new HttpListener(c, deps) : new TcpListener(c, deps));
    const opened: (HttpListener | TcpListener)[] = [];
    const open = async (c: ListenerConfig) => {
      const listener = create(c);
      const addr = await listener.listen();
      opened.push(listener);
      this.log.info({ listener: c.name, protocol: c.protocol, address: `${addr.address}:${addr.port}` }, 'listening');
    };
    // New addresses first: if one cannot be bound, nothing has changed yet and the reload is refused whole.
    try {
      for (const c of fresh) if (!retiredAddresses.has(addressOf(c))) await open(c);
    } catch (err) {
      discovery?.stop();
      health.stop();
      await Promise.all(opened.map((l) => l.close(0)));
      await Promise.all([...upstreams.values()].map((u) => u.destroy()));
      throw err;
    }
    // close() stops listening at once, so a listener that moves frees its port before it is bound again; open
    // connections of retired listeners drain in the background.
    for (const l of retired) {
      this.#retiring.add(l);
      void l.close(next.shutdown.drain_timeout).catch(() => {}).finally(() => this.#retiring.delete(l));
    }
    for (const c of fresh) {
      if (!retiredAddresses.has(addressOf(c))) continue;
      await open(c).catch((err: unknown) => this.log.error({ listener: c.name, err }, 'reload: listener could not be bound'));
    }
    for (const [l, c] of kept) {
      if (l instanceof HttpListener && c.protocol === 'http') l.update(c, deps);
      else if (l instanceof TcpListener && c.protocol === 'tcp') l.update(c, deps);
    }
    const all = [...kept.keys(), ...opened];
    const order = (l: HttpListener | TcpListener) => next.listeners.findIndex((c) => c.name === l.name);
    all.sort((a, b) => order(a) - order(b));

    const oldHealth = this.health;
    this.#discovery?.stop();
    this.#discovery = discovery;
    this.upstreams = upstreams;
    this.health = health;
    this.httpListeners = all.filter((l): l is HttpListener => l instanceof HttpListener);
    this.tcpListeners = all.filter((l): l is TcpListener => l instanceof TcpListener);
    this.metrics.track([...upstreams.values()]);
    this.log.level = next.logging.level;
    if (this.admin !== undefined && adminChanged(this.config, next)) {
      this.log.warn({}, 'admin settings changed: they take effect at the next restart');
    }
    this.config = next;
    oldHealth.stop();
    health.takeOverEjections();
    // Requests still running on the old pools (a retry waiting out its backoff included) finish there: the
    // pools close once nothing is in flight on them, or at the drain deadline.
    for (const u of previous.values()) {
      this.#retiringUpstreams.add(u);
      void retire(u, next.shutdown.drain_timeout).finally(() => this.#retiringUpstreams.delete(u));
    }
  }

  /** The bound port of a listener (useful when the config says port 0). */
  port(listener: string): number {
    const l = this.httpListeners.find((h) => h.name === listener) ?? this.tcpListeners.find((t) => t.name === listener);
    if (!l) throw new Error(`no listener named ${listener}`);
    return l.port;
  }

  get adminAddress(): AddressInfo {
    if (this.admin === undefined) throw new Error('this instance runs no admin listener');
    return this.admin.server.address() as AddressInfo;
  }

  /** Stop accepting, finish in-flight requests until `drainMs`, then release every socket. Idempotent. */
  stop(drainMs = this.config.shutdown.drain_timeout): Promise<void> {
    this.#stopping ??= (async () => {
      // A reload in progress finishes (or gives up) first, so no listener it binds outlives the stop.
      await this.#reloading;
      this.#discovery?.stop();
      this.health.stop();
      // Listeners and pools a reload retired are still draining on their own deadline: they end with this one.
      const listeners = [...this.httpListeners, ...this.tcpListeners, ...this.#retiring];
      await Promise.all(listeners.map((l) => l.close(drainMs).catch(() => {})));
      await Promise.all([...this.upstreams.values(), ...this.#retiringUpstreams].map((u) => u.destroy()));
      if (this.admin?.server.listening) await this.admin.close();
      this.#accessLog?.flush();
      process.off('exit', this.#flushAccessLogOnExit);
      this.log.flush();
    })();
    return this.#stopping;
  }
}

/** Whether the admin listener's settings differ (they apply at the next restart only). */
export function adminChanged(a: Config, b: Config): boolean {
  return a.admin.listen.host !== b.admin.listen.host || a.admin.listen.port !== b.admin.listen.port || a.admin.token !== b.admin.token;
}

/** Close an upstream's pools once no request is in flight on it, or at the deadline at the latest. */
async function retire(upstream: Upstream, deadlineMs: number): Promise<void> {
  const until = performance.now() + deadlineMs;
  while (upstream.active > 0 && performance.now() < until) await new Promise((resolve) => setTimeout(resolve, 100).unref());
  await (upstream.active > 0 ? upstream.destroy() : upstream.close()).catch(() => {});
}
