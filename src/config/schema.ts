/**
 * The configuration contract (design.md "Config contract"), validated once at the edge with zod.
 * Every optional key has a default here, so the rest of Ballast reads a complete, typed, frozen config.
 * Field names stay snake_case, exactly as users write them, so an error path is the path in their file.
 */
import { z } from 'zod';
import { closest } from './suggest.js';
import { certificatePair, pemFile } from './pem-file.js';
import { EVEN_WITH_ERRORS, hostPortOf, isRecord } from './refine.js';
import { retry, upstream } from './upstream-schema.js';
import { cidr, duration, fromText, listenAddress, name, positiveDuration, size } from './values.js';

export { RETRY_CONDITIONS } from './upstream-schema.js';

const RATE_KEY_EXPECTED = 'expected client-ip or header:NAME';

/** A token bucket per key (NGINX `limit_req` with `nodelay`): `burst` at once, then `rate` per `per`. */
const rateLimit = z.strictObject({
  rate: fromText(z.number().positive()),
  per: positiveDuration.default(1000),
  /** Requests a key may send at once (the bucket's size); default: `rate`, one period's worth. */
  burst: fromText(z.number().int().min(1)).optional(),
  key: z.string({ error: RATE_KEY_EXPECTED }).regex(/^(?:client-ip|header:[!#$%&'*+.^_`|~0-9A-Za-z-]+)$/, RATE_KEY_EXPECTED).default('client-ip'),
});

/** What a route may tighten or loosen of its listener's `client` limits. */
const routeClient = z.strictObject({
  /** 0: no limit. */
  max_body_size: size.optional(),
  /** `off` lifts the listener's limit for this route. */
  rate_limit: z.union([rateLimit, z.literal('off')], { error: 'expected { rate, per, burst, key } or off' }).optional(),
});

const route = z.strictObject({
  match: z.strictObject({
    host: z.string().regex(/^(\*\.)?[A-Za-z0-9.-]+(:\d+)?$/, 'expected a host name such as api.example.com or *.example.com').optional(),
    path_prefix: z.string().startsWith('/').optional(),
  }).optional(),
  upstream: name,
  /** Per-route override of the upstream's retry policy. */
  retry: retry.optional(),
  /** Per-route override of the listener's body size and rate limits. */
  client: routeClient.optional(),
});

const ALPN_EXPECTED = 'expected a list of h2 and http/1.1, e.g. [h2, http/1.1]';

/** TLS termination on a listener (#15): SNI picks among the certificates, the first is the default. */
const listenerTls = z.strictObject({
  certificates: z.array(certificatePair, { error: 'expected a list of { cert, key } file pairs' }).min(1, 'a TLS listener needs at least one certificate'),
  min_version: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
  alpn: z.array(z.enum(['h2', 'http/1.1'], { error: ALPN_EXPECTED }), { error: ALPN_EXPECTED }).min(1, ALPN_EXPECTED)
    .refine((list) => new Set(list).size === list.length, 'each protocol once').default(['h2', 'http/1.1']),
  /** Mutual TLS: every client must present a certificate this bundle verifies. */
  client_ca: pemFile('certificates').optional(),
  /** Longest a client may take to finish its handshake (a slow handshake holds a socket like a slow header). */
  handshake_timeout: positiveDuration.default(10_000),
});

/** HTTP/2 towards clients (RFC 9113): by ALPN over TLS, and with prior knowledge in clear text when `cleartext`. */
const listenerHttp2 = z.strictObject({
  max_concurrent_streams: fromText(z.number().int().min(1).max(10_000)).default(100),
  /** The largest header list a client may send (SETTINGS_MAX_HEADER_LIST_SIZE); defaults to client.max_header_size. */
  max_header_list_size: size.optional(),
  cleartext: fromText(z.boolean()).default(false),
}).prefault({});

const httpListener = z.strictObject({
  name,
  protocol: z.literal('http'),
  listen: listenAddress,
  trusted_proxies: z.array(cidr).default([]),
  routes: z.array(route).min(1, 'an http listener needs at least one route'),
  tls: listenerTls.optional(),
  http2: listenerHttp2,
  /**
   * Limits against slow or abusive clients (node:http server options). Its timeouts take 0 as no limit, except
   * headers_timeout: the slowloris guard, which also sets how often Node checks connections (listener.ts), so 0
   * would check them every millisecond.
   */
  client: z.strictObject({
    headers_timeout: positiveDuration.default(10_000),
    request_timeout: duration.default(300_000),
    keep_alive_timeout: duration.default(5000),
    max_header_size: size.default(16 * 1024),
    max_connections: fromText(z.number().int().min(1)).optional(),
    /**
     * Longest wait between two reads of a request body (NGINX `client_body_timeout`): a client slower than that gets
     * 408. 0: no limit (request_timeout still bounds the whole request).
     */
    body_timeout: duration.default(60_000),
    /**
     * Longest a client may read nothing of a response being written to it (NGINX `send_timeout`): beyond it the
     * connection is reset and the upstream request aborted. 0: no limit.
     */
    send_timeout: duration.default(60_000),
    /** Larger request bodies get 413; 0 (the default): no limit. */
    max_body_size: size.default(0),
    rate_limit: rateLimit.optional(),
  }).superRefine((c: Partial<Record<string, unknown>>, ctx) => {
    // node:http's createServer throws on this: refused here rather than at start-up, where it would fail to listen.
    const { headers_timeout: headers, request_timeout: request } = c;
    if (typeof headers === 'number' && typeof request === 'number' && request > 0 && headers > request) {
      ctx.addIssue({ code: 'custom', path: ['headers_timeout'], message: 'must not be longer than request_timeout' });
    }
  }, EVEN_WITH_ERRORS).prefault({}),
});

const SNI_EXPECTED = 'expected a server name such as api.example.com, or *.example.com (the * stands for one label)';

/** A TLS server name, or `*.` and one: lower-cased, as names are compared without regard to case (RFC 6066 §3). */
const sniPattern = z.string({ error: SNI_EXPECTED })
  .regex(/^(?=.{1,253}$)(?:\*\.)?[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*$/, SNI_EXPECTED)
  .transform((pattern) => pattern.toLowerCase());

/** tcp: TLS passthrough routed by the ClientHello's server name (proxy/tcp/sni-router.ts). */
const tcpRoute = z.strictObject({
  match: z.strictObject({ sni: sniPattern }, { error: 'expected match: { sni: NAME }' }),
  upstream: name,
});

const tcpListener = z.strictObject({
  name,
  protocol: z.literal('tcp'),
  listen: listenAddress,
  /** With routes: where a ClientHello without a server name, or with one no route matches, goes; else it is closed. */
  upstream: name.optional(),
  routes: z.array(tcpRoute).min(1, 'leave routes out, or give at least one').optional(),
  /**
   * With routes: how long a client may take to send its whole ClientHello (HAProxy `tcp-request inspect-delay`,
   * NGINX `preread_timeout`); a client slower than that is closed.
   */
  preread_timeout: positiveDuration.default(5000),
  idle_timeout: duration.default(600_000),
  max_connections: fromText(z.number().int().min(1)).default(10_000),
  connect_attempts: fromText(z.number().int().min(1).max(10)).default(3),
  send_proxy_protocol: z.enum(['v1', 'v2']).optional(),
  accept_proxy_protocol: fromText(z.boolean()).default(false),
  /** Terminate TLS, then relay the clear text (ALPN is not offered: the bytes are not read). */
  tls: listenerTls.omit({ alpn: true }).optional(),
}).superRefine((l: Partial<Record<string, unknown>>, ctx) => {
  // Runs even when other keys have errors (EVEN_WITH_ERRORS), so it reads `l` as it may be.
  if (l.tls !== undefined && l.routes !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['routes'], message: 'routes by sni read the ClientHello of TLS passed through: a listener that terminates TLS (tls) cannot have them' });
  }
  if (l.upstream === undefined && l.routes === undefined) {
    ctx.addIssue({ code: 'custom', path: ['upstream'], message: 'a tcp listener needs an upstream, or routes by sni' });
  }
  const seen = new Map<string, number>();
  (Array.isArray(l.routes) ? (l.routes as unknown[]) : []).forEach((r, j) => {
    const sni = isRecord(r) && isRecord(r.match) ? r.match.sni : undefined;
    if (typeof sni !== 'string') return;
    const first = seen.get(sni.toLowerCase());
    if (first !== undefined) ctx.addIssue({ code: 'custom', path: ['routes', j, 'match', 'sni'], message: `sni "${sni}" is already the pattern of routes[${first}]` });
    else seen.set(sni.toLowerCase(), j);
  });
}, EVEN_WITH_ERRORS);

/** `protocol` defaults to http, so the smallest file needs no more than a listener and an upstream. */
const listener = z.preprocess(
  (v) => (isRecord(v) && !('protocol' in v) ? { ...v, protocol: 'http' } : v),
  z.discriminatedUnion('protocol', [httpListener, tcpListener], {
    error: (issue) => (isRecord(issue.input)
      ? 'expected protocol: http or tcp'
      : 'expected a listener: { name, listen, routes } or { name, protocol: tcp, listen, upstream }'),
  }),
);

const ADMIN_HOST_EXPECTED = 'expected a host name such as ballast.internal (no scheme, port, path or wildcard)';
const WORKERS_EXPECTED = 'expected a number of processes from 1 to 64, or auto';

export const configSchema = z.strictObject({
  admin: z.strictObject({
    listen: listenAddress.default({ host: '127.0.0.1', port: 9901 }),
    token: z.string().min(16, 'an admin token needs at least 16 characters').optional(),
    // Host names the admin answers to besides IP literals and localhost: the DNS-rebinding defence in
    // src/admin/request-guard.ts. Exact names, kept lower-case; the port of a Host header is not compared.
    allowed_hosts: z.array(
      z.string({ error: ADMIN_HOST_EXPECTED })
        .regex(/^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*$/, ADMIN_HOST_EXPECTED)
        .transform((host) => host.toLowerCase()),
      { error: 'expected a list of host names, e.g. [ballast.internal]' },
    ).default([]),
  }).prefault({}),
  logging: z.strictObject({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    access_log: fromText(z.boolean()).default(true),
  }).prefault({}),
  workers: fromText(z.union([z.number().int().min(1, WORKERS_EXPECTED).max(64, WORKERS_EXPECTED), z.literal('auto')], { error: WORKERS_EXPECTED })).default(1),
  shutdown: z.strictObject({ drain_timeout: duration.default(15_000) }).prefault({}),
  listeners: z.array(listener).min(1, 'at least one listener is needed'),
  upstreams: z.array(upstream).min(1, 'at least one upstream is needed'),
}).superRefine((c: Partial<Record<string, unknown>>, ctx) => referenceIssues(c, ctx), EVEN_WITH_ERRORS);

/**
 * What no single key can check: names defined twice, a route or tcp listener naming an upstream that does not exist,
 * two listeners (or one and the admin) on one address, a non-loopback admin without a token. Run even when other keys
 * have errors, so `validate` reports these in the same pass: `c` may then hold values that failed (a listen address
 * still a string, a listener that is no listener), and each check uses only what it can trust.
 */
function referenceIssues(c: Partial<Record<string, unknown>>, ctx: z.RefinementCtx): void {
  const upstreamList = Array.isArray(c.upstreams) ? (c.upstreams as unknown[]) : [];
  const upstreams = new Set<string>();
  upstreamList.forEach((u, i) => {
    if (!isRecord(u) || typeof u.name !== 'string') return;
    if (upstreams.has(u.name)) ctx.addIssue({ code: 'custom', path: ['upstreams', i, 'name'], message: `upstream "${u.name}" is defined twice` });
    upstreams.add(u.name);
  });
  // An upstream without a readable name could be the one a reference means: say nothing about references then.
  const namesKnown = Array.isArray(c.upstreams) && upstreamList.every((u) => isRecord(u) && typeof u.name === 'string');
  const admin = isRecord(c.admin) ? c.admin : undefined;
  const adminListen = hostPortOf(admin?.listen);
  const listenerNames = new Set<string>();
  const binds = new Set<string>(adminListen ? [`${adminListen.host}:${adminListen.port}`] : []);
  const listeners = Array.isArray(c.listeners) ? (c.listeners as unknown[]) : [];
  listeners.forEach((l, i) => {
    if (!isRecord(l)) return;
    if (typeof l.name === 'string') {
      if (listenerNames.has(l.name)) ctx.addIssue({ code: 'custom', path: ['listeners', i, 'name'], message: `listener "${l.name}" is defined twice` });
      listenerNames.add(l.name);
    }
    const listen = hostPortOf(l.listen);
    if (listen !== undefined) {
      const bind = `${listen.host}:${listen.port}`;
      if (listen.port !== 0 && binds.has(bind)) ctx.addIssue({ code: 'custom', path: ['listeners', i, 'listen'], message: `${bind} is already used by another listener or the admin listener` });
      binds.add(bind);
    }
    // The PROXY header comes before the ClientHello: reading it would take the TLS handshake off node:tls's own
    // socket handling. Not offered together yet.
    if (l.protocol === 'tcp' && isRecord(l.tls) && l.accept_proxy_protocol === true) {
      ctx.addIssue({ code: 'custom', path: ['listeners', i, 'accept_proxy_protocol'], message: 'a tcp listener that terminates TLS cannot accept the PROXY protocol' });
    }
    if (!namesKnown) return;
    // Both kinds of listener have routes; a tcp listener has its own (default) upstream too.
    const refs = (Array.isArray(l.routes) ? (l.routes as unknown[]) : []).map((r, j) => ({ upstream: isRecord(r) ? r.upstream : undefined, path: ['listeners', i, 'routes', j, 'upstream'] }));
    if (l.protocol === 'tcp') refs.unshift({ upstream: l.upstream, path: ['listeners', i, 'upstream'] });
    for (const ref of refs) {
      if (typeof ref.upstream === 'string' && !upstreams.has(ref.upstream)) {
        const guess = closest(ref.upstream, upstreams);
        ctx.addIssue({ code: 'custom', path: ref.path, message: `no upstream is named "${ref.upstream}" (defined: ${[...upstreams].join(', ')})${guess === undefined ? '' : `; did you mean "${guess}"?`}` });
      }
    }
  });
  if (adminListen !== undefined && !isLoopback(adminListen.host) && admin?.token === undefined) {
    ctx.addIssue({ code: 'custom', path: ['admin', 'token'], message: 'an admin listener on a non-loopback address needs a token' });
  }
}


export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

export type Config = z.output<typeof configSchema>;
export type ListenerConfig = Config['listeners'][number];
export type HttpListenerConfig = Extract<ListenerConfig, { protocol: 'http' }>;
export type RateLimitConfig = z.output<typeof rateLimit>;
export type TcpListenerConfig = Extract<ListenerConfig, { protocol: 'tcp' }>;
export type ListenerTlsConfig = z.output<typeof listenerTls>;
export type ListenerTlsBase = Omit<ListenerTlsConfig, 'alpn'>;
export type TcpRouteConfig = NonNullable<TcpListenerConfig['routes']>[number];
export type UpstreamConfig = Config['upstreams'][number];
export type ServerConfig = UpstreamConfig['servers'][number];
export type RetryConfig = UpstreamConfig['retry'];
export type HealthCheckConfig = NonNullable<UpstreamConfig['health_check']>;
export type UpstreamTlsConfig = NonNullable<UpstreamConfig['tls']>;
export type DnsDiscoveryConfig = NonNullable<UpstreamConfig['discovery']>['dns'];
export type OutlierDetectionConfig = NonNullable<UpstreamConfig['outlier_detection']>;
