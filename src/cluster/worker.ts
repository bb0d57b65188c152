/**
 * A cluster worker: the proxy listeners (http and tcp) of the config the primary sends, bound as it says (a socket of
 * this worker's own, or the one every worker shares: accept.ts) and accepting their own connections, with passive
 * outlier detection on its own traffic, and neither an admin listener, active probes nor DNS lookups (the primary
 * runs them, once, and sends the servers it finds). Its Ballast's health comes from a RemoteHealthFeed: what the primary decides (probe verdicts, admin actions,
 * other workers' ejections) arrives as messages and is applied to it; this worker's own ejections go to the primary,
 * which shares them.
 *
 * It drains and exits on `stop`, on SIGTERM/SIGINT (a second signal exits at once), and when the primary is gone.
 */
import cluster from 'node:cluster';
import { Ballast } from '../ballast.js';
import type { Config, ServerConfig } from '../config/schema.js';
import { RemoteHealthFeed } from '../health/health-feed.js';
import type { HostHealth } from '../health/shared-health.js';
import type { Logger } from '../log.js';
import { bindProxyListenersWithReusePort } from '../util/listen.js';
import type { AcceptMode } from './accept.js';
import { clusterLogger } from './logger.js';
import { isToWorker, send, type Inflight, type Members, type ToPrimary, type ToWorker } from './messages.js';

export function runWorker(): void {
  if (process.send === undefined || !cluster.isWorker) throw new Error('runWorker: not a cluster worker');
  const id = cluster.worker?.id ?? 0;
  let ballast: Ballast | undefined;
  let feed: RemoteHealthFeed | undefined;
  /** The servers the primary's discovery found, per upstream, as last told: what a new or reloaded upstream starts from. */
  const members = new Map<string, readonly ServerConfig[]>();
  const resetMembers = (snapshot: Members): void => {
    members.clear();
    for (const [upstream, servers] of Object.entries(snapshot)) members.set(upstream, servers);
  };
  /** A set that arrived while upstreams were being built went to the ones they replace: apply the latest again. */
  const catchUpMembers = (): void => {
    for (const [upstream, servers] of members) ballast?.setMembers(upstream, servers);
  };
  let log: Logger | undefined;
  /** A reload that arrived before the listeners were bound: run once they are. */
  let deferredReload: Extract<ToWorker, { type: 'reload' }> | undefined;
  let stopping: Promise<void> | undefined;

  const tell = (message: ToPrimary): void => {
    void send(process, message);
  };

  const stop = (why: string): Promise<void> => {
    stopping ??= (async () => {
      log?.info({ reason: why }, 'worker draining');
      await ballast?.stop();
      log?.flush();
    })().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`worker ${id}: shutdown failed: ${String(err)}\n`);
        process.exit(1);
      },
    );
    return stopping;
  };

  const start = async (config: Config, health: readonly HostHealth[], snapshot: Members, accept: AcceptMode): Promise<void> => {
    log = clusterLogger(config.logging.level, { worker: id, pid: process.pid });
    // Before anything is bound, and for every listener a reload binds later too.
    bindProxyListenersWithReusePort(accept === 'reuseport');
    // Created before anything is bound: health news that arrives while starting applies before any request is served.
    feed = new RemoteHealthFeed(health, (event) => tell({ type: 'health', event }));
    try {
      resetMembers(snapshot);
      ballast = await Ballast.start(config, { log, bind: 'proxy', health: feed, discovery: { follow: members } });
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      log.error({ err }, 'worker could not start');
      log.flush();
      await send(process, { type: 'failed', error });
      process.exit(1);
    }
    catchUpMembers();
    if (stopping === undefined) tell({ type: 'ready' });
    if (deferredReload !== undefined) void reload(deferredReload);
    deferredReload = undefined;
  };

  const reload = async (m: Extract<ToWorker, { type: 'reload' }>): Promise<void> => {
    if (ballast === undefined) {
      deferredReload = m;
      return;
    }
    feed?.resetSnapshot(m.health);
    resetMembers(m.members);
    try {
      await ballast.reload(m.config);
      catchUpMembers();
      tell({ type: 'reloaded', id: m.id });
    } catch (err) {
      log?.error({ err }, 'reload failed');
      tell({ type: 'reloaded', id: m.id, error: err instanceof Error ? err.message : String(err) });
    }
  };

  const inflight = (): Inflight[] => {
    const out: Inflight[] = [];
    for (const u of ballast?.upstreams.values() ?? []) for (const h of u.hosts) out.push({ upstream: u.name, server: h.address, requests: h.inflight });
    return out;
  };

  const onMessage = (m: ToWorker): void => {
    switch (m.type) {
      case 'init':
        if (ballast === undefined && log === undefined) void start(m.config, m.health, m.members, m.accept);
        return;
      case 'members':
        members.set(m.upstream, m.servers);
        ballast?.setMembers(m.upstream, m.servers);
        return;
      case 'health':
        feed?.apply(m.event);
        return;
      case 'reload':
        void reload(m);
        return;
      case 'query':
        if (m.query === 'inflight') tell({ type: 'inflight', id: m.id, inflight: inflight() });
        else if (ballast !== undefined) {
          ballast.metrics.registry.getMetricsAsJSON().then(
            (metrics) => tell({ type: 'metrics', id: m.id, metrics }),
            (err: unknown) => log?.error({ err }, 'metrics collection failed'),
          );
        }
        return;
      case 'stop':
        void stop('stop');
        return;
    }
  };

  process.on('message', (m: unknown) => {
    if (!isToWorker(m)) return;
    try {
      onMessage(m);
    } catch (err) {
      (log ?? console).error({ err }, 'worker message handler failed');
    }
  });
  // The primary is gone (killed, or exited at a second signal): nobody re-forks us or routes to us; drain and go.
  process.on('disconnect', () => void stop('primary gone'));
  let signalled = false;
  const onSignal = (signal: string): void => {
    if (signalled) process.exit(1);
    signalled = true;
    void stop(signal);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // SIGHUP is the primary's to handle (a terminal hang-up reaches the whole group): the new config comes from it.
  process.on('SIGHUP', () => {});
  tell({ type: 'hello' });
}
