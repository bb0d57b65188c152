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
import { Host } from './host.js';
import type { Outcome } from './outcome.js';

/** Counts behind a panic decision, for logs. */
export interface PanicChange {
  readonly panic: boolean;
  readonly available: number;
  readonly eligible: number;
}

export class Upstream {
  readonly name: string;
  readonly config: UpstreamConfig;
  readonly hosts: readonly Host[];
  readonly primaries: readonly Host[];
  readonly backups: readonly Host[];
  /** Requests in flight across the whole upstream (circuit breaker `max_requests`). */
  active = 0;
  #primaryPicker: Picker<Host>;
  #backupPicker: Picker<Host>;
  readonly #clock: Clock;
  readonly #observers: ((host: Host, outcome: Outcome) => void)[] = [];
  readonly #panicListeners: ((change: PanicChange) => void)[] = [];
  #panic = false;

  constructor(config: UpstreamConfig, deps: { clock: Clock; random: Random }) {
    this.name = config.name;
    this.config = config;
    this.#clock = deps.clock;
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

  /**
   * The first usable server in the strategy's order, skipping servers already tried by this request
   * (previous-host avoidance); a tried server is used again only when no untried one is usable.
   * Backups are considered only when no untried primary is available; in panic, health is ignored for primaries.
   * Undefined when nothing is available: the caller answers 503 at once.
   */
  pick(key: HashKey | undefined, tried: readonly Host[] | undefined): Host | undefined {
    const now = this.#clock();
    const panic = this.panicking(now);
    return (
      walk(this.#primaryPicker, key, now, panic, tried) ??
      (this.backups.length > 0 ? walk(this.#backupPicker, key, now, false, tried) : undefined) ??
      (tried !== undefined && tried.length > 0 ? this.pick(key, undefined) : undefined)
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

function walk(picker: Picker<Host>, key: HashKey | undefined, now: number, panic: boolean, tried: readonly Host[] | undefined): Host | undefined {
  for (const host of picker.candidates(key, tried !== undefined && tried.length > 0)) {
    if ((panic ? host.acceptsTraffic : host.isAvailable(now)) && (tried === undefined || !tried.includes(host))) return host;
  }
  return undefined;
}
