/**
 * One DNS lookup for `discovery.dns`, turned into servers: node:dns's `Resolver` (c-ares), on the configured
 * resolvers or the system's. What comes back is one of three things, because each is handled differently
 * (dns-discovery.ts): servers with the shortest TTL among their records; an empty answer (NXDOMAIN, or NOERROR with
 * no records of the type: RFC 2308's "NODATA"); or a failure (timeout, SERVFAIL, refused, resolver unreachable).
 *
 * - A / AAAA: each address at the configured `port`, weight 1 (RFC 1035 §3.4.1; RFC 3596).
 * - SRV (RFC 2782): each record's target at the record's port and weight. Only the lowest priority value is
 *   primary, as RFC 2782 says a client must try it first; records of higher values become backups
 *   (`backup: true`: taken only while no primary is available). A target is resolved to its A records, or to its
 *   AAAA records when it has none; a target that does not exist is left out, a target whose lookup fails fails the
 *   whole lookup (a partial set would remove servers that are fine). SRV weights are 0–65535 and Ballast's 1–1000:
 *   they are clamped (0 → 1), which keeps the proportions of the usual weights (Kubernetes publishes equal ones).
 *   node:dns does not give an SRV record's TTL: the targets' address TTLs bound the wait.
 */
import { promises as dns, type RecordWithTtl } from 'node:dns';
import { isIP } from 'node:net';
import type { DnsDiscoveryConfig, ServerConfig } from '../config/schema.js';

export type LookupResult =
  | { readonly kind: 'servers'; readonly servers: readonly ServerConfig[]; readonly ttlMs: number | undefined }
  | { readonly kind: 'empty'; readonly code: string }
  | { readonly kind: 'failed'; readonly code: string; readonly message: string };

/** c-ares codes of an answer that says "no such records" rather than "could not ask". */
const EMPTY_CODES: ReadonlySet<string> = new Set([dns.NOTFOUND, dns.NODATA]);

/** Each query waits this long for an answer, and is tried this often per resolver (c-ares doubles the wait each round). */
export const QUERY_TIMEOUT_MS = 2000;
export const QUERY_TRIES = 2;

const MAX_WEIGHT = 1000;

export function createResolver(config: DnsDiscoveryConfig): dns.Resolver {
  const resolver = new dns.Resolver({ timeout: QUERY_TIMEOUT_MS, tries: QUERY_TRIES });
  if (config.resolvers !== undefined) {
    resolver.setServers(config.resolvers.map(({ host, port }) => (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`)));
  }
  return resolver;
}

/** Look `config.name` up once; never rejects. */
export async function lookupServers(resolver: dns.Resolver, config: DnsDiscoveryConfig): Promise<LookupResult> {
  try {
    if (config.type === 'SRV') return await lookupSrv(resolver, config.name);
    const records = config.type === 'AAAA' ? await resolver.resolve6(config.name, { ttl: true }) : await resolver.resolve4(config.name, { ttl: true });
    if (records.length === 0) return { kind: 'empty', code: dns.NODATA };
    const port = config.port ?? 0;
    return {
      kind: 'servers',
      servers: records.map((r) => ({ address: { host: r.address, port }, weight: 1, backup: false })),
      ttlMs: shortestTtl(records),
    };
  } catch (err) {
    return classify(err);
  }
}

async function lookupSrv(resolver: dns.Resolver, name: string): Promise<LookupResult> {
  const records = await resolver.resolveSrv(name);
  if (records.length === 0) return { kind: 'empty', code: dns.NODATA };
  const primary = Math.min(...records.map((r) => r.priority));
  const targets = new Map<string, Promise<RecordWithTtl[]>>();
  for (const r of records) if (!targets.has(r.name)) targets.set(r.name, addressesOf(resolver, r.name));
  const resolved = new Map<string, RecordWithTtl[]>();
  for (const [target, addresses] of targets) resolved.set(target, await addresses);
  const servers: ServerConfig[] = [];
  const ttls: RecordWithTtl[] = [];
  for (const r of records) {
    const addresses = resolved.get(r.name) ?? [];
    ttls.push(...addresses);
    for (const a of addresses) {
      servers.push({ address: { host: a.address, port: r.port }, weight: Math.min(MAX_WEIGHT, Math.max(1, r.weight)), backup: r.priority !== primary });
    }
  }
  if (servers.length === 0) return { kind: 'empty', code: dns.NODATA };
  return { kind: 'servers', servers, ttlMs: shortestTtl(ttls) };
}

/** A target's addresses: IPv4, else IPv6; none when it does not exist. Other failures reject. */
async function addressesOf(resolver: dns.Resolver, target: string): Promise<RecordWithTtl[]> {
  if (isIP(target) !== 0) return [{ address: target, ttl: Infinity }];
  for (const lookup of [() => resolver.resolve4(target, { ttl: true }), () => resolver.resolve6(target, { ttl: true })]) {
    try {
      const found = await lookup();
      if (found.length > 0) return found;
    } catch (err) {
      if (!EMPTY_CODES.has(codeOf(err))) throw err;
    }
  }
  return [];
}

function shortestTtl(records: readonly RecordWithTtl[]): number | undefined {
  let least = Infinity;
  for (const r of records) least = Math.min(least, r.ttl);
  return Number.isFinite(least) ? least * 1000 : undefined;
}

function classify(err: unknown): LookupResult {
  const code = codeOf(err);
  if (EMPTY_CODES.has(code)) return { kind: 'empty', code };
  return { kind: 'failed', code, message: err instanceof Error ? err.message : String(err) };
}

function codeOf(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'EUNKNOWN';
}
