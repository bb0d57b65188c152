/**
 * The upstream half of the configuration contract: an upstream's servers (or their DNS discovery), how it is reached
 * (TLS, protocol), balanced, health-checked and retried. schema.ts composes it with the listeners into the whole.
 */
import { z } from 'zod';
import { BALANCE_NAMES, type BalanceName } from '../balancer/types.js';
import { HASH_KEY_PATTERN } from '../balancer/hash-key.js';
import { isPrime } from '../balancer/maglev.js';
import { keyMatchesCertificate, pemFile, type PemFile } from './pem-file.js';
import { EVEN_WITH_ERRORS, hostPortOf, isRecord } from './refine.js';
import { duration, fromText, name, percent, positiveDuration, resolverAddress, serverAddress, size, statusRanges } from './values.js';

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

export const retry = z.strictObject({
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

export const upstream = z.strictObject({
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

