/**
 * An upstream pool: its servers, the picker built over them, and the walk that turns the picker's preference order
 * into one usable server. Primaries and backups get separate pickers: backups are walked only when no untried
 * primary is available (HAProxy `backup`).
 *
 * Membership is the configured `servers` plus what discovery found (`setMembers`, src/discovery/): a server that
 * stays is the same Host object, with all its state; the pickers are rebuilt and swapped in with one assignment.
 *
 * Panic mode (panic.ts): when the share of available primaries falls below `panic_threshold`, the walk
 * accepts every primary the admin lets take traffic, health ignored, rather than overload the few that are left.
 */
import type { HashKey, Picker, StrategyOptions } from '../balancer/types.js';
import { StickyTable } from '../balancer/sticky.js';
import type { Clock, Random } from '../util/clock.js';
import { strategyFor } from '../balancer/index.js';
import type { ServerConfig, UpstreamConfig } from '../config/schema.js';
import { inPanic } from './panic.js';
import { CircuitBreaker } from './circuit-breaker.js';
import { Host, serverName } from './host.js';
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

/** What one `setMembers` changed. */
export interface MembershipChange {
  readonly added: readonly Host[];
  readonly removed: readonly Host[];
}

/** How long a removed server may finish its requests in flight before its connections are cut. */
const DEFAULT_DRAIN_MS = 15_000;

/** Counts behind a panic decision, for logs. */
export interface PanicChange {
  readonly panic: boolean;
  readonly available: number;
  readonly eligible: number;
}

export class Upstream implements LeaseSink {
  readonly name: string;
  readonly config: UpstreamConfig;
  /** One per upstream, shared by every listener and route that sends to it. */
  readonly breaker: CircuitBreaker;
  #hosts: readonly Host[] = [];
  #primaries: readonly Host[] = [];
  #backups: readonly Host[] = [];
  /** The servers discovery found, as last set (`setMembers`). */
  #discovered: readonly ServerConfig[] = [];
  #primaryPicker!: Picker<Host>;
  #backupPicker!: Picker<Host>;
  #sticky: StickyTable<Host> | undefined;
  readonly #deps: UpstreamDeps;
  readonly #options: StrategyOptions;
  readonly #clock: Clock;
  readonly #membershipListeners: ((change: MembershipChange) => void)[] = [];
  /** Removed servers still finishing their requests in flight. */
  readonly #leaving = new Set<Host>();
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
    this.#deps = deps;
    this.#options = {
      ...(config.virtual_nodes !== undefined && { virtualNodes: config.virtual_nodes }),
      ...(config.maglev_table_size !== undefined && { tableSize: config.maglev_table_size }),
      ...(config.hash_balance_factor !== undefined && { balanceFactor: config.hash_balance_factor }),
      decayMs: config.ewma_decay,
    };
    this.#install(config.servers.map((s) => new Host(s, config, deps.clock)));
  }

  /** Every server: the configured ones in their order, then the discovered ones by address. */
  get hosts(): readonly Host[] {
    return this.#hosts;
  }

  get primaries(): readonly Host[] {
    return this.#primaries;
  }

  get backups(): readonly Host[] {
    return this.#backups;
  }

  /** The servers discovery found, as last set; empty without discovery. */
  get discovered(): readonly ServerConfig[] {
    return this.#discovered;
  }

  /** The sticky-session table over the servers now (rebuilt lazily after a membership change). */
  get stickyTable(): StickyTable<Host> {
    return (this.#sticky ??= new StickyTable(this.#hosts));
  }

  /**
   * Make the discovered servers `discovered` (the configured ones always stay). A server already here keeps its
   * Host, and with it its health, ejection, latency estimate and slow-start progress; a new one starts as a new
   * server does (`initial_state`, slow start); one that is gone takes no new request, finishes those in flight
   * (up to `drainMs`) and has its pool closed. A discovered address that is also configured is the configured one.
   * Returns what changed, or undefined when nothing did. Throws, changing nothing, when the strategy cannot be
   * built over the new set (more servers than `maglev_table_size`).
   */
  setMembers(discovered: readonly ServerConfig[], drainMs = DEFAULT_DRAIN_MS): MembershipChange | undefined {
    const configured = new Set(this.config.servers.map((s) => serverName(s)));
    const wanted = new Map<string, ServerConfig>();
    for (const s of discovered) {
      const address = serverName(s);
      if (!configured.has(address) && !wanted.has(address)) wanted.set(address, s);
    }
    const current = new Map(this.#hosts.map((h) => [h.address, h]));
    const added: Host[] = [];
    const reconfigured: [Host, ServerConfig][] = [];
    const next = this.#hosts.filter((h) => configured.has(h.address));
    for (const address of [...wanted.keys()].sort()) {
      const s = wanted.get(address)!;
      const host = current.get(address);
      if (host === undefined) {
        const fresh = new Host(s, this.config, this.#deps.clock);
        added.push(fresh);
        next.push(fresh);
      } else {
        if (host.weight !== s.weight || host.backup !== s.backup) reconfigured.push([host, s]);
        next.push(host);
      }
    }
    const removed = this.#hosts.filter((h) => !configured.has(h.address) && !wanted.has(h.address));
    this.#discovered = [...wanted.values()];
    if (added.length === 0 && removed.length === 0 && reconfigured.length === 0) return undefined;
    const weights = reconfigured.map(([h]) => ({ weight: h.weight, backup: h.backup }));
    for (const [host, s] of reconfigured) host.reconfigure(s);
    try {
      this.#install(next);
    } catch (err) {
      reconfigured.forEach(([host], i) => host.reconfigure({ ...weights[i]!, address: { host: host.host, port: host.port } }));
      void Promise.all(added.map((h) => h.destroy()));
      throw err;
    }
    for (const host of removed) this.#retire(host, drainMs);
    const change = { added, removed };
    for (const listener of this.#membershipListeners) listener(change);
    return change;
  }

  /** Hear of every membership change (`setMembers`), after the new servers are in place. */
  onMembershipChange(listener: (change: MembershipChange) => void): void {
    this.#membershipListeners.push(listener);
  }

  /** Build the pickers over `hosts` first (which may throw), then swap everything in. */
  #install(hosts: readonly Host[]): void {
    const primaries = hosts.filter((h) => !h.backup);
    const backups = hosts.filter((h) => h.backup);
    const strategy = strategyFor(this.config.balance);
    const primaryPicker = strategy.build(primaries, this.#deps, this.#options);
    const backupPicker = strategy.build(backups, this.#deps, this.#options);
    this.#hosts = hosts;
    this.#primaries = primaries;
    this.#backups = backups;
    this.#primaryPicker = primaryPicker;
    this.#backupPicker = backupPicker;
    this.#sticky = undefined;
  }

  /** A removed server: no new request (draining), its pool closed once idle or at the deadline. */
  #retire(host: Host, drainMs: number): void {
    host.setDraining(true, this.#clock());
    this.#attemptCells.delete(host);
    this.#leaving.add(host);
    void drainHost(host, drainMs).finally(() => this.#leaving.delete(host));
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
    await Promise.all([...this.#hosts, ...this.#leaving].map((h) => h.close()));
  }

  async destroy(): Promise<void> {
    await Promise.all([...this.#hosts, ...this.#leaving].map((h) => h.destroy()));
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

/** Close a removed server's pool once nothing is in flight on it, or cut it at the deadline. */
async function drainHost(host: Host, deadlineMs: number): Promise<void> {
  const until = performance.now() + deadlineMs;
  while (host.inflight > 0 && performance.now() < until) await new Promise((resolve) => setTimeout(resolve, 50).unref());
  await (host.inflight > 0 ? host.destroy() : host.close()).catch(() => {});
}
