/**
 * The `/status` document (design.md "Admin contract"). Beyond the contract's fields, each server shows its health
 * flags one per source (so an operator sees that a drained server is also failing its checks, say) and its effective
 * weight (slow start); each upstream shows whether it is in panic.
 *
 * For the dashboard it also carries the listeners, each server's passive ejections so far, and each server's and
 * upstream's last minute of traffic (traffic-window.ts). A process that does not carry the traffic itself (the
 * cluster primary) shows `null` for what only the traffic could tell.
 */
import type { ListenerConfig } from '../config/schema.js';
import type { Upstream } from '../upstream/upstream.js';
import { Tally, type LastMinute, type TrafficWindows } from './traffic-window.js';

export type { LastMinute };

export interface ServerStatus {
  address: string;
  state: string;
  weight: number;
  effective_weight: number;
  backup: boolean;
  active_requests: number;
  health: {
    active_check_failed: boolean;
    /** Milliseconds left of a passive ejection; 0 when not ejected. */
    ejected_for_ms: number;
    draining: boolean;
    disabled: boolean;
  };
  /** Passive ejections since the process started (`ballast_outlier_ejections_total`, all reasons); null when unknown here. */
  ejections: number | null;
  last_minute: LastMinute | null;
}

export interface ListenerStatus {
  name: string;
  protocol: 'http' | 'tcp';
  /** The bound address ("0.0.0.0:8080"), with the port the system chose when the config says 0. */
  listen: string;
  /** The upstreams its routes send to, in route order, each once. */
  upstreams: string[];
  active_connections: number;
}

export interface StatusDocument {
  /** Null where this process does not know them (the cluster primary's own listeners are its workers'). */
  listeners?: ListenerStatus[] | null;
  upstreams: {
    name: string;
    balance: string;
    panic: boolean;
    /** The upstream's servers together. */
    last_minute?: LastMinute | null;
    servers: ServerStatus[];
  }[];
}

/** A listener as the running instance has it: its config and the port it is bound to. */
export interface ListenerView {
  readonly name: string;
  readonly config: ListenerConfig;
  readonly port: number;
}

/** What /status shows beyond the upstreams' health, from the process that carries the traffic. */
export interface StatusExtras {
  readonly traffic?: TrafficWindows;
  /** Ejections so far per server. */
  readonly ejections?: (upstream: string, server: string) => number;
  readonly listeners?: readonly ListenerStatus[];
}

/**
 * `inflight`: requests in flight per server when this process is not the one forwarding them (the cluster primary
 * passes its workers' sum); by default, this process's own count.
 */
export function statusDocument(
  upstreams: Iterable<Upstream>,
  inflight?: (upstream: string, server: string) => number,
  extras: StatusExtras = {},
): StatusDocument {
  const { traffic, ejections } = extras;
  const out: StatusDocument = { listeners: extras.listeners === undefined ? null : [...extras.listeners], upstreams: [] };
  for (const u of upstreams) {
    const now = u.now();
    const whole = traffic === undefined ? undefined : new Tally();
    const servers = u.hosts.map((h): ServerStatus => {
      let lastMinute: LastMinute | null = null;
      if (traffic !== undefined) {
        const tally = new Tally();
        traffic.addTo(tally, h, now);
        traffic.addTo(whole!, h, now);
        lastMinute = tally.summary();
      }
      return {
        address: h.address,
        state: h.state(now),
        weight: h.weight,
        effective_weight: Math.round(h.effectiveWeight * 1000) / 1000,
        backup: h.backup,
        active_requests: inflight === undefined ? h.inflight : inflight(u.name, h.address),
        health: {
          active_check_failed: h.activeCheckFailed,
          ejected_for_ms: Math.max(0, Math.round(h.ejectedUntil - now)),
          draining: h.draining,
          disabled: h.disabled,
        },
        ejections: ejections === undefined ? null : ejections(u.name, h.address),
        last_minute: lastMinute,
      };
    });
    out.upstreams.push({ name: u.name, balance: u.config.balance, panic: u.panicking(now), last_minute: whole?.summary() ?? null, servers });
  }
  return out;
}

/** The listeners' part of /status; `connections(name)` is the listener's open client connections. */
export function listenerStatus(listeners: Iterable<ListenerView>, connections: (listener: string) => number): ListenerStatus[] {
  const out: ListenerStatus[] = [];
  for (const l of listeners) {
    const c = l.config;
    let port = c.listen.port;
    try {
      port = l.port;
    } catch {
      // Not bound (closing during a reload or a stop): the configured port is what there is.
    }
    const host = c.listen.host.includes(':') ? `[${c.listen.host}]` : c.listen.host;
    out.push({
      name: l.name,
      protocol: c.protocol,
      listen: `${host}:${port}`,
      upstreams: listenerUpstreams(c),
      active_connections: connections(l.name),
    });
  }
  return out;
}

/** Every upstream a listener sends to: its routes' and, on a tcp listener, its own (the default with routes). */
function listenerUpstreams(c: ListenerConfig): string[] {
  const names = (c.routes ?? []).map((r) => r.upstream);
  if (c.protocol === 'tcp' && c.upstream !== undefined) names.unshift(c.upstream);
  return [...new Set(names)];
}
