/**
 * What an HTTP listener's config compiles to, once per config (at start and at each reload), never per request:
 * the router, and per route its upstream, retry policy, metrics cells, hash-key reader and sticky sessions.
 */
import { BlockList, isIP } from 'node:net';
import type { Metrics, RouteMetrics } from '../../admin/metrics.js';
import type { AccessLog } from '../../access-log.js';
import { compileHashKey, type HashKeyReader } from '../../balancer/hash-key.js';
import { isHashing } from '../../balancer/index.js';
import type { HttpListenerConfig } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import { monotonic, type Random } from '../../util/clock.js';
import type { Upstream } from '../../upstream/upstream.js';
import { retryCounters } from '../retry-counters.js';
import { RetryPolicy } from '../retry-policy.js';
import { compileRateLimit, type RateLimiters, type RouteRateLimit } from './route-rate-limit.js';
import { Router, type Route } from './router.js';
import { StickySessions } from './sticky-sessions.js';

export interface HttpListenerDeps {
  readonly upstreams: ReadonlyMap<string, Upstream>;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly accessLog: AccessLog | undefined;
  readonly random: Random;
}

/** Per-route state computed once per config, never per request. */
export interface CompiledRoute {
  readonly route: Route;
  readonly upstream: Upstream;
  readonly policy: RetryPolicy;
  readonly metrics: RouteMetrics;
  readonly hashKey: HashKeyReader | undefined;
  readonly sticky: StickySessions | undefined;
  /** The client limits in force on this route: the listener's, or the route's own. */
  readonly client: { readonly maxBodySize: number; readonly bodyTimeoutMs: number; readonly requestTimeoutMs: number; readonly sendTimeoutMs: number };
  /** `client.rate_limit` in force on this route, if any. */
  readonly rateLimit: RouteRateLimit | undefined;
}

export interface ForwarderDeps {
  readonly listener: string;
  readonly router: Router;
  readonly routes: ReadonlyMap<Route, CompiledRoute>;
  readonly trustedProxies: BlockList | undefined;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Where access lines go, or undefined when the access log is off. */
  readonly accessLog: AccessLog | undefined;
  /** `ballast_requests_total` for requests answered before an upstream was chosen (400, 404): `upstream=""`. */
  readonly unrouted: RouteMetrics;
}

/** Everything per route that can be computed once per config rather than per request. */
export function compileForwarder(config: HttpListenerConfig, deps: HttpListenerDeps, limiters: RateLimiters): ForwarderDeps {
  const router = new Router(config, deps.upstreams);
  const routes = new Map<Route, CompiledRoute>();
  const listenerLimit = config.client.rate_limit;
  const trusted = trustedProxies(config.trusted_proxies);
  /** The buckets this config uses; the others (limits removed or changed) are dropped below. */
  const used = new Set<string>();
  for (const route of router.routes) {
    const own = route.client?.rate_limit;
    const limit = own === 'off' ? undefined : (own ?? listenerLimit);
    // A route's own buckets follow what it matches, not its position: a reload that adds a route before it keeps them.
    const scope = own === undefined ? '' : `${route.host ?? ''} ${route.pathPrefix ?? ''} ${route.upstream.name}`;
    const upstream = route.upstream;
    const sticky = upstream.config.sticky;
    routes.set(route, {
      route,
      upstream,
      policy: new RetryPolicy(route.retry, { breaker: upstream.breaker, random: deps.random, counters: retryCounters(deps.metrics, upstream.name) }),
      metrics: deps.metrics.forRoute(config.name, upstream.name),
      hashKey: isHashing(upstream.config.balance) ? compileHashKey(upstream.config.hash_key) : undefined,
      sticky: sticky === undefined ? undefined : new StickySessions(sticky.cookie, sticky.ttl, () => upstream.stickyTable),
      client: { maxBodySize: route.client?.max_body_size ?? config.client.max_body_size, bodyTimeoutMs: config.client.body_timeout, requestTimeoutMs: config.client.request_timeout, sendTimeoutMs: config.client.send_timeout },
      rateLimit: limit === undefined
        ? undefined
        : compileRateLimit(limit, `${config.name}\u0000${scope}`, limiters, used, monotonic, deps.metrics.rateLimitedCell(config.name, String(route.index)), trusted),
    });
  }
  for (const id of limiters.keys()) if (!used.has(id)) limiters.delete(id);
  return {
    listener: config.name,
    router,
    routes,
    trustedProxies: trusted,
    metrics: deps.metrics,
    log: deps.log,
    accessLog: deps.accessLog,
    unrouted: deps.metrics.forRoute(config.name, ''),
  };
}

function trustedProxies(cidrs: readonly string[]): BlockList | undefined {
  if (cidrs.length === 0) return undefined;
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [addr, bits] = cidr.split('/') as [string, string | undefined];
    const type = isIP(addr) === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(addr, type);
    else list.addSubnet(addr, Number(bits), type);
  }
  return list;
}

/** What an exchange (exchange.ts) needs of the forwarder it arrived through (forward.ts). */
export interface ExchangeSite {
  /** The config in force when the exchange started. */
  readonly deps: ForwarderDeps;
  /** Shutdown is cutting the exchanges still in flight at its drain deadline. */
  readonly cutting: boolean;
  /** Where an exchange that failed unexpectedly is reported. */
  readonly failed: (err: unknown) => void;
  started(): void;
  finished(): void;
}
