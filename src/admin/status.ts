/** The `/status` document (design.md "Admin contract"). */
import type { Upstream } from '../upstream/upstream.js';

export interface StatusDocument {
  upstreams: {
    name: string;
    balance: string;
    servers: { address: string; state: string; weight: number; backup: boolean; active_requests: number }[];
  }[];
}

export function statusDocument(upstreams: Iterable<Upstream>): StatusDocument {
  const out: StatusDocument = { upstreams: [] };
  for (const u of upstreams) {
    const now = u.now();
    out.upstreams.push({
      name: u.name,
      balance: u.config.balance,
      servers: u.hosts.map((h) => ({
        address: h.address,
        state: h.state(now),
        weight: h.weight,
        backup: h.backup,
        active_requests: h.inflight,
      })),
    });
  }
  return out;
}
