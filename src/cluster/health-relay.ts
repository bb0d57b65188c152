/**
 * Health shared across the cluster, as the primary relays it, so that every process agrees on which servers are out:
 *
 * - every change the primary's feed publishes (a probe verdict, the early end of an ejection, an admin action) goes
 *   to every worker;
 * - an ejection a worker decided on its own traffic is applied here (so /status shows it, and panic is judged on
 *   it) and sent to every other worker.
 *
 * Only workers that have had their `init` are told: the snapshot in a later `init` already holds the change.
 */
import type { Worker } from 'node:cluster';
import type { LocalHealthFeed } from '../health/health-feed.js';
import type { HealthEvent } from '../health/shared-health.js';
import type { Logger } from '../log.js';
import { send } from './messages.js';

export class HealthRelay {
  readonly #feed: LocalHealthFeed;
  readonly #workers: () => readonly Worker[];
  readonly #log: Logger;

  /** `workers`: those that have had their `init`. */
  constructor(feed: LocalHealthFeed, workers: () => readonly Worker[], log: Logger) {
    this.#feed = feed;
    this.#workers = workers;
    this.#log = log;
    feed.subscribe((event) => this.#broadcast(event));
  }

  /** A worker decided `event`: apply it here and tell every other worker. */
  fromWorker(from: Worker, event: HealthEvent): void {
    // Workers decide ejections only: they run neither probes nor the admin endpoint.
    if (event.kind !== 'ejected') return;
    this.#feed.apply(event);
    this.#log.info({ upstream: event.upstream, server: event.server, reason: event.reason, ejectedForMs: Math.round(event.forMs), worker: from.id }, 'server ejected by a worker: shared with every worker');
    this.#broadcast(event, from);
  }

  #broadcast(event: HealthEvent, except?: Worker): void {
    for (const worker of this.#workers()) if (worker !== except) void send(worker, { type: 'health', event });
  }
}
