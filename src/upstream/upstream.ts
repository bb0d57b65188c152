/**
 * An upstream pool: its servers, the picker built over them, and the walk that turns the picker's preference order
 * into one usable server. Primaries and backups get separate pickers: backups are walked only when no untried
 * primary is available (HAProxy `backup`).
 *
 * Panic mode (panic.ts): when the share of available primaries falls below `panic_threshold`, the walk
 * accepts every primary the admin lets take traffic, health ignored, rather than overload the few that are left.
 */
import type { HashKey, Picker } from '../balancer/types.js';
import type { Clock, Random } from '../util/clock.js';
import { strategyFor } from '../balancer/index.js';
import type { UpstreamConfig } from '../config/schema.js';
import { inPanic } from './panic.js';
import { CircuitBreaker } from './circuit-breaker.js';
import { Host } from './host.js';
import { Lease, type LeaseSink } from './lease.js';
import type { Outcome } from './outcome.js';

/** Where attempts are counted (`ballast_upstream_attempts_total`); admin/metrics.ts `Metrics` is one. */
export interface AttemptCells {
  attemptCell(upstream: string, server: string, outcome: string): { pending: number };
}

export interface UpstreamDeps {
  readonly clock: Clock;
  readonly random: Random;
  /** Default: attempts are not counted (tests that build an Upstream alone). */
  readonly metrics?: AttemptCells;
}

export interface LeaseOptions {
  /** The server to try first when it is available (a sticky session's). */
  readonly preferred?: Host | undefined;
  /** Skip servers with this many leases already (TCP `limits.max_connections`). */
  readonly maxInflight?: number;
  /** Count the attempt in the breaker's `pending` until `Lease.connected` (HTTP: the undici queue). */
  readonly pending?: boolean;
}

const UNCOUNTED: AttemptCells = { attemptCell: () => ({ pending: 0 }) };

/** Counts behind a panic decision, for logs. */
export interface PanicChange {
  readonly panic: boolean;
  readonly available: number;
  readonly eligible: number;
}

export class Upstream implements LeaseSink {
  readonly name: string;
  readonly config: UpstreamConfig;
  readonly hosts: readonly Host[];
  readonly primaries: readonly Host[];
  readonly backups: readonly Host[];
  /** One per upstream, shared by every listener and route that sends to it. */
  readonly breaker: CircuitBreaker;
  #primaryPicker: Picker<Host>;
  #backupPicker: Picker<Host>;
  readonly #clock: Clock;
  readonly #observers: ((host: Host, outcome: Outcome) => void)[] = [];
  readonly #panicListeners: ((change: PanicChange) => void)[] = [];
  #panic = false;
  readonly #metrics: AttemptCells;
  /** Per server: outcome label → its attempts cell, so a finished attempt costs a Map lookup and `++`. */
  readonly #attemptCells = new Map<Host, Map<string, { pending: number }>>();

  constructor(config: UpstreamConfig, deps: UpstreamDeps) {
    this.name = config.name;
    this.config = config;
    this.#clock = deps.clock;
    this.#metrics = deps.metrics ?? UNCOUNTED;
    this.breaker = new CircuitBreaker(config.limits);
    this.hosts = config.servers.map((s) => new Host(s, config, deps.clock));
    this.primaries = this.hosts.filter((h) => !h.backup);
    this.backups = this.hosts.filter((h) => h.backup);
    const strategy = strategyFor(config.balance);
    const options = {
      ...(config.virtual_nodes !== undefined && { virtualNodes: config.virtual_nodes }),
      ...(config.maglev_table_size !== undefined && { tableSize: config.maglev_table_size }),
      ...(config.hash_balance_factor !== undefined && { balanceFactor: config.hash_balance_factor }),
      decayMs: config.ewma_decay,
    };
    this.#primaryPicker = strategy.build(this.primaries, deps, options);
    this.#backupPicker = strategy.build(this.backups, deps, options);
  }

  /** Requests in flight across the whole upstream (the breaker's `max_requests` count). */
  get active(): number {
    return this.breaker.active;
  }

  /**
   * Lease the first usable server (see `pick`) for one attempt; undefined when none is. `tried`: the servers this
   * request or connection has tried already, in order; a lease after the first counts as a retry.
   */
  lease(key: HashKey | undefined, tried: readonly Host[], options: LeaseOptions = {}): Lease | undefined {
    const preferred = tried.length === 0 ? options.preferred : undefined;
    const host = preferred ?? this.pick(key, tried, options.maxInflight);
    return host === undefined ? undefined : new Lease(this, host, tried.length > 0, options.pending ?? false);
  }

  countAttempt(host: Host, label: string): void {
    let cells = this.#attemptCells.get(host);
    if (cells === undefined) this.#attemptCells.set(host, (cells = new Map()));
    let cell = cells.get(label);
    if (cell === undefined) cells.set(label, (cell = this.#metrics.attemptCell(this.name, host.address, label)));
    cell.pending++;
  }

  /**
   * The first usable server in the strategy's order, skipping servers already tried by this request
   * (previous-host avoidance); a tried server is used again only when no untried one is usable.
   * Backups are considered only when no untried primary is available; in panic, health is ignored for primaries.
   * A server with `maxInflight` leases is never picked. Undefined when nothing is available: the caller answers 503
   * at once.
   */
  pick(key: HashKey | undefined, tried: readonly Host[] | undefined, maxInflight = Infinity): Host | undefined {
    const now = this.#clock();
    const panic = this.panicking(now);
    return (
      walk(this.#primaryPicker, key, now, panic, tried, maxInflight) ??
      (this.backups.length > 0 ? walk(this.#backupPicker, key, now, false, tried, maxInflight) : undefined) ??
      (tried !== undefined && tried.length > 0 ? this.pick(key, undefined, maxInflight) : undefined)
    );
  }

  /**
   * Whether the primaries are in panic now. Reports a change to the panic listeners, from whichever caller
   * (a pick, a metrics scrape, a health check) first sees it: O(primaries), no allocation.
   */
  panicking(now: number): boolean {
    const threshold = this.config.panic_threshold;
    let available = 0;
    let eligible = 0;
    if (threshold > 0) {
      for (const h of this.primaries) {
        if (!h.acceptsTraffic) continue;
        eligible++;
        if (h.isAvailable(now)) available++;
      }
    }
    // Healthy backups are the better place for the traffic than dead primaries: no panic while one is available.
    const panic = inPanic(available, eligible, threshold) && !this.backups.some((b) => b.isAvailable(now));
    if (panic !== this.#panic) {
      this.#panic = panic;
      for (const listener of this.#panicListeners) listener({ panic, available, eligible });
    }
    return panic;
  }

  onPanicChange(listener: (change: PanicChange) => void): void {
    this.#panicListeners.push(listener);
  }

  /**
   * The one sink for attempt outcomes (Envoy `putResult`). Passive health (outlier detection) subscribes here.
   */
  observe(host: Host, outcome: Outcome): void {
    for (const observer of this.#observers) observer(host, outcome);
  }

  onOutcome(observer: (host: Host, outcome: Outcome) => void): void {
    this.#observers.push(observer);
  }

  /** The server listed as `address` ("10.0.0.1:8080", "[::1]:80"), if any. */
  host(address: string): Host | undefined {
    return this.hosts.find((h) => h.address === address);
  }

  now(): number {
    return this.#clock();
  }

  async close(): Promise<void> {
    await Promise.all(this.hosts.map((h) => h.close()));
  }

  async destroy(): Promise<void> {
    await Promise.all(this.hosts.map((h) => h.destroy()));
  }
}

function walk(
  picker: Picker<Host>,
  key: HashKey | undefined,
  now: number,
  panic: boolean,
  tried: readonly Host[] | undefined,
  maxInflight: number,
): Host | undefined {
  for (const host of picker.candidates(key, tried !== undefined && tried.length > 0)) {
    if (host.inflight >= maxInflight) continue;
    if ((panic ? host.acceptsTraffic : host.isAvailable(now)) && (tried === undefined || !tried.includes(host))) return host;
  }
  return undefined;
}
