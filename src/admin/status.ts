/**
 * The `/status` document (design.md "Admin contract"). Beyond the contract's fields, each server shows its health
 * flags one per source (so an operator sees that a drained server is also failing its checks, say) and its effective
 * weight (slow start); each upstream shows whether it is in panic.
 */
import type { Upstream } from '../upstream/upstream.js';

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
}

export interface StatusDocument {
  upstreams: {
    name: string;
    balance: string;
    panic: boolean;
    servers: ServerStatus[];
  }[];
}

/**
 * `inflight`: requests in flight per server when this process is not the one forwarding them (the cluster primary
 * passes its workers' sum); by default, this process's own count.
 */
export function statusDocument(upstreams: Iterable<Upstream>, inflight?: (upstream: string, server: string) => number): StatusDocument {
  const out: StatusDocument = { upstreams: [] };
  for (const u of upstreams) {
    const now = u.now();
    out.upstreams.push({
      name: u.name,
      balance: u.config.balance,
      panic: u.panicking(now),
      servers: u.hosts.map((h) => ({
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
      })),
    });
  }
  return out;
}
