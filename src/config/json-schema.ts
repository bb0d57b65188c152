/**
 * The config's JSON Schema, for editors (yaml-language-server, JetBrains): completion and checks of keys and values
 * as you type. Generated from the zod schema (schema.ts), so it cannot drift from what Ballast accepts; `ballast schema`
 * prints it and `npm run schema` writes schema/ballast.schema.json, which a test keeps up to date.
 *
 * It describes the file as written (zod's `io: 'input'`): durations, sizes and addresses are strings, as in YAML.
 * What it cannot say, Ballast still checks at start-up: a duration's or address's form, references between keys
 * (a route's upstream exists), duplicates. Two adjustments make it accept every file Ballast accepts:
 * - `${VAR}` is interpolated before validation, so any value with a constraint (a number, a boolean, an enum, a
 *   pattern) may also be a `${VAR}` reference;
 * - an http listener may leave out `protocol`, which defaults to http (a preprocessing step zod cannot express).
 * Each key's description (what an editor shows on hover) is in DESCRIPTIONS below, in the README's words; a test
 * checks that each one lands on a key. Draft-07, the draft editors support most widely.
 */
import { z } from 'zod';
import { configSchema } from './schema.js';

type JsonSchema = Record<string, unknown>;

/** Keywords whose value is data (a default, a list of names), copied as they are, never walked as a schema. */
const DATA_KEYWORDS = new Set(['default', 'const', 'enum', 'examples', 'required', 'type', 'pattern']);

const ENV_REF = '#/definitions/env_ref';

/** Formats of draft-07 that validators know; zod's own (`starts_with`) are dropped, their `pattern` stays. */
const STANDARD_FORMATS = new Set(['date-time', 'date', 'time', 'email', 'hostname', 'ipv4', 'ipv6', 'uri', 'uri-reference', 'regex']);

/**
 * What each key means, by path: `.` between keys, `[]` for the items of a list. Listener keys apply to both kinds of
 * listener where both have them.
 */
export const DESCRIPTIONS: Readonly<Record<string, string>> = {
  admin: 'The admin endpoint: /status, /metrics, /healthz, /ready and the server actions.',
  'admin.listen': 'host:port of the admin endpoint (default 127.0.0.1:9901); a non-loopback address requires admin.token.',
  'admin.token': 'Bearer token for the POST endpoints, at least 16 characters; e.g. ${BALLAST_ADMIN_TOKEN}.',
  'admin.allowed_hosts': 'Host names the admin answers to besides IP addresses and localhost, e.g. the DNS name Prometheus scrapes it by.',
  logging: 'Log level and access log (pino JSON lines on stdout; pretty on a terminal).',
  'logging.level': 'fatal, error, warn, info (default), debug, trace or silent.',
  'logging.access_log': 'One line per request (per connection for TCP); default true.',
  workers: 'Processes: 1 (default), a number up to 64, or auto (one per core); above 1, a cluster primary and N workers.',
  shutdown: 'What SIGTERM does.',
  'shutdown.drain_timeout': 'How long SIGTERM waits for requests in flight (default 15s); 0: not at all.',
  listeners: 'Where Ballast accepts traffic: http listeners with routes, tcp listeners with one upstream.',
  'listeners[].name': 'Used in metrics labels and logs.',
  'listeners[].protocol': 'http (default) or tcp.',
  'listeners[].listen': 'host:port, [v6]:port or :port (all interfaces).',
  'listeners[].trusted_proxies': 'http: addresses or CIDRs whose X-Forwarded-* is kept and appended to; others are replaced.',
  'listeners[].routes': 'http: first match wins; a route without match is the catch-all. tcp: TLS passthrough routed by the ClientHello\'s server name.',
  'listeners[].routes[].match': 'http: host (exact or *.suffix, any case) and path_prefix; both must match. tcp: sni.',
  'listeners[].routes[].match.sni': 'tcp: a server name (exact, or *. for one label, any case); an exact name wins over a wildcard.',
  'listeners[].routes[].upstream': 'The upstream (by name) this route sends requests to.',
  'listeners[].routes[].retry': 'Overrides the upstream\'s retry policy for this route.',
  'listeners[].routes[].client': 'Overrides the listener\'s max_body_size and rate_limit for this route (rate_limit: off lifts it).',
  'listeners[].client': 'http: limits on clients (timeouts, sizes, connections, rate).',
  'listeners[].client.headers_timeout': 'Time for a client to send its request headers (default 10s); at most request_timeout.',
  'listeners[].client.request_timeout': 'Time for a client to send a whole request (default 300s); 0: no limit.',
  'listeners[].client.keep_alive_timeout': 'Idle client connection lifetime (default 5s); 0: no limit.',
  'listeners[].client.max_header_size': 'Larger request headers get 431 (default 16KiB).',
  'listeners[].client.max_connections': 'Cap on client connections.',
  'listeners[].client.body_timeout': 'Longest wait between two reads of a request body (default 60s); a slower client gets 408; 0: no limit.',
  'listeners[].client.max_body_size': 'Larger request bodies get 413 (default 0: no limit).',
  'listeners[].client.rate_limit': 'A token bucket per key: burst requests at once, then rate per per; beyond it 429 with Retry-After.',
  'listeners[].upstream': 'tcp: the upstream (by name) to relay connections to; with routes, where a name no route matches (or no name) goes, else such a connection is closed.',
  'listeners[].preread_timeout': 'tcp with routes: how long a client may take to send its whole TLS ClientHello (default 5s).',
  'listeners[].idle_timeout': 'tcp: close a connection silent this long (default 10m); 0: never.',
  'listeners[].max_connections': 'tcp: connections at most (default 10000); above it new ones are refused.',
  'listeners[].connect_attempts': 'tcp: servers to try before giving up on a client connection (default 3).',
  'listeners[].send_proxy_protocol': 'tcp: v1 or v2, to tell origins the client address (PROXY protocol).',
  'listeners[].accept_proxy_protocol': 'tcp: read a PROXY header from a load balancer in front (default false).',
  upstreams: 'Pools of servers that listeners send traffic to.',
  'upstreams[].name': 'What routes and tcp listeners refer to; also a metrics label.',
  'upstreams[].balance': 'round-robin (default), weighted-round-robin, random, least-request, peak-ewma, consistent-hash or maglev.',
  'upstreams[].hash_key': 'For consistent-hash and maglev: header:NAME, cookie:NAME, query:NAME, client-ip (default) or path.',
  'upstreams[].hash_balance_factor': 'Bounded-load hashing: no server above this factor times the average in flight.',
  'upstreams[].virtual_nodes': 'consistent-hash: ring points per unit of weight (default 2000).',
  'upstreams[].maglev_table_size': 'maglev: lookup table size, a prime (default 65537).',
  'upstreams[].ewma_decay': 'peak-ewma: decay window of the latency average (default 10s).',
  'upstreams[].sticky': 'Pin a client to the server that first answered it, by a cookie; ttl (its Max-Age) at least 1s, without it a session cookie.',
  'upstreams[].protocol': 'http1 (default) or http2: ALPN h2 over tls, h2c with prior knowledge in clear text. WebSocket handshakes to http2 get 501.',
  'upstreams[].tls': 'TLS to the servers: { servername, ca, verify, cert, key }; files are read when the config loads.',
  'upstreams[].tls.servername': 'SNI and the name the certificate must hold (default: the server\'s host when it is a name).',
  'upstreams[].tls.ca': 'PEM bundle of the CAs the servers\' certificates must chain to (default: Node\'s bundled roots).',
  'upstreams[].tls.verify': 'Verify the server certificate and name (default true); false encrypts without authenticating.',
  'upstreams[].tls.cert': 'PEM client certificate (and chain) for servers that require mutual TLS; needs key.',
  'upstreams[].tls.key': 'PEM private key of cert.',
  'upstreams[].servers': 'The servers: at least one that is not a backup, unless discovery finds them (then optional, and kept beside what DNS says).',
  'upstreams[].discovery': 'Servers found at run time, kept in step with the answers.',
  'upstreams[].discovery.dns': 'Servers from a DNS name (e.g. a Kubernetes headless Service); a failed or empty lookup keeps the last servers found.',
  'upstreams[].discovery.dns.name': 'The DNS name to look up, e.g. api.default.svc.cluster.local.',
  'upstreams[].discovery.dns.type': 'A (default), AAAA or SRV (SRV records give each server its port and weight; higher priorities become backups).',
  'upstreams[].discovery.dns.port': 'The servers\' port, for A and AAAA; left out for SRV.',
  'upstreams[].discovery.dns.resolvers': 'DNS servers to ask, as IP:port (default: the system\'s).',
  'upstreams[].discovery.dns.interval': 'Longest wait between lookups (default 5s, at least 100ms); a shorter record TTL wins, floored at 1s.',
  'upstreams[].servers[].address': 'host:port or [v6]:port.',
  'upstreams[].servers[].weight': '1 to 1000 (default 1), for the weight-aware strategies.',
  'upstreams[].servers[].backup': 'Takes traffic only while no primary server is available (default false).',
  'upstreams[].health_check': 'Active checks: each server probed every interval; rise and fall thresholds decide when it is up.',
  'upstreams[].health_check.type': 'http (default) or tcp (connect only).',
  'upstreams[].health_check.interval': 'Time between probes (default 5s).',
  'upstreams[].health_check.unhealthy_interval': 'Time between probes while a server is down (default: half the interval).',
  'upstreams[].health_check.timeout': 'Longest wait for a probe\'s answer (default 2s).',
  'upstreams[].health_check.healthy_threshold': 'Passing probes before a down server takes traffic (default 2).',
  'upstreams[].health_check.unhealthy_threshold': 'Failing probes before an up server stops taking it (default 3).',
  'upstreams[].health_check.expected_status': 'Statuses that pass, e.g. "200-399" (default), "200, 204" or "200-299, 304".',
  'upstreams[].health_check.initial_state': 'State before the first probe: unhealthy (default: traffic after a passing probe) or healthy.',
  'upstreams[].outlier_detection': 'Passive ejection, fed by every proxied attempt: servers that fail are taken out for a while.',
  'upstreams[].outlier_detection.consecutive_failures': '5xx answers in a row that eject a server (default 5).',
  'upstreams[].outlier_detection.consecutive_gateway_failures': '502/503/504, refused connects and timeouts in a row that eject a server (default 3).',
  'upstreams[].outlier_detection.base_ejection_time': 'Ejection time, times the number of ejections so far (default 30s).',
  'upstreams[].outlier_detection.max_ejection_time': 'Longest ejection (default 300s).',
  'upstreams[].outlier_detection.max_ejection_percent': 'Share of servers that may be ejected at once (default 50%).',
  'upstreams[].panic_threshold': 'Below this share of available servers, balance over all of them (default 50%).',
  'upstreams[].slow_start': 'Ramp a server\'s weight up over this window when it becomes available (default 0: no ramp).',
  'upstreams[].retry': 'When and how a failed try is retried on another server.',
  'upstreams[].retry.attempts': 'Tries in total, the first included (default 3).',
  'upstreams[].retry.retry_on': 'Failures to retry: connect-failure, reset, timeout, gateway-error, 5xx, retriable-4xx, or a status code.',
  'upstreams[].retry.per_try_timeout': 'Each try\'s wait for response headers.',
  'upstreams[].retry.backoff': 'Delay before a retry, with full jitter: { base: 25ms, max: 250ms }.',
  'upstreams[].retry.budget': 'Retries in flight at most this share of requests in flight (default 20%).',
  'upstreams[].retry.min_retries': 'Retries always allowed at once whatever the budget (default 10).',
  'upstreams[].retry.buffer_body': 'Request bodies up to this size are kept for replay (default 64KiB).',
  'upstreams[].retry.idempotency_key': 'Treat a request with an Idempotency-Key header as idempotent (default false).',
  'upstreams[].timeouts': 'Timeouts towards the servers.',
  'upstreams[].timeouts.connect': 'TCP connect to a server (default 2s).',
  'upstreams[].timeouts.request': 'From the first try to the response headers, every try and backoff included (default 30s).',
  'upstreams[].timeouts.idle': 'Longest silence while a response body streams, or a WebSocket tunnel is open (default 60s); 0: no limit.',
  'upstreams[].limits': 'Circuit breaking: beyond a limit, requests get 503 at once.',
  'upstreams[].limits.max_connections': 'Connections per server (default 1024).',
  'upstreams[].limits.max_pending_requests': 'Requests waiting for a connection, per upstream (default 1024).',
  'upstreams[].limits.max_requests': 'Requests in flight, per upstream (default 10000).',
  'upstreams[].limits.max_retries': 'A fixed cap on concurrent retries; when unset the retry budget governs.',
};

export function configJsonSchema(): JsonSchema {
  const generated = z.toJSONSchema(configSchema, { io: 'input', target: 'draft-7', unrepresentable: 'any' }) as JsonSchema;
  const { $schema, ...rest } = generated;
  const body = adjust(rest, '') as JsonSchema;
  return {
    $schema,
    title: 'Ballast configuration',
    description: 'A Ballast config file (YAML or JSON). Keys, defaults and meaning: README.md, Configuration.',
    ...body,
    definitions: {
      ...(body.definitions as JsonSchema | undefined),
      env_ref: {
        type: 'string',
        pattern: '\\$\\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\\}',
        description: '${VAR} or ${VAR:-default}: the value is read from the environment when Ballast loads the file',
      },
    },
  };
}

/** The schema text as shipped in schema/ballast.schema.json and printed by `ballast schema`. */
export function configJsonSchemaText(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}

/**
 * `path`: where `node` sits in a config file, as DESCRIPTIONS names it. `describe`: false for the branches of an
 * anyOf or oneOf, whose key the enclosing node describes already.
 */
function adjust(node: unknown, path: string, describe = true): unknown {
  if (Array.isArray(node)) return node.map((n) => adjust(n, path, describe));
  if (node === null || typeof node !== 'object') return node;
  const out: JsonSchema = {};
  const description = describe ? DESCRIPTIONS[path] : undefined;
  if (description !== undefined) out.description = description;
  for (const [key, value] of Object.entries(node as JsonSchema)) {
    // `properties` maps names to schemas: walk each schema, never treat a key named like a keyword as one.
    if (key === 'properties') {
      out[key] = Object.fromEntries(Object.entries(value as JsonSchema).map(([k, v]) => [k, adjust(v, path === '' ? k : `${path}.${k}`)]));
    } else if (key === 'definitions') {
      out[key] = Object.fromEntries(Object.entries(value as JsonSchema).map(([k, v]) => [k, adjust(v, `#${k}`)]));
    } else if (key === 'items') {
      out[key] = adjust(value, `${path}[]`);
    } else if (key === 'anyOf' || key === 'oneOf' || key === 'allOf') {
      out[key] = adjust(value, path, false);
    } else if (DATA_KEYWORDS.has(key)) {
      out[key] = value;
    } else if (key === 'format' && !STANDARD_FORMATS.has(String(value))) {
      continue;
    } else if (key !== 'description' || description === undefined) {
      out[key] = adjust(value, path);
    }
  }
  optionalHttpProtocol(out);
  return constrainedLeaf(out) ? orEnvRef(out) : out;
}

/** The http branch of a listener: `protocol` is optional (schema.ts defaults it to http before the union). */
function optionalHttpProtocol(node: JsonSchema): void {
  const properties = node.properties as Record<string, JsonSchema> | undefined;
  if (properties?.protocol?.const !== 'http' || !Array.isArray(node.required)) return;
  node.required = (node.required as string[]).filter((k) => k !== 'protocol');
}

/** A scalar schema that a `${VAR}` reference (a string) would fail: a number, a boolean, an enum, a pattern. */
function constrainedLeaf(node: JsonSchema): boolean {
  if ('const' in node || 'properties' in node || 'items' in node || 'anyOf' in node || 'oneOf' in node) return false;
  if (node.type === 'number' || node.type === 'integer' || node.type === 'boolean') return true;
  return 'enum' in node || 'pattern' in node || 'minLength' in node || 'maxLength' in node;
}

function orEnvRef(node: JsonSchema): JsonSchema {
  const { default: defaultValue, description, ...value } = node;
  return {
    ...(description !== undefined && { description }),
    ...(defaultValue !== undefined && { default: defaultValue }),
    anyOf: [value, { $ref: ENV_REF }],
  };
}
