/**
 * Supervision of the cluster's worker processes (node:cluster): fork N of them, wait until every one is serving,
 * fork another into the place of one that dies, and drain them all at shutdown. What the workers are told, and what
 * they answer, is the primary's business (primary.ts): this file knows a worker's life, not its work.
 *
 * A worker that dies unexpectedly is forked again after a backoff (100 ms doubling to 10 s; reset once a worker has
 * served for 30 s), so a worker that cannot start does not become a fork loop.
 */
import cluster, { type Worker } from 'node:cluster';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../log.js';
import { isToPrimary, send, type ToPrimary, type ToWorker } from './messages.js';

const START_TIMEOUT_MS = 30_000;
/** Beyond the drain deadline, how long a draining worker may take to exit before it is killed. */
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

export interface SupervisorHooks {
  /** The message that starts a worker that said hello: its config, and every server's health as of now. */
  readonly init: () => Extract<ToWorker, { type: 'init' }>;
  /** Every message that is not about a worker's start (answers to questions, health it decided). */
  readonly message: (worker: Worker, message: ToPrimary) => void;
  /** A worker is gone, whether it died or exited at shutdown: nothing asked of it will be answered. */
  readonly exited: (worker: Worker) => void;
}

export class Supervisor {
  readonly #count: number;
  readonly #log: Logger;
  readonly #hooks: SupervisorHooks;
  readonly #slots: Slot[] = [];
  #started = false;
  #startup: { resolve: () => void; reject: (err: Error) => void } | undefined;
  #stopping: Promise<void> | undefined;
  #exited: (() => void) | undefined;

  constructor(count: number, log: Logger, hooks: SupervisorHooks) {
    this.#count = count;
    this.#log = log;
    this.#hooks = hooks;
  }

  /** Every worker has been serving at least once (`start` resolved). */
  get started(): boolean {
    return this.#started;
  }

  /** Workers serving now: the ones to ask about their metrics and requests. */
  serving(): Worker[] {
    return this.#slots.flatMap((s) => (s.worker !== undefined && s.state === 'ready' ? [s.worker] : []));
  }

  /**
   * Workers that have had their `init`, serving or still binding: the ones to tell of a health change or a reload
   * (one not yet initialized gets both in the `init` it is about to get).
   */
  initialized(): Worker[] {
    return this.#slots.flatMap((s) => (s.worker !== undefined && s.state !== 'forked' ? [s.worker] : []));
  }

  pids(): (number | undefined)[] {
    return this.#slots.map((s) => s.worker?.process.pid);
  }

  /** Fork the workers; resolves when every one is serving, rejects if one cannot start (the caller then stops). */
  async start(): Promise<void> {
    cluster.setupPrimary({ exec: fileURLToPath(new URL('./worker-main.js', import.meta.url)), args: [], silent: false });
    cluster.on('message', (worker, message: unknown) => {
      if (!isToPrimary(message)) return;
      try {
        this.#onMessage(worker, message);
      } catch (err) {
        this.#log.error({ err, worker: worker.id }, 'cluster message handler failed');
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
    this.#started = true;
  }

  #forkInto(slot: Slot): void {
    slot.refork = undefined;
    slot.state = 'forked';
    let worker: Worker;
    try {
      worker = cluster.fork();
    } catch (err) {
      // Out of processes or memory: try again later, as for a worker that died.
      this.#log.error({ err }, 'could not fork a worker');
      if (!this.#started) this.#startup?.reject(err instanceof Error ? err : new Error(String(err)));
      else this.#scheduleFork(slot);
      return;
    }
    slot.worker = worker;
    // A send to a worker that just died can surface as an 'error' event; exits are handled in #onExit.
    worker.on('error', (err) => this.#log.debug({ err, worker: worker.id }, 'worker channel error'));
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
        void send(worker, this.#hooks.init());
        return;
      case 'ready':
        if (slot === undefined) return;
        slot.state = 'ready';
        slot.readyAt = performance.now();
        if (this.#started) this.#log.info({ worker: worker.id, workerPid: worker.process.pid }, 'worker ready');
        if (this.#slots.every((s) => s.state === 'ready')) this.#startup?.resolve();
        return;
      case 'failed':
        this.#log.error({ worker: worker.id, error: m.error }, 'worker could not start');
        this.#startup?.reject(new Error(m.error));
        return;
      default:
        this.#hooks.message(worker, m);
    }
  }

  #onExit(worker: Worker, code: number | null, signal: string | null): void {
    this.#hooks.exited(worker);
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
    this.#log.error({ worker: worker.id, workerPid: worker.process.pid, code, signal, restartInMs: delay }, 'worker exited unexpectedly: starting another');
  }

  /**
   * Drain: every worker stops accepting, finishes its requests in flight (up to `drainMs`) and exits; a worker still
   * there `EXIT_GRACE_MS` later is killed. No worker is forked again from now on. Idempotent.
   */
  stop(drainMs: number): Promise<void> {
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
      if (!this.#slots.some((s) => s.worker !== undefined)) return;
      if (await within(exited, drainMs + EXIT_GRACE_MS)) return;
      for (const s of this.#slots) {
        if (s.worker === undefined) continue;
        this.#log.warn({ worker: s.worker.id }, 'worker did not exit after draining: killing it');
        s.worker.process.kill('SIGKILL');
      }
      await within(exited, 2000);
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
