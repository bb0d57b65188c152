/**
 * The runtime API for servers (HAProxy's `set server ... state drain|maint|ready`), as admin POST routes:
 *
 *   POST /servers/drain?server=ADDR[&upstream=NAME]     finish what is in flight, take no new requests
 *   POST /servers/undrain?server=ADDR[&upstream=NAME]
 *   POST /servers/disable?server=ADDR[&upstream=NAME]   out of rotation (admin maintenance)
 *   POST /servers/enable?server=ADDR[&upstream=NAME]
 *
 * Without `upstream`, the action applies to the server in every upstream that lists it (one machine going down for
 * maintenance). Each sets its own flag on the host, so an admin action never hides or undoes a health verdict.
 * The answer lists the servers touched with their state and requests still in flight, so a caller can poll
 * /status until a drained server's `active_requests` reaches 0.
 * In cluster mode the primary runs these and shares each change with its workers (`onChange`).
 */
import type { HealthEvent } from '../health/shared-health.js';
import type { Logger } from '../log.js';
import type { Host } from '../upstream/host.js';
import type { Upstream } from '../upstream/upstream.js';
import { AdminError } from './server.js';

type Action = 'drain' | 'undrain' | 'disable' | 'enable';

const APPLY: { readonly [A in Action]: (host: Host, now: number) => void } = {
  drain: (h, now) => h.setDraining(true, now),
  undrain: (h, now) => h.setDraining(false, now),
  disable: (h, now) => h.setDisabled(true, now),
  enable: (h, now) => h.setDisabled(false, now),
};

export interface ServerActionResult {
  readonly action: Action;
  readonly servers: { upstream: string; address: string; state: string; active_requests: number }[];
}

/** The POST routes above, for AdminServer's `actions`; `onChange` hears of every server whose admin flags were set. */
export function serverActions(
  upstreams: () => Iterable<Upstream>,
  log: Logger,
  onChange?: (event: Extract<HealthEvent, { kind: 'admin' }>) => void,
): ReadonlyMap<string, (params: URLSearchParams) => ServerActionResult> {
  const routes = new Map<string, (params: URLSearchParams) => ServerActionResult>();
  for (const action of Object.keys(APPLY) as Action[]) {
    routes.set(`/servers/${action}`, (params) => run(action, params, upstreams(), log, onChange));
  }
  return routes;
}

function run(
  action: Action,
  params: URLSearchParams,
  upstreams: Iterable<Upstream>,
  log: Logger,
  onChange: ((event: Extract<HealthEvent, { kind: 'admin' }>) => void) | undefined,
): ServerActionResult {
  const address = params.get('server');
  if (address === null || address === '') throw new AdminError(400, 'expected ?server=HOST:PORT (and optionally &upstream=NAME)');
  const upstreamName = params.get('upstream');
  const matches: { upstream: Upstream; host: Host }[] = [];
  let upstreamFound = false;
  for (const upstream of upstreams) {
    if (upstreamName !== null && upstream.name !== upstreamName) continue;
    upstreamFound = true;
    const host = upstream.host(address);
    if (host !== undefined) matches.push({ upstream, host });
  }
  if (upstreamName !== null && !upstreamFound) throw new AdminError(404, `no upstream is named "${upstreamName}"`);
  if (matches.length === 0) throw new AdminError(404, `no server ${address}${upstreamName === null ? '' : ` in upstream "${upstreamName}"`}`);
  const servers: ServerActionResult['servers'] = [];
  for (const { upstream, host } of matches) {
    const now = upstream.now();
    APPLY[action](host, now);
    // Draining or disabling changes the panic share; report a flip now rather than at the next request.
    upstream.panicking(now);
    onChange?.({ kind: 'admin', upstream: upstream.name, server: host.address, draining: host.draining, disabled: host.disabled });
    const state = host.state(now);
    log.info({ upstream: upstream.name, server: host.address, action, state, active_requests: host.inflight }, `admin: server ${action}`);
    servers.push({ upstream: upstream.name, address: host.address, state, active_requests: host.inflight });
  }
  return { action, servers };
}
