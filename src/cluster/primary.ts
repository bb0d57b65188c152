/**
 * The cluster primary (`workers: N > 1` or `auto`): node:cluster forks N workers that run the proxy listeners
 * (worker.ts; on Linux the primary accepts and hands connections out round-robin). The primary itself binds no proxy
 * listener. It runs a Ballast of its own for the upstreams and their health, on a LocalHealthFeed, and:
 *
 * - the active health checks, once per server (not once per worker), on its own Upstream/Host objects, and sends
 *   every flip to every worker; a worker starting (or re-forked) gets a snapshot of every server's health first;
 * - the passive ejections workers report: applied here (so /status shows them) and relayed to the other workers,
 *   so a server one worker ejects gets no traffic from any;
 * - the admin endpoint: /status (health from here, `active_requests` summed over the workers), /metrics (every
 *   worker's registry and this one's, summed by prom-client's AggregatorRegistry; the gauges that mirror health come
 *   from here only), the drain/disable actions (applied here and sent to every worker);
 * - signals: SIGTERM/SIGINT drain every worker and exit 0 after them; SIGHUP re-reads the file and reloads here,
 *   then in every worker (and back to the previous config everywhere if a worker refuses the new one).
 *
 * A worker that dies unexpectedly is forked again after a backoff (100 ms doubling to 10 s; reset once a worker has
 * served for 30 s). Every message handler tolerates a worker that is gone: sends to it resolve false, questions
 * to it resolve without its answer when it exits or after a timeout.
 *
 * Per-worker, not shared: round-robin position, circuit-breaker limits (`limits.*`, so N workers allow N times
 * each), retry budgets, slow start and outlier counters (each worker ejects on its own traffic).
 */
import cluster, { type Worker } from 'node:cluster';
import { fileURLToPath } from 'node:url';
import { AggregatorRegistry } from 'prom-client';
import { AdminServer } from '../admin/server.js';
import { serverActions, type ServerActionResult } from '../admin/server-actions.js';
import { statusDocument } from '../admin/status.js';
import { adminChanged, Ballast } from '../ballast.js';
import { formatConfigErrors, loadConfigFile } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { LocalHealthFeed } from '../health/health-feed.js';
import type { HealthEvent } from '../health/shared-health.js';
import type { Logger } from '../log.js';
import { clusterLogger } from './logger.js';
import { isToPrimary, send, type Inflight, type MetricsJson, type ToPrimary, type ToWorker } from './messages.js';

/** Metrics that mirror health: the primary's view is the truth, so the workers' copies are left out of the sum. */
const PRIMARY_VIEW = new Set(['ballast_upstream_server_healthy', 'ballast_upstream_panic']);
/** How long /metrics and /status wait for a worker's answer; a worker that does not answer is left out. */
const QUERY_TIMEOUT_MS = 2000;
const RELOAD_TIMEOUT_MS = 15_000;
const START_TIMEOUT_MS = 30_000;
/** Beyond `shutdown.drain_timeout`, how long a draining worker may take to exit before it is killed. */
const EXIT_GRACE_MS = 5000;
const BACKOFF_MS = { base: 100, max: 10_000, resetAfter: 30_000 };

type SlotState = 'forked' | 'initialized' | 'ready';

/** One of the N worker places: a worker dies, another is forked into its slot. */
interface Slot {
  worker: Worker | undefined;
  /** forked: no `init` sent yet; initialized: `init` sent, binding; ready: serving. */
  state: SlotState;
  readyAt: number;
  crashes: number;
  refork: NodeJS.Timeout | undefined;
}

interface Pending {
  readonly worker: Worker;
  readonly resolve: (answer: ToPrimary | undefined) => void;
  readonly timer: NodeJS.Timeout;
}

/** `workers` as the config says it, as a number of processes. */
export function workerCount(workers: Config['workers'], cores: number): number {
  return workers === 'auto' ? Math.max(1, cores) : workers;
}

export class ClusterPrimary {
  readonly log: Logger;
  readonly #file: string;
  #config: Config;
  readonly #count: number;
  readonly #ballast: Ballast;
  readonly #feed: LocalHealthFeed;
  readonly #admin: AdminServer;
  readonly #slots: Slot[] = [];
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #started = false;
  #startup: { resolve: () => void; reject: (err: Error) => void } | undefined;
  #stopping: Promise<void> | undefined;
  #exited: (() => void) | undefined;
  #reloading: Promise<void> = Promise.resolve();

  private constructor(file: string, config: Config, count: number, ballast: Ballast, feed: LocalHealthFeed, log: Logger) {
    this.#file = file;
    this.#config = config;
    this.#count = count;
    this.#ballast = ballast;
    this.#feed = feed;
    this.log = log;
    // Every change decided here (a probe verdict, the early end of an ejection, an admin action) goes to every worker.
    feed.subscribe((event) => this.#broadcast({ type: 'health', event }));
    const actions = serverActions(() => this.#ballast.upstreams.values(), log, (event) => feed.publish(event));
    this.#admin = new AdminServer({
      metrics: ballast.metrics,
      log,
      upstreams: () => this.#ballast.upstreams.values(),
      ready: () => this.#started && this.#stopping === undefined && this.#slots.some((s) => s.state === 'ready'),
      token: config.admin.token,
      actions: new Map([...actions].map(([path, run]) => [path, (params: URLSearchParams) => this.#withInflight(run(params))])),
      metricsText: () => this.#metricsText(),
      status: async () => statusDocument(this.#ballast.upstreams.values(), await this.#inflight()),
    });
  }

  /**
   * Probe every server once (as a single process does before it binds), bind the admin listener, fork the workers
   * and resolve when every one of them is serving. Rejects, with everything stopped, if a worker cannot start.
   */
  static async start(file: string, config: Config, count: number): Promise<ClusterPrimary> {
    const log = clusterLogger(config.logging.level, { role: 'primary', pid: process.pid });
    const feed = new LocalHealthFeed();
    // Changes during the first probes reach no worker (nothing subscribes to the feed yet): none is forked yet, and
    // each starts from a snapshot.
    const ballast = await Ballast.start(config, { log, bind: 'none', health: feed });
    const primary = new ClusterPrimary(file, config, count, ballast, feed, log);
    try {
      await primary.#admin.listen(config.admin.listen.host, config.admin.listen.port);
      await primary.#fork();
    } catch (err) {
      await primary.stop();
      throw err;
    }
    primary.#started = true;
    log.info({ workers: count, workerPids: primary.#slots.map((s) => s.worker?.process.pid) }, 'cluster ready');
    return primary;
  }

  async #fork(): Promise<void> {
    cluster.setupPrimary({ exec: fileURLToPath(new URL('./worker-main.js', import.meta.url)), args: [], silent: false });
    cluster.on('message', (worker, message: unknown) => {
      if (!isToPrimary(message)) return;
      try {
        this.#onMessage(worker, message);
      } catch (err) {
        this.log.error({ err, worker: worker.id }, 'cluster message handler failed');
      }
    });
    cluster.on('exit', (worker, code, signal) => this.#onExit(worker, code, signal));
    const started = new Promise<void>((resolve, reject) => {
      this.#startup = { resolve, reject };
    });
    const timer = setTimeout(() => this.#startup?.reject(new Error(`workers did not start within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
    for (let i = 0; i < this.#count; i++) {
      const slot: Slot = { worker: undefined, state: 'forked', readyAt: 0, crashes: 0, refork: undefined };
      this.#slots.push(slot);
      this.#forkInto(slot);
    }
    try {
      await started;
    } finally {
      clearTimeout(timer);
      this.#startup = undefined;
    }
  }

  #forkInto(slot: Slot): void {
    slot.refork = undefined;
    slot.state = 'forked';
    let worker: Worker;
    try {
      worker = cluster.fork();
    } catch (err) {
      // Out of processes or memory: try again later, as for a worker that died.
      this.log.error({ err }, 'could not fork a worker');
      if (!this.#started) this.#startup?.reject(err instanceof Error ? err : new Error(String(err)));
      else this.#scheduleFork(slot);
      return;
    }
    slot.worker = worker;
    // A send to a worker that just died can surface as an 'error' event; exits are handled in #onExit.
    worker.on('error', (err) => this.log.debug({ err, worker: worker.id }, 'worker channel error'));
  }

  /** Fork into `slot` after a backoff that doubles with each failure in a row. Returns the delay. */
  #scheduleFork(slot: Slot): number {
    const delay = Math.min(BACKOFF_MS.max, BACKOFF_MS.base * 2 ** slot.crashes);
    slot.crashes++;
    slot.refork = setTimeout(() => {
      if (this.#stopping === undefined) this.#forkInto(slot);
    }, delay);
    return delay;
  }

  #slotOf(worker: Worker): Slot | undefined {
    return this.#slots.find((s) => s.worker === worker);
  }

  #onMessage(worker: Worker, m: ToPrimary): void {
    const slot = this.#slotOf(worker);
    switch (m.type) {
      case 'hello':
        if (slot === undefined) return;
        // The snapshot is taken now, and every change after it is sent after it: the worker's picture is exact.
        slot.state = 'initialized';
        void send(worker, { type: 'init', config: this.#config, health: this.#ballast.health.snapshot() });
        return;
      case 'ready':
        if (slot === undefined) return;
        slot.state = 'ready';
        slot.readyAt = performance.now();
        if (this.#started) this.log.info({ worker: worker.id, workerPid: worker.process.pid }, 'worker ready');
        if (this.#slots.every((s) => s.state === 'ready')) this.#startup?.resolve();
        return;
      case 'failed':
        this.log.error({ worker: worker.id, error: m.error }, 'worker could not start');
        this.#startup?.reject(new Error(m.error));
        return;
      case 'health':
        this.#onWorkerHealth(worker, m.event);
        return;
      case 'reloaded':
      case 'metrics':
      case 'inflight': {
        const pending = this.#pending.get(m.id);
        if (pending === undefined || pending.worker !== worker) return;
        this.#pending.delete(m.id);
        clearTimeout(pending.timer);
        pending.resolve(m);
        return;
      }
    }
  }

  /** A worker ejected a server: apply it here (so /status shows it) and tell every other worker. */
  #onWorkerHealth(from: Worker, event: HealthEvent): void {
    // Workers decide ejections only: they run neither probes nor the admin endpoint.
    if (event.kind !== 'ejected') return;
    this.#feed.apply(event);
    this.log.info({ upstream: event.upstream, server: event.server, reason: event.reason, ejectedForMs: Math.round(event.forMs), worker: from.id }, 'server ejected by a worker: shared with every worker');
    this.#broadcast({ type: 'health', event }, from);
  }

  /** To every worker that has had its `init` (later changes reach the others in their snapshot). */
  #broadcast(message: ToWorker, except?: Worker): void {
    for (const s of this.#slots) {
      if (s.worker !== undefined && s.worker !== except && s.state !== 'forked') void send(s.worker, message);
    }
  }

  #onExit(worker: Worker, code: number | null, signal: string | null): void {
    for (const [id, p] of this.#pending) {
      if (p.worker !== worker) continue;
      this.#pending.delete(id);
      clearTimeout(p.timer);
      p.resolve(undefined);
    }
    const slot = this.#slotOf(worker);
    if (slot === undefined) return;
    const wasReady = slot.state === 'ready';
    slot.worker = undefined;
    slot.state = 'forked';
    if (this.#stopping !== undefined) {
      if (this.#slots.every((s) => s.worker === undefined)) this.#exited?.();
      return;
    }
    if (!this.#started) {
      this.#startup?.reject(new Error(`worker ${worker.id} exited during start-up (code ${code ?? signal})`));
      return;
    }
    if (wasReady && performance.now() - slot.readyAt > BACKOFF_MS.resetAfter) slot.crashes = 0;
    const delay = this.#scheduleFork(slot);
    this.log.error({ worker: worker.id, workerPid: worker.process.pid, code, signal, restartInMs: delay }, 'worker exited unexpectedly: starting another');
  }

  /** Ask every serving worker; resolves with the answers that came within the timeout. */
  async #askAll<T extends ToPrimary['type']>(query: (id: number) => ToWorker, type: T, timeoutMs: number): Promise<Extract<ToPrimary, { type: T }>[]> {
    const asked = this.#slots.flatMap((s) => (s.worker !== undefined && s.state === 'ready' ? [s.worker] : []));
    const answers = await Promise.all(asked.map((worker) => this.#ask(worker, query, timeoutMs)));
    const got = answers.filter((a): a is Extract<ToPrimary, { type: T }> => a?.type === type);
    if (got.length < asked.length) this.log.warn({ asked: asked.length, answered: got.length, query: type }, 'a worker did not answer in time');
    return got;
  }

  #ask(worker: Worker, query: (id: number) => ToWorker, timeoutMs: number): Promise<ToPrimary | undefined> {
    const id = this.#nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        resolve(undefined);
      }, timeoutMs);
      // A question still open must not keep a stopping primary alive.
      timer.unref();
      this.#pending.set(id, { worker, resolve, timer });
      void send(worker, query(id)).then((sent) => {
        if (sent || !this.#pending.has(id)) return;
        this.#pending.delete(id);
        clearTimeout(timer);
        resolve(undefined);
      });
    });
  }

  /** Every worker's registry and ours, summed; health gauges from ours only. */
  async #metricsText(): Promise<string> {
    const [own, answers] = await Promise.all([
      this.#ballast.metrics.registry.getMetricsAsJSON(),
      this.#askAll((id) => ({ type: 'query', id, query: 'metrics' }), 'metrics', QUERY_TIMEOUT_MS),
    ]);
    const all: MetricsJson[] = [own, ...answers.map((a) => a.metrics.filter((m) => !PRIMARY_VIEW.has(m.name)))];
    return AggregatorRegistry.aggregate(all).metrics();
  }

  /** Requests in flight per server, summed over the workers. */
  async #inflight(): Promise<(upstream: string, server: string) => number> {
    const answers = await this.#askAll((id) => ({ type: 'query', id, query: 'inflight' }), 'inflight', QUERY_TIMEOUT_MS);
    const sums = new Map<string, number>();
    const key = (upstream: string, server: string) => `${upstream}\n${server}`;
    for (const a of answers) for (const i of a.inflight as Inflight[]) sums.set(key(i.upstream, i.server), (sums.get(key(i.upstream, i.server)) ?? 0) + i.requests);
    return (upstream, server) => sums.get(key(upstream, server)) ?? 0;
  }

  async #withInflight(result: ServerActionResult): Promise<ServerActionResult> {
    const inflight = await this.#inflight();
    return { ...result, servers: result.servers.map((s) => ({ ...s, active_requests: inflight(s.upstream, s.address) })) };
  }

  /**
   * SIGHUP: re-read the file. An invalid one is refused (every error logged with its line and column) and nothing
   * changes. A valid one is applied here (new servers probed), then in every worker; if a worker refuses it (a new
   * listener that cannot bind), everything goes back to the previous config. One reload at a time.
   */
  reload(): Promise<void> {
    const run = this.#reloading.then(() => this.#reload());
    this.#reloading = run.catch(() => {});
    return run;
  }

  async #reload(): Promise<void> {
    if (this.#stopping !== undefined) return;
    const file = this.#file;
    const next = await loadConfigFile(file);
    if (!next.ok) {
      this.log.error({ file, errors: next.errors }, `reload refused, keeping the running config:\n${formatConfigErrors(file, next.errors)}`);
      return;
    }
    const previous = this.#config;
    if (next.config.workers !== previous.workers) {
      this.log.warn({ workers: this.#count, configured: next.config.workers }, 'workers changed: it takes effect at the next restart');
    }
    if (adminChanged(previous, next.config)) this.log.warn({}, 'admin settings changed: they take effect at the next restart');
    try {
      await this.#ballast.reload(next.config);
    } catch (err) {
      this.log.error({ file, err }, 'reload failed');
      return;
    }
    this.#config = next.config;
    const failed = await this.#reloadWorkers(next.config);
    if (failed.length === 0) {
      this.log.info({ file, workers: this.#count }, 'config reloaded');
      return;
    }
    this.log.error({ file, errors: failed }, 'reload failed in a worker: going back to the previous config');
    try {
      await this.#ballast.reload(previous);
    } catch (err) {
      this.log.error({ err }, 'could not go back to the previous config here');
    }
    this.#config = previous;
    const again = await this.#reloadWorkers(previous);
    if (again.length > 0) this.log.error({ errors: again }, 'a worker could not go back to the previous config');
  }

  /** Reload every worker that has its config; resolves with the errors of those that refused. */
  async #reloadWorkers(config: Config): Promise<{ worker: number; error: string }[]> {
    const health = this.#ballast.health.snapshot();
    const targets = this.#slots.flatMap((s) => (s.worker !== undefined && s.state !== 'forked' ? [s.worker] : []));
    const answers = await Promise.all(targets.map((w) => this.#ask(w, (id) => ({ type: 'reload', id, config, health }), RELOAD_TIMEOUT_MS)));
    const failed: { worker: number; error: string }[] = [];
    answers.forEach((a, i) => {
      const worker = targets[i]!;
      if (a === undefined) {
        // Gone (it is re-forked with the config now in force) or too slow: nothing to undo.
        if (worker.isConnected()) this.log.warn({ worker: worker.id }, 'a worker did not confirm the reload in time');
      } else if (a.type === 'reloaded' && a.error !== undefined) failed.push({ worker: worker.id, error: a.error });
    });
    return failed;
  }

  /**
   * Drain: every worker stops accepting and finishes its requests in flight (up to `shutdown.drain_timeout`), and
   * exits; a worker still there `EXIT_GRACE_MS` later is killed. Then the primary stops its probes and the admin
   * listener. Idempotent.
   */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      const exited = new Promise<void>((resolve) => {
        this.#exited = resolve;
      });
      for (const s of this.#slots) {
        clearTimeout(s.refork);
        s.refork = undefined;
        if (s.worker === undefined) continue;
        // A worker that has not said hello may not listen for messages yet; a signal reaches it either way.
        if (s.state === 'forked') s.worker.process.kill('SIGTERM');
        else void send(s.worker, { type: 'stop' });
      }
      if (this.#slots.some((s) => s.worker !== undefined)) {
        const deadline = this.#config.shutdown.drain_timeout + EXIT_GRACE_MS;
        if (!(await within(exited, deadline))) {
          for (const s of this.#slots) {
            if (s.worker === undefined) continue;
            this.log.warn({ worker: s.worker.id }, 'worker did not exit after draining: killing it');
            s.worker.process.kill('SIGKILL');
          }
          await within(exited, 2000);
        }
      }
      await this.#ballast.stop(0);
      if (this.#admin.server.listening) await this.#admin.close();
      this.log.flush();
    })();
    return this.#stopping;
  }
}

/** Whether `promise` settled within `ms`. */
async function within(promise: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
