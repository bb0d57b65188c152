/**
 * One upstream server: its connection pool, its load, and its health, kept as one flag per source
 * (Envoy `HealthFlag`): an active-check failure, a passive ejection, draining and an admin disable never
 * overwrite each other, and `available` is derived from all of them.
 */
import { Pool } from 'undici';
import type { BalancedHost, Clock } from '../balancer/types.js';
import { PeakEwma } from '../balancer/peak-ewma.js';
import type { ServerConfig, UpstreamConfig } from '../config/schema.js';

export type HostState = 'healthy' | 'unhealthy' | 'ejected' | 'draining' | 'disabled';

export class Host implements BalancedHost {
  readonly address: string;
  readonly host: string;
  readonly port: number;
  readonly weight: number;
  readonly backup: boolean;
  readonly pool: Pool;
  readonly latency: PeakEwma;
  /** Requests in flight through this server (leased and not yet released). */
  inflight = 0;

  /** Source flags. */
  activeCheckFailed: boolean;
  ejectedUntil = 0;
  draining = false;
  disabled = false;

  /** When the server last became available; slow start ramps its weight from here. */
  availableSince: number;
  readonly #slowStartMs: number;
  readonly #clock: Clock;

  constructor(server: ServerConfig, upstream: UpstreamConfig, clock: Clock) {
    this.host = server.address.host;
    this.port = server.address.port;
    this.address = server.address.host.includes(':') ? `[${this.host}]:${this.port}` : `${this.host}:${this.port}`;
    this.weight = server.weight;
    this.backup = server.backup;
    this.#clock = clock;
    this.#slowStartMs = upstream.slow_start;
    this.activeCheckFailed = upstream.health_check !== undefined && upstream.health_check.initial_state === 'unhealthy';
    this.availableSince = clock();
    this.latency = new PeakEwma({ decayMs: upstream.ewma_decay, clock });
    this.pool = new Pool(`http://${this.address}`, {
      connections: upstream.limits.max_connections,
      pipelining: 1,
      connect: { timeout: upstream.timeouts.connect },
      headersTimeout: upstream.timeouts.request,
      bodyTimeout: upstream.timeouts.idle,
      // Below Node's own 5 s server keep-alive, so an idle connection is retired before the origin closes it.
      keepAliveTimeout: 4000,
    });
    // A Pool is an EventEmitter; connection errors also reach each request's handler, so this only keeps them quiet.
    this.pool.on('connectionError', () => {});
  }

  /** Derived, never stored: takes every source into account. */
  isAvailable(now: number): boolean {
    return !this.disabled && !this.draining && !this.activeCheckFailed && this.ejectedUntil <= now;
  }

  state(now: number): HostState {
    if (this.disabled) return 'disabled';
    if (this.draining) return 'draining';
    if (this.ejectedUntil > now) return 'ejected';
    if (this.activeCheckFailed) return 'unhealthy';
    return 'healthy';
  }

  /** Weight reduced linearly during slow start (HAProxy `slowstart`), never below 1% so the server gets a trickle. */
  get effectiveWeight(): number {
    if (this.#slowStartMs === 0) return this.weight;
    const elapsed = this.#clock() - this.availableSince;
    if (elapsed >= this.#slowStartMs) return this.weight;
    return this.weight * Math.max(0.01, elapsed / this.#slowStartMs);
  }

  close(): Promise<void> {
    return this.pool.close();
  }

  destroy(): Promise<void> {
    return this.pool.destroy();
  }
}
