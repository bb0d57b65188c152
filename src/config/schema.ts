/**
 * The configuration contract (design.md "Config contract"), validated once at the edge with zod.
 * Every optional key has a default here, so the rest of Ballast reads a complete, typed, frozen config.
 * Field names stay snake_case, exactly as users write them, so an error path is the path in their file.
 */
import { z } from 'zod';
import { BALANCE_NAMES, type BalanceName } from '../balancer/types.js';
import { HASH_KEY_PATTERN } from '../balancer/hash-key.js';
import { isPrime } from '../balancer/maglev.js';
import { closest } from './suggest.js';
import { certificatePair, keyMatchesCertificate, pemFile, type PemFile } from './pem-file.js';
import {
  cidr,
  duration,
  fromText,
  type HostPort,
  listenAddress,
  name,
  percent,
  positiveDuration,
  resolverAddress,
  serverAddress,
  size,
  statusRanges,
} from './values.js';

const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * For a refinement across keys: zod skips it once any key has failed, so a file with a misspelt key would show its
 * duplicate names or unknown upstreams only after a second run of `validate`. Run it whenever the value is an
 * object; the refinement then reads only values of the type it expects, since others may not have parsed.
 */
const EVEN_WITH_ERRORS = { when: (payload: { value: unknown }) => isRecord(payload.value) };

const server = z.strictObject({
  address: serverAddress,
  weight: fromText(z.number().int().min(1).max(1000)).default(1),
  backup: fromText(z.boolean()).default(false),
});

const healthCheck = z.strictObject({
  type: z.enum(['http', 'tcp']).default('http'),
  path: z.string().regex(/^\/[^\s]*$/, 'expected a path starting with / and without spaces').default('/healthz'),
  method: z.enum(['GET', 'HEAD', 'OPTIONS']).default('GET'),
  host: z.string().regex(/^[^\s,]+$/, 'expected a host name').optional(),
  interval: positiveDuration.default(5000),
  /** Probe interval while a server is unhealthy, so recovery is noticed sooner (HAProxy `downinter`); default interval / 2. */
  unhealthy_interval: positiveDuration.optional(),
  timeout: positiveDuration.default(2000),
  jitter: percent.default(0.1),
  healthy_threshold: fromText(z.number().int().min(1)).default(2),
  unhealthy_threshold: fromText(z.number().int().min(1)).default(3),
  expected_status: statusRanges.default([[200, 399]]),
  /** State of a server before its first probe (HAProxy starts servers up; Envoy starts them failed). */
  initial_state: z.enum(['healthy', 'unhealthy']).default('unhealthy'),
});

const outlierDetection = z.strictObject({
  consecutive_failures: fromText(z.number().int().min(0)).default(5),
  consecutive_gateway_failures: fromText(z.number().int().min(0)).default(3),
  interval: positiveDuration.default(10_000),
  success_rate_minimum_hosts: fromText(z.number().int().min(1)).default(5),
  success_rate_request_volume: fromText(z.number().int().min(1)).default(100),
  success_rate_stdev_factor: fromText(z.number().positive()).default(1.9),
  failure_percentage_threshold: percent.optional(),
  // Outlier detection is switched off by leaving it out: a zero ejection would log ejections that eject nothing.
  base_ejection_time: positiveDuration.default(30_000),
  max_ejection_time: positiveDuration.default(300_000),
  /** Honoured exactly: at 10% (Envoy's default) a pool under 10 servers could never eject, so the default is 50%. */
  max_ejection_percent: percent.default(0.5),
  /** A passing active check ends a passive ejection early. */
  uneject_on_active_success: fromText(z.boolean()).default(true),
});

export const RETRY_CONDITIONS = ['connect-failure', 'reset', 'timeout', 'gateway-error', '5xx', 'retriable-4xx'] as const;

const RETRY_ON_EXPECTED = `expected ${RETRY_CONDITIONS.join(', ')} or a status code from 100 to 599`;

/**
 * One condition, or a status code as a number or a string. Checked in one place rather than as a union of the three,
 * whose error would name only the branch that came closest ("must match pattern /^[1-5]\d\d$/").
 */
const retryOn = z.union([z.string(), z.number()], { error: RETRY_ON_EXPECTED }).transform((v, ctx) => {
  const text = String(v);
  if ((RETRY_CONDITIONS as readonly string[]).includes(text) || /^[1-5]\d\d$/.test(text)) return text;
  ctx.addIssue({ code: 'custom', message: `"${text}" is not a retry condition: ${RETRY_ON_EXPECTED}` });
  return z.NEVER;
});

const retry = z.strictObject({
  attempts: fromText(z.number().int().min(1).max(10)).default(3),
  retry_on: z.array(retryOn).default(['connect-failure', 'reset', 'timeout', '502', '503', '504']),
  per_try_timeout: positiveDuration.optional(),
  /** 0 retries at once. */
  backoff: z.strictObject({ base: duration.default(25), max: duration.default(250) }).prefault({}),
  budget: percent.default(0.2),
  /** Concurrent retries always allowed whatever the budget share (Envoy `min_retry_concurrency`; Finagle's 10/s floor). */
  min_retries: fromText(z.number().int().min(0)).default(10),
  buffer_body: size.default(64 * 1024),
  /** Treat non-idempotent requests carrying `Idempotency-Key` as retryable (draft-ietf-httpapi-idempotency-key-header). */
  idempotency_key: fromText(z.boolean()).default(false),
});

const timeouts = z.strictObject({
  connect: positiveDuration.default(2000),
  request: positiveDuration.default(30_000),
  /** undici's bodyTimeout: 0 sets no limit (a server-sent event stream may be silent for long). */
  idle: duration.default(60_000),
});

const limits = z.strictObject({
  max_connections: fromText(z.number().int().min(1)).default(1024),
  max_pending_requests: fromText(z.number().int().min(1)).default(1024),
  max_requests: fromText(z.number().int().min(1)).default(10_000),
  /** A fixed cap on concurrent retries; when unset the retry budget governs (as in Envoy, where a budget replaces it). */
  max_retries: fromText(z.number().int().min(0)).optional(),
});

const SERVERNAME_EXPECTED = 'expected a host name such as api.internal (sent as SNI and verified in the certificate)';

/**
 * TLS to an upstream's servers (node:tls `connect` options). The files are read when the config is loaded
 * (pem-file.ts), so a bad one is refused with its key path.
 */
const upstreamTls = z.strictObject({
  /** SNI, and the name the certificate must hold; default: the server's host when it is a name (RFC 6066 §3: never an IP). */
  servername: z.string({ error: SERVERNAME_EXPECTED })
    .regex(/^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*$/, SERVERNAME_EXPECTED)
    .optional(),
  /** CA bundle the servers' certificates must chain to; default: Node's bundled roots. */
  ca: pemFile('certificates').optional(),
  /** false: accept any certificate (rejectUnauthorized: false); the connection is encrypted but not authenticated. */
  verify: fromText(z.boolean()).default(true),
  /** Client certificate (and chain) and its key, for servers that require mutual TLS: both or neither. */
  cert: pemFile('certificates').optional(),
  key: pemFile('private key').optional(),
}).superRefine((t: Partial<Record<string, unknown>>, ctx) => {
  if ((t.cert === undefined) !== (t.key === undefined)) {
    const missing = t.cert === undefined ? 'cert' : 'key';
    ctx.addIssue({ code: 'custom', path: [missing], message: 'a client certificate needs both cert and key' });
  } else if (isPemFile(t.cert) && isPemFile(t.key) && !keyMatchesCertificate(t.cert, t.key)) {
    ctx.addIssue({ code: 'custom', path: ['key'], message: `${t.key.path} is not the private key of the certificate in ${t.cert.path}` });
  }
}, EVEN_WITH_ERRORS);

const isPemFile = (v: unknown): v is PemFile => isRecord(v) && typeof v.pem === 'string';

const DNS_NAME_EXPECTED = 'expected a DNS name such as api.default.svc.cluster.local';
const RESOLVER_EXPECTED = 'expected a resolver address such as 10.96.0.10:53, 10.96.0.10 or [fd00::10]:53';

/**
 * `discovery.dns`: the upstream's servers follow a DNS name (src/discovery/). A and AAAA answers give addresses and
 * take `port`; SRV answers give each server's port and weight themselves.
 */
const dnsDiscovery = z.strictObject({
  name: z.string({ error: DNS_NAME_EXPECTED })
    .regex(/^(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/, DNS_NAME_EXPECTED),
  type: z.enum(['A', 'AAAA', 'SRV'], { error: 'expected A, AAAA or SRV' }).default('A'),
  port: fromText(z.number({ error: 'expected a port from 1 to 65535' }).int().min(1).max(65535)).optional(),
  /** Default: the system's resolvers (/etc/resolv.conf). */
  resolvers: z.array(resolverAddress, { error: 'expected a list of resolver addresses, e.g. ["10.96.0.10:53"]' }).min(1, 'leave resolvers out to use the system\'s').optional(),
  /** The longest wait between two lookups; a record's shorter TTL wins (with a floor: src/discovery/dns-discovery.ts). */
  interval: duration.refine((ms) => ms >= 100, 'must be at least 100ms').default(5000),
}).superRefine((d: Partial<Record<string, unknown>>, ctx) => {
  if (d.type === 'SRV' && d.port !== undefined) ctx.addIssue({ code: 'custom', path: ['port'], message: 'SRV records carry the port: leave port out' });
  if (d.type !== 'SRV' && d.port === undefined) ctx.addIssue({ code: 'custom', path: ['port'], message: `${String(d.type ?? 'A')} records carry no port: port is required` });
}, EVEN_WITH_ERRORS);

const HASH_KEY_EXPECTED = 'expected header:NAME, cookie:NAME, query:NAME, client-ip or path';

const upstream = z.strictObject({
  name,
  balance: z.enum(BALANCE_NAMES as readonly BalanceName[] as [BalanceName, ...BalanceName[]]).default('round-robin'),
  hash_key: z.string({ error: HASH_KEY_EXPECTED }).regex(HASH_KEY_PATTERN, HASH_KEY_EXPECTED).default('client-ip'),
  hash_balance_factor: fromText(z.number().gt(1)).optional(),
  virtual_nodes: fromText(z.number().int().min(1).max(10_000)).optional(),
  maglev_table_size: fromText(z.number().int().min(7).max(5_000_011).refine(isPrime, 'a Maglev table size must be a prime number, e.g. 65537')).optional(),
  ewma_decay: positiveDuration.default(10_000),
  /** http1, or http2: ALPN h2 over tls, h2c with prior knowledge (RFC 9113 §3.3) in clear text. */
  protocol: z.enum(['http1', 'http2']).default('http1'),
  tls: upstreamTls.optional(),
  sticky: z.strictObject({ cookie: z.string().regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, 'expected a cookie name'), ttl: duration.refine((ms) => ms >= 1000, 'must be at least 1s: the cookie\'s Max-Age counts whole seconds').optional() }).optional(),
  servers: z.array(server).default([]),
  discovery: z.strictObject({ dns: dnsDiscovery }).optional(),
  health_check: healthCheck.optional(),
  outlier_detection: outlierDetection.optional(),
  panic_threshold: percent.default(0.5),
  slow_start: duration.default(0),
  retry: retry.prefault({}),
  timeouts: timeouts.prefault({}),
  limits: limits.prefault({}),
}).superRefine((u: Partial<Record<string, unknown>>, ctx) => {
  // Runs even when other keys of this upstream have errors (EVEN_WITH_ERRORS), so it reads `u` as it may be.
  const discovered = u.discovery !== undefined;
  const servers = Array.isArray(u.servers) ? (u.servers as unknown[]) : undefined;
  if (servers === undefined) return;
  if (servers.length === 0 && !discovered) ctx.addIssue({ code: 'custom', path: ['servers'], message: 'an upstream needs at least one server, or discovery (or both)' });
  const seen = new Set<string>();
  servers.forEach((s, i) => {
    const address = isRecord(s) ? hostPortOf(s.address) : undefined;
    if (address === undefined) return;
    const key = `${address.host}:${address.port}`;
    if (seen.has(key)) ctx.addIssue({ code: 'custom', path: ['servers', i, 'address'], message: `server ${key} is listed twice` });
    seen.add(key);
  });
  if (typeof u.maglev_table_size === 'number' && u.maglev_table_size < servers.length) {
    ctx.addIssue({ code: 'custom', path: ['maglev_table_size'], message: `the Maglev table needs at least one slot per server (${servers.length})` });
  }
  const backups = servers.map((s) => (isRecord(s) ? s.backup : undefined));
  if (servers.length > 0 && !discovered && backups.every((b) => typeof b === 'boolean') && !backups.some((b) => !b)) {
    ctx.addIssue({ code: 'custom', path: ['servers'], message: 'an upstream needs at least one server that is not a backup' });
  }
}, EVEN_WITH_ERRORS);

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

/** A listen or server address as the schema reads it, or undefined while it is still text that failed to parse. */
function hostPortOf(v: unknown): HostPort | undefined {
  return isRecord(v) && typeof v.host === 'string' && typeof v.port === 'number' ? { host: v.host, port: v.port } : undefined;
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
