/**
 * Discovery for a running Ballast: one DnsDiscovery loop per upstream that configures `discovery.dns`, each
 * answer applied with `Upstream.setMembers` (servers that stay keep their Host and all its state) and told to
 * `publish` (the cluster primary relays it to its workers, which do not resolve: cluster/primary.ts).
 */
import type { Metrics } from '../admin/metrics.js';
import type { DnsDiscoveryConfig, ServerConfig, UpstreamConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { Upstream } from '../upstream/upstream.js';
import { DnsDiscovery } from './dns-discovery.js';

export interface DiscoveryDeps {
  readonly log: Logger;
  readonly metrics: Metrics;
  /** How long a server that left the answers may finish its requests in flight (`shutdown.drain_timeout`). */
  readonly drainMs: number;
  /** The membership of an upstream changed (after it is in place). */
  readonly changed: (upstream: Upstream, servers: readonly ServerConfig[]) => void;
}

export class Discovery {
  readonly #loops: DnsDiscovery[] = [];

  constructor(upstreams: Iterable<Upstream>, deps: DiscoveryDeps) {
    for (const upstream of upstreams) {
      const dns = upstream.config.discovery?.dns;
      if (dns === undefined) continue;
      this.#loops.push(new DnsDiscovery(upstream.name, dns, {
        log: deps.log,
        failed: () => deps.metrics.discoveryErrors.inc({ upstream: upstream.name }),
        apply: (servers) => {
          const change = upstream.setMembers(servers, deps.drainMs);
          if (change === undefined) return;
          deps.log.info({
            upstream: upstream.name,
            name: dns.name,
            added: change.added.map((h) => h.address),
            removed: change.removed.map((h) => h.address),
            servers: upstream.hosts.length,
          }, 'DNS discovery: servers changed');
          deps.changed(upstream, servers);
        },
      }));
    }
  }

  /** First lookups of every upstream, in parallel; resolves when each has ended (bounded by the resolver timeouts). */
  async start(): Promise<void> {
    await Promise.all(this.#loops.map((l) => l.start()));
  }

  stop(): void {
    for (const l of this.#loops) l.stop();
  }
}

/**
 * Whether a reload's upstream looks up what `before` looked up (name, type, port): then it starts from the servers
 * found so far, rather than from none until its first answer.
 */
export function sameLookup(before: UpstreamConfig, after: UpstreamConfig): boolean {
  const a: DnsDiscoveryConfig | undefined = before.discovery?.dns;
  const b: DnsDiscoveryConfig | undefined = after.discovery?.dns;
  return a !== undefined && b !== undefined && a.name.toLowerCase() === b.name.toLowerCase() && a.type === b.type && a.port === b.port;
}
