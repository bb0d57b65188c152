/**
 * One upstream server: its connection pool, its load, and its health, kept as one flag per source
 * (Envoy `HealthFlag`): an active-check failure, a passive ejection, draining and an admin disable never
 * overwrite each other, and `available` is derived from all of them.
 *
 * Change the flags through the setters below: they stamp `availableSince` when the host becomes available again,
 * which is where slow start ramps from. (Writing a field directly still works, but does not restart slow start.)
 */
import { Pool } from 'undici';
import type { BalancedHost } from '../balancer/types.js';
import type { Clock } from '../util/clock.js';
import { PeakEwma } from '../balancer/peak-ewma.js';
import type { ServerConfig, UpstreamConfig } from '../config/schema.js';
import { Transport } from './transport.js';
import { Http2Pool, type ServerPool } from './http2-pool.js';

/** An idle connection to a server is retired after this: below Node's own 5 s server keep-alive, so Ballast closes it before the origin does. */
const IDLE_CONNECTION_MS = 4000;

/**
 * undici's own timer for the head of a response to a request without a body. The attempt's timer
 * (proxy/http/attempt.ts) is what bounds the wait for it; undici's is a second bound, and must not be the shorter
 * one. It gets the idle timeout when that is at least the request timeout (the defaults: 60 s and 30 s), else none.
 * Equal to the body timer, undici re-arms one timer for the head and the body of each request on a kept-alive
 * connection, where two lengths make it allocate a new timer for each.
 */
export function headTimerMs(timeouts: UpstreamConfig['timeouts']): number {
  return timeouts.idle === 0 || timeouts.idle >= timeouts.request ? timeouts.idle : 0;
}

/** A server's name everywhere (logs, metrics, /status, hashing): "10.0.0.1:8080" or "[::1]:80". */
export function serverName(server: ServerConfig): string {
  const { host, port } = server.address;
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export type HostState = 'healthy' | 'unhealthy' | 'ejected' | 'draining' | 'disabled';

/** Slow start never starves a server completely: at its start it gets a trickle, so it can be observed. */
const SLOW_START_FLOOR = 0.01;

export class Host implements BalancedHost {
  readonly address: string;
  readonly host: string;
  readonly port: number;
  /** Written only through `reconfigure` (a discovered SRV record's weight or priority changed). */
  weight: number;
  backup: boolean;
  /** undici's Pool for `http1`, node:http2 sessions for `http2` (http2-pool.ts says why). */
  readonly pool: ServerPool;
  /** Clear text or TLS, HTTP/1.1 or HTTP/2: shared with the active health checks, so they reach the server as traffic does. */
  readonly transport: Transport;
  /**
   * A connection to this server was just opened and no request has been written on it yet: the next request
   * undici starts goes out on it. Every dispatch handler takes it in its `onConnect` (takeFreshConnection), so
   * forward.ts can tell a keep-alive race from a failing origin.
   */
  #freshConnection = false;
  readonly latency: PeakEwma;
  /** Requests in flight through this server (leased and not yet released). */
  inflight = 0;

  // Source flags, each written by one source only.
  /** Active health checks (health/active-checker.ts). */
  activeCheckFailed: boolean;
  /** Passive outlier detection (health/outlier-detector.ts): ejected while `now < ejectedUntil`. */
  ejectedUntil = 0;
  /** Admin: finish what is in flight, take nothing new. */
  draining = false;
  /** Admin: out of rotation. */
  disabled = false;

  /**
   * When the server last became available through a flag change; slow start ramps its weight from here, or from
   * the end of its last ejection if that is later (an ejection ends with time, not with an event).
   */
  availableSince: number;
  readonly #slowStartMs: number;
  readonly #clock: Clock;
  /** The upstream has active health checks. */
  readonly #checked: boolean;

  constructor(server: ServerConfig, upstream: UpstreamConfig, clock: Clock) {
    this.host = server.address.host;
    this.port = server.address.port;
    this.address = serverName(server);
    this.weight = server.weight;
    this.backup = server.backup;
    this.#clock = clock;
    this.#checked = upstream.health_check !== undefined;
    this.#slowStartMs = upstream.slow_start;
    this.activeCheckFailed = upstream.health_check !== undefined && upstream.health_check.initial_state === 'unhealthy';
    // A new server slow-starts too (HAProxy does not, which is one of the pains design.md lists).
    this.availableSince = clock();
    this.latency = new PeakEwma({ decayMs: upstream.ewma_decay, clock });
    this.transport = new Transport(server.address, upstream);
    this.pool = this.transport.http2 ? this.#http2Pool(upstream) : this.#http1Pool(upstream);
  }

  #http1Pool(upstream: UpstreamConfig): ServerPool {
    const pool = new Pool(this.transport.origin, {
      ...this.transport.clientOptions(),
      connections: upstream.limits.max_connections,
      pipelining: 1,
      // Defaults only: every request sets its own head and body timers (exchange.ts, headTimerMs above).
      headersTimeout: upstream.timeouts.request,
      bodyTimeout: upstream.timeouts.idle,
      keepAliveTimeout: IDLE_CONNECTION_MS,
    });
    // A Pool is an EventEmitter; connection errors also reach each request's handler, so this only keeps them quiet.
    pool.on('connectionError', () => {});
    // undici writes the first request queued for a new connection in the same tick as it reports the connection.
    pool.on('connect', () => {
      this.#freshConnection = true;
    });
    return pool;
  }

  #http2Pool(upstream: UpstreamConfig): ServerPool {
    return new Http2Pool(this.transport, {
      maxSessions: upstream.limits.max_connections,
      connectTimeoutMs: upstream.timeouts.connect,
      idleTimeoutMs: IDLE_CONNECTION_MS,
      connected: () => {
        this.#freshConnection = true;
      },
    });
  }

  /**
   * The same server with a new weight or backup role (DNS discovery: an SRV record changed them). Everything else,
   * its health, ejection, latency estimate and slow-start progress, is the server's and stays.
   */
  reconfigure(server: ServerConfig): void {
    this.weight = server.weight;
    this.backup = server.backup;
  }

  /** Whether the request undici is starting now goes out on a connection opened for it; clears the mark. */
  takeFreshConnection(): boolean {
    const fresh = this.#freshConnection;
    this.#freshConnection = false;
    return fresh;
  }

  /** Derived, never stored: takes every source into account. */
  isAvailable(now: number): boolean {
    return !this.disabled && !this.draining && !this.activeCheckFailed && this.ejectedUntil <= now;
  }

  /** Whether the admin lets this server take new requests, whatever its health (panic mode ignores health only). */
  get acceptsTraffic(): boolean {
    return !this.disabled && !this.draining;
  }

  state(now: number): HostState {
    if (this.disabled) return 'disabled';
    if (this.draining) return 'draining';
    if (this.ejectedUntil > now) return 'ejected';
    if (this.activeCheckFailed) return 'unhealthy';
    return 'healthy';
  }

  setActiveCheckFailed(failed: boolean, now: number): void {
    this.#change(now, () => (this.activeCheckFailed = failed));
  }

  /** Passive ejection until `until`; it ends by itself when the clock passes it. */
  eject(until: number, now: number): void {
    this.#change(now, () => (this.ejectedUntil = until));
  }

  /** End an ejection before its time (a passing active check). */
  endEjection(now: number): void {
    this.#change(now, () => (this.ejectedUntil = 0));
  }

  setDraining(draining: boolean, now: number): void {
    this.#change(now, () => (this.draining = draining));
  }

  setDisabled(disabled: boolean, now: number): void {
    this.#change(now, () => (this.disabled = disabled));
  }

  /** Apply one source's change; if that made the host available, slow start begins now. */
  #change(now: number, apply: () => void): void {
    const was = this.isAvailable(now);
    apply();
    if (!was && this.isAvailable(now)) this.availableSince = now;
  }

  /** Weight reduced linearly during slow start (HAProxy `slowstart`), never below 1% so the server gets a trickle. */
  get effectiveWeight(): number {
    if (this.#slowStartMs === 0) return this.weight;
    const now = this.#clock();
    const ejectionEnded = this.ejectedUntil <= now ? this.ejectedUntil : 0;
    const elapsed = now - Math.max(this.availableSince, ejectionEnded);
    if (elapsed >= this.#slowStartMs) return this.weight;
    return this.weight * Math.max(SLOW_START_FLOOR, elapsed / this.#slowStartMs);
  }

  /**
   * Take over the health of the same server from the config this one replaces, so a reload never forgets that a
   * server is down, ejected, draining or disabled (HAProxy loses it without a state file), nor restarts slow start,
   * nor forgets how fast it answers (its peak-EWMA latency estimate, issue #16).
   */
  inheritState(previous: Host): void {
    this.draining = previous.draining;
    this.disabled = previous.disabled;
    this.availableSince = previous.availableSince;
    // Reached another way now (TLS or protocol changed): a changed server, whose health is learnt afresh; what the
    // admin said of it stands.
    if (previous.transport.identity !== this.transport.identity) return;
    // Without a health check in the new config nothing could ever clear a failed-check flag.
    this.activeCheckFailed = this.#checked && previous.activeCheckFailed;
    this.ejectedUntil = previous.ejectedUntil;
    this.latency.continueFrom(previous.latency);
  }

  close(): Promise<void> {
    return this.pool.close();
  }

  destroy(): Promise<void> {
    return this.pool.destroy();
  }
}
