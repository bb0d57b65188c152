/**
 * The cluster primary (`workers: N > 1` or `auto`): node:cluster forks N workers that run the proxy listeners
 * (worker.ts) and accept their connections themselves (accept.ts: a socket of their own each where Node has
 * SO_REUSEPORT, else one socket they share; never connections the primary accepted). The primary serves no proxy
 * traffic; it runs a Ballast of its own for the upstreams and their health, with a LocalHealthFeed (so it probes
 * each server once, not once per worker, and logs panic and ejection ends once), and wires the pieces around it:
 *
 * - accept.ts: how the workers bind, and the check that a new address is nobody else's;
 * - supervisor.ts: forks the workers, forks again into the place of one that dies, drains them all at shutdown;
 * - worker-rpc.ts: questions to the workers and their answers (metrics, requests in flight, reloads);
 * - health-relay.ts: the primary's verdicts and admin actions to every worker, a worker's ejections to the others;
 *   the servers DNS discovery finds go to every worker the same way (workers do not resolve: src/discovery/);
 * - cluster-admin.ts: the admin endpoint over the whole cluster;
 * - cluster-reload.ts: a reload (SIGHUP, POST /reload, --watch: the primary's `reloader`), applied in the primary
 *   and every worker, or rolled back everywhere.
 *
 * A worker starts from an `init` with the config in force and every server's health as of then. Signals:
 * SIGTERM/SIGINT drain every worker and exit 0 after them; SIGHUP reloads (cli.ts).
 *
 * Per-worker, not shared: round-robin position, circuit-breaker limits (`limits.*`, so N workers allow N times
 * each), retry budgets, slow start and outlier counters (each worker ejects on its own traffic).
 */
import type { Worker } from 'node:cluster';
import type { AdminServer } from '../admin/server.js';
import { Ballast } from '../ballast.js';
import type { Config, ServerConfig } from '../config/schema.js';
import { LocalHealthFeed } from '../health/health-feed.js';
import type { Logger } from '../log.js';
import { ConfigReloader } from '../reload/config-reloader.js';
import { clusterAdmin } from './cluster-admin.js';
import { reloadCluster } from './cluster-reload.js';
import { HealthRelay } from './health-relay.js';
import { clusterLogger } from './logger.js';
import { send, type ToPrimary } from './messages.js';
import { acceptMode, ensureFree, workersAcceptThemselves, type AcceptMode } from './accept.js';
import { Supervisor } from './supervisor.js';
import { isAnswer, WorkerRpc } from './worker-rpc.js';

/** `workers` as the config says it, as a number of processes. */
export function workerCount(workers: Config['workers'], cores: number): number {
  return workers === 'auto' ? Math.max(1, cores) : workers;
}

export class ClusterPrimary {
  readonly log: Logger;
  /** Re-reads the file for SIGHUP, POST /reload and --watch, and applies it to the whole cluster. */
  readonly reloader: ConfigReloader;
  readonly #count: number;
  readonly #accept: AcceptMode;
  readonly #ballast: Ballast;
  readonly #rpc: WorkerRpc;
  readonly #relay: HealthRelay;
  readonly #supervisor: Supervisor;
  readonly #admin: AdminServer;
  #stopping: Promise<void> | undefined;

  private constructor(file: string, count: number, accept: AcceptMode, ballast: Ballast, feed: LocalHealthFeed, log: Logger) {
    this.#count = count;
    this.#accept = accept;
    this.#ballast = ballast;
    this.log = log;
    this.#rpc = new WorkerRpc(log);
    this.#supervisor = new Supervisor(count, log, {
      init: () => ({ type: 'init', config: ballast.config, health: ballast.health.snapshot(), members: ballast.members(), accept }),
      message: (worker, m) => this.#onMessage(worker, m),
      exited: (worker) => this.#rpc.exited(worker),
    });
    this.#relay = new HealthRelay(feed, () => this.#supervisor.initialized(), log);
    this.reloader = new ConfigReloader({ file, current: () => ballast.config, apply: (next) => this.#apply(next), metrics: ballast.metrics, log });
    this.#admin = clusterAdmin({
      ballast,
      feed,
      reloader: this.reloader,
      rpc: this.#rpc,
      workers: () => this.#supervisor.serving(),
      ready: () => this.#supervisor.started && this.#stopping === undefined && this.#supervisor.serving().length > 0,
      log,
    });
  }

  /**
   * See how the workers can accept (and, if each binds its own socket, that no other process holds a listener's
   * address), probe every server once (as a single process does before it binds), bind the admin listener, fork the
   * workers and resolve when every one of them is serving. Rejects, with everything stopped, if a worker cannot start.
   */
  static async start(file: string, config: Config, count: number): Promise<ClusterPrimary> {
    const log = clusterLogger(config.logging.level, { role: 'primary', pid: process.pid });
    const accept = await acceptMode();
    if (accept === 'reuseport') await ensureFree(config.listeners);
    workersAcceptThemselves();
    const feed = new LocalHealthFeed();
    // Changes during the first probes reach no worker (the relay subscribes after them): none is forked yet, and
    // each starts from a snapshot. The same holds for discovered servers: the primary alone looks them up, and
    // tells every worker each new set, ahead of the health news of the servers it adds (one ordered channel each).
    let relayMembers: ((upstream: string, servers: readonly ServerConfig[]) => void) | undefined;
    const ballast = await Ballast.start(config, { log, bind: 'none', health: feed, discovery: { publish: (u, s) => relayMembers?.(u, s) } });
    const primary = new ClusterPrimary(file, count, accept, ballast, feed, log);
    relayMembers = (upstream, servers) => {
      for (const worker of primary.#supervisor.initialized()) void send(worker, { type: 'members', upstream, servers });
    };
    try {
      await primary.#admin.listen(config.admin.listen.host, config.admin.listen.port);
      await primary.#supervisor.start();
    } catch (err) {
      await primary.stop();
      throw err;
    }
    log.info({ workers: count, workerPids: primary.#supervisor.pids(), accept, node: process.version }, 'cluster ready');
    return primary;
  }

  #onMessage(worker: Worker, m: ToPrimary): void {
    if (isAnswer(m)) this.#rpc.answered(worker, m);
    else if (m.type === 'health') this.#relay.fromWorker(worker, m.event);
  }

  /** A validated config for the whole cluster (see cluster-reload.ts); the reloader runs one at a time. */
  async #apply(next: Config): Promise<void> {
    if (this.#stopping !== undefined) throw new Error('the cluster is stopping');
    await reloadCluster({
      ballast: this.#ballast,
      rpc: this.#rpc,
      workers: () => this.#supervisor.initialized(),
      count: this.#count,
      accept: this.#accept,
      log: this.log,
    }, next);
  }

  /**
   * Drain: every worker finishes its requests in flight (up to `shutdown.drain_timeout`) and exits; then the primary
   * stops its probes and the admin listener. Idempotent.
   */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      await this.#supervisor.stop(this.#ballast.config.shutdown.drain_timeout);
      await this.#ballast.stop(0);
      if (this.#admin.server.listening) await this.#admin.close();
      this.log.flush();
    })();
    return this.#stopping;
  }
}
