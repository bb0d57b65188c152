/**
 * Connect a client to a server of the upstream, failing over on connect failure (design.md "Layer 4").
 *
 * Each try leases the strategy's first available server not tried yet, skipping those with `limits.max_connections`
 * leases already (a server's leases are shared with HTTP, where each request in flight holds one pooled connection).
 * A connect that fails or times out is reported and released, and the retry policy (`RetryPolicy.connectFailover`:
 * up to `connect_attempts` tries in all, HAProxy `retries` with `option redispatch`) decides whether the next server
 * gets a try. Nothing was sent on a connection that never opened, so every failover is safe.
 *
 * When no other server is available, `Upstream.pick` falls back to one already tried; a failed server is then tried
 * again within the attempt budget, but a full one never is.
 *
 * Every attempt is reported through its lease, so TCP feeds the same passive health state as HTTP: a failure as
 * `connect-failure` (a timeout too: it is a local-origin failure, as failures.ts classifies undici's connect
 * timeout), a success as `connected` with its connect time.
 */
import type { Socket } from 'node:net';
import type { HashKey } from '../../balancer/types.js';
import type { Lease } from '../../upstream/lease.js';
import type { Host } from '../../upstream/host.js';
import { CONNECT_FAILURE } from '../../upstream/outcome.js';
import type { Upstream } from '../../upstream/upstream.js';
import type { RetryContext, RetryPolicy } from '../retry-policy.js';
import { connectTcp, ConnectError, type ConnectCancel, type ConnectOptions } from './connect.js';

export interface DialAttempt {
  readonly server: string;
  /** `connected`, or the connect error's code (`ECONNREFUSED`, `ETIMEDOUT`, ...). */
  readonly result: string;
  readonly ms: number;
}

/** Why no connection was made: nothing available, every candidate at its connection cap, every try failed, or the client left. */
export type DialFailure = 'no-server' | 'server-limit' | 'connect-failed' | 'aborted';

export type DialResult =
  | { readonly ok: true; readonly socket: Socket; readonly lease: Lease; readonly attempts: readonly DialAttempt[] }
  | { readonly ok: false; readonly reason: DialFailure; readonly attempts: readonly DialAttempt[] };

export interface DialOptions {
  /** The hash key (the client IP) when the strategy hashes; undefined otherwise. */
  readonly key: HashKey | undefined;
  readonly policy: RetryPolicy;
  readonly cancel: ConnectCancel;
  /** Called for each failed connect (metrics). */
  readonly onConnectFailure?: (host: Host) => void;
  /** Passed to each connect: reads into a reused buffer (relay.ts UpstreamReads). */
  readonly onread?: ConnectOptions['onread'];
}

/** On success the caller holds the lease, and releases it when the connection closes. On failure nothing is held. */
export async function dialUpstream(upstream: Upstream, options: DialOptions): Promise<DialResult> {
  const maxInflight = upstream.config.limits.max_connections;
  const connectTimeout = upstream.config.timeouts.connect;
  const tried: Host[] = [];
  const attempts: DialAttempt[] = [];
  for (;;) {
    // Held from the start of the connect, so concurrent connects count against the cap and least-request sees them.
    const lease = upstream.lease(options.key, tried, { maxInflight });
    if (lease === undefined) break;
    const host = lease.host;
    tried.push(host);
    const started = performance.now();
    try {
      const socket = await connectTcp(host.host, host.port, { timeoutMs: connectTimeout, cancel: options.cancel, onread: options.onread });
      const ms = performance.now() - started;
      attempts.push({ server: host.address, result: 'connected', ms: round(ms) });
      lease.report({ kind: 'connected', latencyMs: ms });
      return { ok: true, socket, lease, attempts };
    } catch (err) {
      const code = err instanceof ConnectError ? err.code : 'ERROR';
      if (code === 'ABORT_ERR') {
        lease.release();
        return { ok: false, reason: 'aborted', attempts };
      }
      attempts.push({ server: host.address, result: code, ms: round(performance.now() - started) });
      const step = options.policy.decide(CONNECT_FAILURE, connectContext(attempts.length, lease.isRetry));
      lease.release(CONNECT_FAILURE);
      options.onConnectFailure?.(host);
      if (step.kind !== 'retry') break;
    }
  }
  if (attempts.length > 0) return { ok: false, reason: 'connect-failed', attempts };
  // Nothing was tried: every available server is at its cap, or none is available at all.
  return { ok: false, reason: upstream.pick(options.key, undefined) !== undefined ? 'server-limit' : 'no-server', attempts };
}

/** A connect that never opened: nothing was sent, there is no body and no deadline. */
function connectContext(attempts: number, wasRetry: boolean): RetryContext {
  return { method: 'CONNECT', hasIdempotencyKey: false, bodyReplayable: true, reachedUpstream: false, attempts, wasRetry, deadline: Infinity, now: 0 };
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
