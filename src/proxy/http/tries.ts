/**
 * The servers one exchange tried, in order, with what each try did and why it was retried: the `tried` list that
 * previous-host avoidance walks past, and the `tries` of the access line.
 */
import type { Host } from '../../upstream/host.js';
import { outcomeLabel, type Outcome } from '../../upstream/outcome.js';

export interface TryRecord {
  readonly server: string;
  /** `pending` until the try reports; then an attempt outcome label (`2xx`, `reset`, `cancelled`, ...). */
  outcome: string;
  retryReason?: string;
}

export class Tries {
  readonly hosts: Host[] = [];
  readonly #records: TryRecord[] = [];

  get count(): number {
    return this.#records.length;
  }

  add(host: Host): void {
    this.hosts.push(host);
    this.#records.push({ server: host.address, outcome: 'pending' });
  }

  /** What the current try did, once. */
  note(outcome: Outcome | undefined): void {
    const record = this.#records[this.#records.length - 1];
    if (record !== undefined && record.outcome === 'pending') record.outcome = outcomeLabel(outcome);
  }

  /** Why the current try is retried. */
  retried(reason: string): void {
    this.#records[this.#records.length - 1]!.retryReason = reason;
  }

  /** The server of the last try, if any. */
  get server(): string | undefined {
    return this.#records[this.#records.length - 1]?.server;
  }

  /** Every try with its outcome and why it was retried; one try is told by server and status already. */
  get forLog(): readonly TryRecord[] | undefined {
    return this.#records.length > 1 ? this.#records : undefined;
  }
}
