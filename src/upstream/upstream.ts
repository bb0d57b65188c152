/**
 * An upstream pool: its servers, the picker built over them, and the walk that turns the picker's preference order
 * into one available server. Primaries and backups get separate pickers: backups are walked only when no primary
 * is available (HAProxy `backup`).
 */
import type { Clock, HashKey, Picker, Random } from '../balancer/types.js';
import { strategyFor } from '../balancer/index.js';
import type { UpstreamConfig } from '../config/schema.js';
import { Host } from './host.js';
import type { Outcome } from './outcome.js';

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
   * The first available server in the strategy's order, skipping servers already tried by this request
   * (previous-host avoidance); a tried server is used again only when no untried one is available.
   * Backups are considered only when no primary is available.
   */
  pick(key: HashKey | undefined, tried: readonly Host[] | undefined): Host | undefined {
    const now = this.#clock();
    return (
      walk(this.#primaryPicker, key, now, tried) ??
      (this.backups.length > 0 ? walk(this.#backupPicker, key, now, tried) : undefined) ??
      (tried !== undefined && tried.length > 0 ? this.pick(key, undefined) : undefined)
    );
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

function walk(picker: Picker<Host>, key: HashKey | undefined, now: number, tried: readonly Host[] | undefined): Host | undefined {
  for (const host of picker.candidates(key)) {
    if (host.isAvailable(now) && (tried === undefined || !tried.includes(host))) return host;
  }
  return undefined;
}
