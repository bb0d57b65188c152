/**
 * The cluster primary's admin endpoint: the routes a single process serves, answered for the whole cluster.
 *
 * - /metrics: every serving worker's registry and the primary's, summed by prom-client's AggregatorRegistry. The
 *   gauges that mirror health come from the primary only: its view is the truth, and N copies would sum to N.
 * - /status, and the answers of the drain/disable actions: the primary's view of health, with `active_requests`
 *   summed over the workers (the primary itself carries no traffic).
 * - The actions are applied here and published to the primary's health feed, which relays them to every worker;
 *   POST /reload reloads the whole cluster from here (cluster-reload.ts).
 *
 * A worker that does not answer within QUERY_TIMEOUT_MS is left out (and a warning logged), never waited for.
 */
import type { Worker } from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import { AdminServer } from '../admin/server.js';
import { serverActions, type ServerActionResult } from '../admin/server-actions.js';
import { RELOAD_PATH, reloadAction } from '../admin/reload-action.js';
import { statusDocument } from '../admin/status.js';
import type { Ballast } from '../ballast.js';
import type { LocalHealthFeed } from '../health/health-feed.js';
import type { ConfigReloader } from '../reload/config-reloader.js';
import type { Logger } from '../log.js';
import type { Inflight, MetricsJson } from './messages.js';
import type { WorkerRpc } from './worker-rpc.js';

/**
 * Metrics that mirror health, and the config reloads: the primary's view is the truth (it probes, and it alone
 * reloads the file), so the workers' copies are left out of the sum (N start timestamps would add up to nonsense).
 */
const PRIMARY_VIEW = new Set([
  'ballast_upstream_server_healthy',
  'ballast_upstream_panic',
  'ballast_config_reloads_total',
  'ballast_config_last_reload_success_timestamp_seconds',
]);
/** How long /metrics and /status wait for a worker's answer. */
const QUERY_TIMEOUT_MS = 2000;

export interface ClusterAdminDeps {
  /** The primary's Ballast: upstreams and health, and its own metrics (probes, health gauges). */
  readonly ballast: Ballast;
  readonly feed: LocalHealthFeed;
  /** POST /reload: the primary reloads the file everywhere, as on SIGHUP. */
  readonly reloader: ConfigReloader;
  readonly rpc: WorkerRpc;
  /** The workers serving now. */
  readonly workers: () => readonly Worker[];
  readonly ready: () => boolean;
  readonly log: Logger;
}

export function clusterAdmin(deps: ClusterAdminDeps): AdminServer {
  const { ballast, log } = deps;
  const upstreams = () => ballast.upstreams.values();
  const actions = serverActions(upstreams, log, (event) => deps.feed.publish(event));

  /** Every worker's registry and ours, summed; health gauges from ours only. */
  const metricsText = async (): Promise<string> => {
    const [own, answers] = await Promise.all([
      ballast.metrics.registry.getMetricsAsJSON(),
      deps.rpc.askAll(deps.workers(), (id) => ({ type: 'query', id, query: 'metrics' }), 'metrics', QUERY_TIMEOUT_MS),
    ]);
    const all: MetricsJson[] = [own, ...answers.map((a) => a.metrics.filter((m) => !PRIMARY_VIEW.has(m.name)))];
    return AggregatorRegistry.aggregate(all).metrics();
  };

  /** Requests in flight per server, summed over the workers. */
  const inflight = async (): Promise<(upstream: string, server: string) => number> => {
    const answers = await deps.rpc.askAll(deps.workers(), (id) => ({ type: 'query', id, query: 'inflight' }), 'inflight', QUERY_TIMEOUT_MS);
    const sums = new Map<string, number>();
    const key = (upstream: string, server: string) => `${upstream}\n${server}`;
    for (const a of answers) for (const i of a.inflight as Inflight[]) sums.set(key(i.upstream, i.server), (sums.get(key(i.upstream, i.server)) ?? 0) + i.requests);
    return (upstream, server) => sums.get(key(upstream, server)) ?? 0;
  };

  const withInflight = async (result: ServerActionResult): Promise<ServerActionResult> => {
    const count = await inflight();
    return { ...result, servers: result.servers.map((s) => ({ ...s, active_requests: count(s.upstream, s.address) })) };
  };

  return new AdminServer({
    metrics: ballast.metrics,
    log,
    upstreams,
    ready: deps.ready,
    token: ballast.config.admin.token,
    allowedHosts: () => ballast.config.admin.allowed_hosts,
    actions: new Map<string, (params: URLSearchParams) => unknown>([
      ...[...actions].map(([path, run]) => [path, (params: URLSearchParams) => withInflight(run(params))] as const),
      [RELOAD_PATH, reloadAction(deps.reloader)],
    ]),
    metricsText,
    status: async () => statusDocument(upstreams(), await inflight()),
  });
}
