/**
 * Where a running Ballast's health comes from and where the health it decides goes: the one seam between the core
 * and cluster mode (design.md: cluster mode is injected, not threaded through options).
 *
 * - LocalHealthFeed (one process, and the cluster primary): this process probes the servers and so holds the full
 *   picture. What it decides is published to its subscribers (the primary relays it to its workers); what another
 *   process decides (a worker's ejection) comes in through `apply`.
 * - RemoteHealthFeed (a cluster worker): no probes. The primary's snapshot and changes are applied, and the
 *   ejections this process decides on its own traffic go out through `publish`, to the primary.
 *
 * A HealthService is attached from its start to its stop, so during a reload the new service and the one it
 * replaces both take in what is decided elsewhere until the swap.
 */
import type { HealthEvent, HostHealth } from './shared-health.js';

/** What a feed needs of a HealthService (health-service.ts): taking in what other processes decided. */
export interface FedHealth {
  /** Apply one change decided elsewhere, neither logged nor published again; whether anything changed. */
  apply(event: HealthEvent): boolean;
  /** Apply another process's picture of every server. */
  applySnapshot(snapshot: readonly HostHealth[]): void;
}

export interface HealthFeed {
  /**
   * Whether this process probes the servers. The one that does hears of every verdict and every ejection, wherever
   * decided: it alone logs what follows from all of them (panic, the end of an ejection), so each is logged once.
   */
  readonly probes: boolean;
  /** A HealthService starts: bring it up to date, then apply to it what is decided elsewhere until `detach`. */
  attach(health: FedHealth): void;
  /** The service stopped: replaced by a reload, or Ballast is stopping. */
  detach(health: FedHealth): void;
  /** A change decided in this process: an active-check flip, an ejection or its early end, an admin action. */
  publish(event: HealthEvent): void;
}

/** What both feeds do with the services attached to them. */
abstract class Feed implements HealthFeed {
  abstract readonly probes: boolean;
  readonly #services = new Set<FedHealth>();

  attach(health: FedHealth): void {
    this.#services.add(health);
  }

  detach(health: FedHealth): void {
    this.#services.delete(health);
  }

  /**
   * A change another process decided, applied to every attached service; it is neither logged nor published again
   * (the process that decided it did both). Returns whether any service changed.
   */
  apply(event: HealthEvent): boolean {
    let changed = false;
    for (const health of this.#services) changed = health.apply(event) || changed;
    return changed;
  }

  abstract publish(event: HealthEvent): void;
}

export class LocalHealthFeed extends Feed {
  readonly probes = true;
  readonly #subscribers = new Set<(event: HealthEvent) => void>();

  /** Hear of every change decided here from now on; returns the unsubscribe. */
  subscribe(listener: (event: HealthEvent) => void): () => void {
    this.#subscribers.add(listener);
    return () => this.#subscribers.delete(listener);
  }

  publish(event: HealthEvent): void {
    for (const listener of this.#subscribers) listener(event);
  }
}

export class RemoteHealthFeed extends Feed {
  readonly probes = false;
  readonly #publish: (event: HealthEvent) => void;
  #snapshot: readonly HostHealth[];
  /** Changes that arrived before the first service attached: applied to it after the snapshot they follow. */
  #early: HealthEvent[] | undefined = [];

  /** `snapshot`: every server's health as the primary sees it; `publish`: where this process's ejections go. */
  constructor(snapshot: readonly HostHealth[], publish: (event: HealthEvent) => void) {
    super();
    this.#snapshot = snapshot;
    this.#publish = publish;
  }

  /** The primary's picture as of a reload it sends: the service that reload builds starts from it. */
  resetSnapshot(snapshot: readonly HostHealth[]): void {
    this.#snapshot = snapshot;
  }

  /**
   * The snapshot comes on top of what the service's servers inherited from the ones they replace: the primary's
   * probe and admin flags win (it alone decides them), and of two ejections the longer is kept.
   */
  override attach(health: FedHealth): void {
    health.applySnapshot(this.#snapshot);
    for (const event of this.#early ?? []) health.apply(event);
    this.#early = undefined;
    super.attach(health);
  }

  override apply(event: HealthEvent): boolean {
    if (this.#early === undefined) return super.apply(event);
    this.#early.push(event);
    return false;
  }

  publish(event: HealthEvent): void {
    this.#publish(event);
  }
}
