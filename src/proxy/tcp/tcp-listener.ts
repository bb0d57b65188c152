/**
 * One `protocol: tcp` listener: a node:net server relaying raw TCP (databases, Redis, MQTT, TLS passthrough) to one
 * upstream pool, or with `routes` to the pool the TLS ClientHello's server name picks (sni-routing.ts), a session
 * per connection (tcp-session.ts).
 *
 * Limits: `max_connections` per listener is `server.maxConnections`, so a connection over it is closed by Node at
 * accept, before any work (counted as `listener-limit`); the per-server cap is the upstream's
 * `limits.max_connections`, applied when a server is picked (upstream-dialer.ts).
 * Shutdown: `close(drainMs)` stops accepting, lets open connections finish until the deadline, then destroys the rest.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createTlsTerminator, type TlsTerminator } from '../../tls/terminator.js';
import { isHashing } from '../../balancer/index.js';
import type { Metrics } from '../../admin/metrics.js';
import type { TcpListenerConfig } from '../../config/schema.js';
import type { AccessLog } from '../../access-log.js';
import type { Logger } from '../../log.js';
import type { Upstream } from '../../upstream/upstream.js';
import { DEFAULT_HEADER_TIMEOUT_MS } from './proxy-protocol.js';
import { RetryPolicy } from '../retry-policy.js';
import { retryCounters } from '../retry-counters.js';
import { TcpListenerMetrics } from './tcp-metrics.js';
import { TcpSession, type TcpSessionContext, type TcpTarget } from './tcp-session.js';
import { SniRouter } from './sni-router.js';
import { listenProxy } from '../../util/listen.js';
import { clientAddress } from '../../util/client-address.js';

export interface TcpListenerDeps {
  readonly upstreams: ReadonlyMap<string, Upstream>;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly accessLog: AccessLog | undefined;
}

export class TcpListener {
  readonly name: string;
  config: TcpListenerConfig;
  readonly server: Server;
  #context: TcpSessionContext;
  readonly #sessions = new Set<TcpSession>();
  readonly #log: Logger;
  #idleWaiters: (() => void)[] = [];
  /** The TLS server of a listener that terminates TLS. */
  #tls: TlsTerminator | undefined;
  #untrack: (() => void) | undefined;

  constructor(config: TcpListenerConfig, deps: TcpListenerDeps) {
    this.name = config.name;
    this.config = config;
    this.#log = deps.log;
    this.#context = buildContext(config, deps);

    const tls = config.tls;
    if (tls === undefined) {
      this.server = createServer({ allowHalfOpen: true, noDelay: true });
      this.server.on('connection', this.#onConnection);
    } else {
      // TLS termination (#15): the session relays the decrypted bytes; the upstream sees clear text.
      const terminator = (this.#tls = createTlsTerminator(tls, deps.metrics.edge.tls(config.name), () => 'tcp', (socket) => this.#onConnection(socket), { allowHalfOpen: true }));
      const store = terminator.certificates;
      deps.metrics.edge.trackCertificates(config.name, store);
      this.#untrack = () => deps.metrics.edge.untrackCertificates(config.name, store);
      this.server = terminator.server;
    }
    this.server.maxConnections = config.max_connections;
    this.server.on('drop', this.#onDrop);
    this.server.on('error', (err) => this.#log.error({ listener: this.name, err }, 'listener error'));
  }

  /** Reload: new connections use the new config and pool; open ones finish on the old. The port stays bound. */
  update(config: TcpListenerConfig, deps: TcpListenerDeps): void {
    this.config = config;
    this.#context = buildContext(config, deps);
    this.server.maxConnections = config.max_connections;
    if (config.tls !== undefined) this.#tls?.update(config.tls);
  }

  /** Over `max_connections`: node:net has closed the socket already. It is still a connection, with its line. */
  readonly #onDrop = (data?: { remoteAddress?: string; remotePort?: number }): void => {
    const ctx = this.#context;
    ctx.metrics.refused('listener-limit');
    ctx.accessLog?.write({
      protocol: 'tcp',
      listener: ctx.listener,
      client: clientAddress(data?.remoteAddress),
      clientPort: data?.remotePort,
      upstream: ctx.upstream?.upstream.name,
      attempts: 0,
      bytesIn: 0,
      bytesOut: 0,
      durationMs: 0,
      end: 'listener-limit',
    });
  };

  readonly #onConnection = (socket: Socket): void => {
    const session = new TcpSession(this.#context, socket, this.#onSessionDone);
    this.#sessions.add(session);
    session.start();
  };

  readonly #onSessionDone = (session: TcpSession): void => {
    this.#sessions.delete(session);
    if (this.#sessions.size === 0 && this.#idleWaiters.length > 0) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const w of waiters) w();
    }
  };

  /** Open connections (being set up or relaying). */
  get connections(): number {
    return this.#sessions.size;
  }

  listen(): Promise<AddressInfo> {
    return listenProxy(this.server, this.config.listen.host, this.config.listen.port);
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /**
   * Stop accepting, let open connections finish until `drainMs`, then destroy what is left. Connections are not
   * cut early: a database session or a TLS stream has no way to be told to wrap up, so the deadline is the tool.
   */
  async close(drainMs: number): Promise<void> {
    this.#untrack?.();
    const closed = new Promise<void>((resolve) => {
      if (this.server.listening) this.server.close(() => resolve());
      else resolve();
    });
    if (this.#sessions.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.#idleWaiters.push(resolve)),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, drainMs);
        }),
      ]);
      clearTimeout(timer);
    }
    for (const session of this.#sessions) session.destroy('shutdown');
    await closed;
    // A session cut here ends when both its sockets have closed, a tick or two later: wait (briefly) for its access
    // line, so it is written before the log is flushed for the last time.
    if (this.#sessions.size > 0) {
      await Promise.race([
        new Promise<void>((resolve) => this.#idleWaiters.push(resolve)),
        new Promise<void>((resolve) => setTimeout(resolve, CUT_GRACE_MS).unref()),
      ]);
    }
  }
}

/** How long a stopping listener waits for the sessions it cut at the drain deadline to report their end. */
const CUT_GRACE_MS = 1000;

function buildContext(config: TcpListenerConfig, deps: TcpListenerDeps): TcpSessionContext {
  // One target per upstream named, shared by the routes to it.
  const targets = new Map<string, TcpTarget>();
  const targetOf = (name: string): TcpTarget => {
    let target = targets.get(name);
    if (target === undefined) {
      target = buildTarget(config, name, deps);
      targets.set(name, target);
    }
    return target;
  };
  const upstream = config.upstream === undefined ? undefined : targetOf(config.upstream);
  const routes = config.routes;
  return {
    listener: config.name,
    config,
    upstream,
    sni: routes === undefined ? undefined : {
      router: new SniRouter(routes.map((r) => ({ pattern: r.match.sni, target: targetOf(r.upstream) }))),
      fallback: upstream,
      timeoutMs: config.preread_timeout,
    },
    metrics: new TcpListenerMetrics(deps.metrics, config.name, routes !== undefined),
    log: deps.log,
    accessLog: deps.accessLog,
    proxyHeaderTimeoutMs: DEFAULT_HEADER_TIMEOUT_MS,
  };
}

function buildTarget(config: TcpListenerConfig, name: string, deps: TcpListenerDeps): TcpTarget {
  const upstream = deps.upstreams.get(name);
  if (upstream === undefined) throw new Error(`listener ${config.name}: no upstream named ${name}`);
  const hashing = isHashing(upstream.config.balance);
  if (hashing && upstream.config.hash_key !== 'client-ip') {
    // Only the client address exists at layer 4; other keys read HTTP requests.
    deps.log.warn({ listener: config.name, upstream: upstream.name, hash_key: upstream.config.hash_key }, 'hash_key has no meaning on a tcp listener: connections are hashed on no key');
  }
  return {
    upstream,
    policy: RetryPolicy.connectFailover(config.connect_attempts, { breaker: upstream.breaker, counters: retryCounters(deps.metrics, upstream.name) }),
    hashClientIp: hashing && upstream.config.hash_key === 'client-ip',
  };
}
