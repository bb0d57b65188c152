/**
 * `discovery.dns` for one upstream: look the name up, hand the servers found to the upstream, and look again after
 * `interval`, or sooner when a record's TTL says so (never sooner than TTL_FLOOR_MS for a TTL: a TTL of 0 must not
 * turn into a query loop). Lookups never overlap: the next is scheduled when one ends.
 *
 * What is not a usable answer keeps the last good set, so a resolver that is down, slow or broken never takes
 * servers away (Envoy STRICT_DNS does the same on failure):
 * - a failed lookup (timeout, SERVFAIL, refused, resolver unreachable);
 * - an empty answer (NXDOMAIN, or NOERROR without records). Envoy STRICT_DNS empties the pool here; we keep the
 *   last set instead, because an empty answer is as often a transient fault (a DNS server restarted with an
 *   empty zone, an endpoints controller catching up, a typo being fixed) as a real "no servers", and emptying the
 *   pool turns every request into a 503 at once, while servers that are really gone fail their health checks and
 *   connects and are avoided. A pool that has never had an answer stays empty, of course.
 * Each is counted in `ballast_discovery_errors_total{upstream}`, logged once when the outage begins and once when
 * it ends, and retried after `interval`.
 *
 * Cost: one timer and at most one lookup in flight per upstream.
 */
import type { DnsDiscoveryConfig, ServerConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import { REAL_TIMERS, type Timers } from '../util/clock.js';
import { createResolver, lookupServers, type LookupResult } from './dns-lookup.js';

/** The shortest wait a record's TTL can ask for; a configured `interval` below it is still honoured. */
export const TTL_FLOOR_MS = 1000;

export interface DnsDiscoveryDeps {
  readonly log: Logger;
  /** Apply the servers of a good answer; may throw (the set cannot be balanced), which counts as an error. */
  readonly apply: (servers: readonly ServerConfig[]) => void;
  /** One lookup that was not applied (`ballast_discovery_errors_total`). */
  readonly failed: () => void;
  readonly timers?: Timers;
}

/** How long to wait before the next lookup: `interval`, or the answer's TTL if shorter (floored). */
export function nextLookupIn(intervalMs: number, ttlMs: number | undefined): number {
  return ttlMs === undefined ? intervalMs : Math.min(intervalMs, Math.max(ttlMs, TTL_FLOOR_MS));
}

export class DnsDiscovery {
  readonly upstream: string;
  readonly config: DnsDiscoveryConfig;
  readonly #deps: DnsDiscoveryDeps;
  readonly #timers: Timers;
  readonly #resolver;
  #timer: unknown;
  #stopped = false;
  /** Since when lookups have been failing (undefined: the last one was good), and how often. */
  #outage: { readonly since: number; failures: number } | undefined;
  /** Servers of the last good answer (what the upstream holds). */
  #servers = 0;

  constructor(upstream: string, config: DnsDiscoveryConfig, deps: DnsDiscoveryDeps) {
    this.upstream = upstream;
    this.config = config;
    this.#deps = deps;
    this.#timers = deps.timers ?? REAL_TIMERS;
    this.#resolver = createResolver(config);
  }

  /** Look up now and keep looking; resolves when the first lookup has ended, applied or not (never rejects). */
  async start(): Promise<void> {
    await this.#lookup();
  }

  stop(): void {
    this.#stopped = true;
    this.#timers.clear(this.#timer);
    this.#resolver.cancel();
  }

  async #lookup(): Promise<void> {
    if (this.#stopped) return;
    const result = await lookupServers(this.#resolver, this.config);
    if (this.#stopped) return;
    let wait = this.config.interval;
    if (result.kind === 'servers') {
      try {
        this.#deps.apply(result.servers);
        this.#servers = result.servers.length;
        this.#recovered();
        wait = nextLookupIn(this.config.interval, result.ttlMs);
      } catch (err) {
        this.#failed({ kind: 'failed', code: 'EAPPLY', message: err instanceof Error ? err.message : String(err) });
      }
    } else {
      this.#failed(result);
    }
    this.#timer = this.#timers.set(() => void this.#lookup(), wait);
  }

  #failed(result: Exclude<LookupResult, { kind: 'servers' }>): void {
    this.#deps.failed();
    if (this.#outage !== undefined) {
      this.#outage.failures++;
      return;
    }
    this.#outage = { since: Date.now(), failures: 1 };
    const fields = { upstream: this.upstream, name: this.config.name, type: this.config.type, code: result.code, keptServers: this.#servers };
    if (result.kind === 'empty') this.#deps.log.warn(fields, 'DNS discovery: empty answer, keeping the last servers found');
    else this.#deps.log.warn({ ...fields, err: result.message }, 'DNS discovery: lookup failed, keeping the last servers found');
  }

  #recovered(): void {
    if (this.#outage === undefined) return;
    const { since, failures } = this.#outage;
    this.#outage = undefined;
    this.#deps.log.info({ upstream: this.upstream, name: this.config.name, servers: this.#servers, failures, failingForMs: Date.now() - since }, 'DNS discovery: lookups answer again');
  }
}
