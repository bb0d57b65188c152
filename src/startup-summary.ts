/**
 * What a just-started Ballast is doing, one line each: every listener (address and where it sends traffic), every
 * upstream (strategy, servers, how many passed their first health check, how they are checked) and the admin
 * address. Logged once at start-up, so a new user sees in the first screen where to send requests and where to look.
 * Each line has `kind: "startup"`; its message says everything, so pretty logs print the message alone.
 */
import type { Ballast } from './ballast.js';
import type { Config, HealthCheckConfig, ListenerConfig, UpstreamConfig } from './config/schema.js';
import type { Logger } from './log.js';

/** A running single-process Ballast: bound ports and the first health picture are known. */
export function logStartupSummary(log: Logger, ballast: Ballast): void {
  for (const l of [...ballast.httpListeners, ...ballast.tcpListeners]) logListener(log, l.config, l.port);
  for (const upstream of ballast.upstreams.values()) {
    const now = upstream.now();
    const down = upstream.hosts.filter((h) => !h.isAvailable(now)).map((h) => h.address);
    logUpstream(log, upstream.config, upstream.hosts, down);
  }
  if (ballast.admin !== undefined) logAdmin(log, ballast.config, ballast.adminAddress.port);
}

/** A cluster primary: its workers bind the listeners, so ports are the configured ones and health is still coming. */
export function logClusterSummary(log: Logger, config: Config): void {
  for (const l of config.listeners) logListener(log, l, l.listen.port);
  for (const u of config.upstreams) logUpstream(log, u, u.servers, undefined);
  logAdmin(log, config, config.admin.listen.port);
}

function logListener(log: Logger, l: ListenerConfig, port: number): void {
  const address = hostPort(l.listen.host, port);
  if (l.protocol === 'tcp') {
    if (l.routes === undefined) {
      log.info({ kind: 'startup', listener: l.name, protocol: 'tcp', address, upstream: l.upstream }, `listener ${l.name}: tcp ${address} → upstream ${l.upstream}`);
      return;
    }
    const sniRoutes = [...l.routes.map((r) => `sni ${r.match.sni} → ${r.upstream}`), `otherwise ${l.upstream === undefined ? 'closed' : `→ ${l.upstream}`}`];
    log.info({ kind: 'startup', listener: l.name, protocol: 'tcp', address, routes: sniRoutes }, `listener ${l.name}: tcp ${address}, TLS passthrough (${sniRoutes.join(', ')})`);
    return;
  }
  const routes = l.routes.map((r) => `${r.match?.host ?? ''}${r.match?.path_prefix ?? (r.match?.host ? '' : '*')} → ${r.upstream}`);
  log.info({ kind: 'startup', listener: l.name, protocol: 'http', address, routes }, `listener ${l.name}: http://${address} (${routes.join(', ')})`);
}

/**
 * `members`: the servers known now (with discovery, those found so far); `down`: the servers not available now, or
 * undefined where this process does not know yet.
 */
function logUpstream(log: Logger, u: UpstreamConfig, members: readonly { readonly backup: boolean }[], down: readonly string[] | undefined): void {
  const total = members.length;
  const backups = members.filter((s) => s.backup).length;
  const dns = u.discovery?.dns;
  const check = u.health_check === undefined ? 'none' : describeCheck(u.health_check);
  const servers = `${total} server${total === 1 ? '' : 's'}${backups > 0 ? ` (${backups} backup)` : ''}${dns === undefined ? '' : ` (DNS ${dns.type} ${dns.name})`}`;
  const health = down === undefined ? '' : down.length === 0 ? ', all available' : `, ${total - down.length} available (down: ${down.join(', ')})`;
  const fields = { kind: 'startup', upstream: u.name, balance: u.balance, servers: total, ...(down !== undefined && { available: total - down.length, down }), health_check: check };
  const checks = u.health_check === undefined ? 'no active health checks' : `checked by ${check}`;
  log.info(fields, `upstream ${u.name}: ${u.balance} over ${servers}${health}; ${checks}`);
}

function logAdmin(log: Logger, config: Config, port: number): void {
  const url = `http://${hostPort(config.admin.listen.host, port)}`;
  log.info({ kind: 'startup', admin: url }, `admin: ${url} (/status, /metrics, /healthz, /ready)`);
}

function describeCheck(c: HealthCheckConfig): string {
  const every = `every ${formatMs(c.interval)}`;
  return c.type === 'tcp' ? `tcp connect ${every}` : `http ${c.method} ${c.path} ${every}`;
}

function formatMs(ms: number): string {
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** Port 0 is left to the system: in a cluster the primary does not know which port a worker got. */
function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port === 0 ? '0 (a free port)' : port}`;
}
