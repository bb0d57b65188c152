/**
 * What the cluster primary and its workers say to each other over the IPC channel node:cluster opens (JSON
 * serialisation), and the one way each side sends: `send`, which never throws and never leaves an error unhandled
 * when the other side is gone (a worker that died, a primary that was killed).
 *
 * A worker's life: it sends `hello`; the primary answers `init` (the config in force, a snapshot of every server's
 * health, the servers discovery found, and how to bind its listeners: accept.ts); the worker binds its listeners and sends `ready` (or `failed`).
 * From then on the primary sends each active-check flip, admin action and relayed ejection as `health`, each new set
 * of servers DNS discovery found as `members` (before any health news of a server it adds), and the
 * worker sends its own ejections as `health`; `reload` carries a new config (and a fresh snapshot) and is answered
 * `reloaded`; `query` asks for the worker's metrics or its requests in flight; `stop` drains the worker and it exits.
 */
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { Config, ServerConfig } from '../config/schema.js';
import type { HealthEvent, HostHealth } from '../health/shared-health.js';
import type { AcceptMode } from './accept.js';

export type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];

/** Requests in flight to one server, as counted by one worker. */
export interface Inflight {
  readonly upstream: string;
  readonly server: string;
  readonly requests: number;
}

/** The servers DNS discovery found, per upstream (the primary looks them up; workers follow). */
export type Members = Readonly<Record<string, readonly ServerConfig[]>>;

/** Primary → worker. */
export type ToWorker =
  | { readonly type: 'init'; readonly config: Config; readonly health: readonly HostHealth[]; readonly members: Members; readonly accept: AcceptMode }
  | { readonly type: 'reload'; readonly id: number; readonly config: Config; readonly health: readonly HostHealth[]; readonly members: Members }
  | { readonly type: 'members'; readonly upstream: string; readonly servers: readonly ServerConfig[] }
  | { readonly type: 'health'; readonly event: HealthEvent }
  | { readonly type: 'query'; readonly id: number; readonly query: 'metrics' | 'inflight' }
  | { readonly type: 'stop' };

/** Worker → primary. */
export type ToPrimary =
  | { readonly type: 'hello' }
  | { readonly type: 'ready' }
  | { readonly type: 'failed'; readonly error: string }
  | { readonly type: 'health'; readonly event: HealthEvent }
  | { readonly type: 'reloaded'; readonly id: number; readonly error?: string }
  | { readonly type: 'metrics'; readonly id: number; readonly metrics: MetricsJson }
  | { readonly type: 'inflight'; readonly id: number; readonly inflight: readonly Inflight[] };

const TO_WORKER: ReadonlySet<string> = new Set<ToWorker['type']>(['init', 'reload', 'members', 'health', 'query', 'stop']);
const TO_PRIMARY: ReadonlySet<string> = new Set<ToPrimary['type']>(['hello', 'ready', 'failed', 'health', 'reloaded', 'metrics', 'inflight']);

/** Whether `m` is one of ours (the channel may carry other libraries' messages too). */
export function isToWorker(m: unknown): m is ToWorker {
  return typeof m === 'object' && m !== null && TO_WORKER.has((m as { type?: unknown }).type as string);
}

export function isToPrimary(m: unknown): m is ToPrimary {
  return typeof m === 'object' && m !== null && TO_PRIMARY.has((m as { type?: unknown }).type as string);
}

/** Either end of the channel: `process` in a worker, a cluster `Worker` in the primary. */
interface Channel {
  send?(message: unknown, callback?: (error: Error | null) => void): boolean;
  readonly connected?: boolean;
  isConnected?(): boolean;
}

/**
 * Send `message` if the other side is still there. Resolves true once it was handed to the channel, false when the
 * channel is closed or the send failed; never rejects (a dead peer is routine: it is re-forked, or we exit).
 */
export function send(channel: Channel, message: ToWorker | ToPrimary): Promise<boolean> {
  const connected = channel.isConnected !== undefined ? channel.isConnected() : channel.connected === true;
  if (!connected || channel.send === undefined) return Promise.resolve(false);
  return new Promise((resolve) => {
    try {
      channel.send!(message, (err) => resolve(err === null || err === undefined));
    } catch {
      // Serialisation errors and a channel closed between the check and the send land here.
      resolve(false);
    }
  });
}
