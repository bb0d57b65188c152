/**
 * Connect a client to a server of the upstream, failing over on connect failure (design.md "Layer 4").
 *
 * The walk: `Upstream.pick(key, skip)` yields the strategy's first available server not in `skip`; a server with
 * `limits.max_connections` connections already open (its `inflight`, shared with HTTP, where each request in
 * flight holds one pooled connection) is added to `skip` and the walk goes on. A connect that fails or times out
 * is reported, its server skipped, and the next one tried, up to `connect_attempts` tries in all (HAProxy `retries`
 * with `option redispatch`). Nothing was sent on a connection that never opened, so every failover is safe.
 *
 * When no other server is available, `pick` falls back to one already tried (see Upstream.pick); a failed server
 * is then tried again within the attempt budget, but a full one never is.
 *
 * Every attempt is reported through the upstream's outcome sink, so TCP feeds the same passive health state as
 * HTTP: a failure as `connect-failure` (a timeout too: it is a local-origin failure, as failures.ts classifies
 * undici's connect timeout), a success as `{ kind: 'response', status: 200, latencyMs: <connect time> }`: the
 * outcome type has no "connected" kind, and this one resets the consecutive-failure count and feeds the
 * success-rate and latency estimates with the only latency layer 4 has. Failures after the connection opened
 * are not reported: a reset mid-stream is as often the client's protocol as the server's health.
 */
import type { Socket } from 'node:net';
import type { HashKey } from '../../balancer/types.js';
import type { Host } from '../../upstream/host.js';
import { CONNECT_FAILURE, type Outcome } from '../../upstream/outcome.js';
import type { Upstream } from '../../upstream/upstream.js';
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
  | { readonly ok: true; readonly socket: Socket; readonly host: Host; readonly attempts: readonly DialAttempt[] }
  | { readonly ok: false; readonly reason: DialFailure; readonly attempts: readonly DialAttempt[] };

export interface DialOptions {
  /** The hash key (the client IP) when the strategy hashes; undefined otherwise. */
  readonly key: HashKey | undefined;
  readonly maxAttempts: number;
  readonly cancel: ConnectCancel;
  /** Called for each attempt once it is settled (metrics). */
  readonly onAttempt?: (host: Host, ok: boolean) => void;
  /** Passed to each connect: reads into a reused buffer (relay.ts UpstreamReads). */
  readonly onread?: ConnectOptions['onread'];
}

/**
 * On success the returned host's `inflight` includes this connection: the caller releases it (`inflight--`) when
 * the connection closes. On failure nothing is held.
 */
export async function dialUpstream(upstream: Upstream, options: DialOptions): Promise<DialResult> {
  const cap = upstream.config.limits.max_connections;
  const connectTimeout = upstream.config.timeouts.connect;
  const skip: Host[] = [];
  const attempts: DialAttempt[] = [];
  let sawFull = false;
  while (attempts.length < options.maxAttempts) {
    let host: Host | undefined;
    for (;;) {
      host = upstream.pick(options.key, skip);
      if (host === undefined || host.inflight < cap) break;
      // Upstream.pick returned an excluded host: every available server is full or has failed.
      if (skip.includes(host)) {
        host = undefined;
        break;
      }
      sawFull = true;
      skip.push(host);
    }
    if (host === undefined) break;
    if (!skip.includes(host)) skip.push(host);
    // Held from the start of the connect, so concurrent connects count against the cap and least-request sees them.
    host.inflight++;
    const started = performance.now();
    try {
      const socket = await connectTcp(host.host, host.port, { timeoutMs: connectTimeout, cancel: options.cancel, onread: options.onread });
      const ms = performance.now() - started;
      attempts.push({ server: host.address, result: 'connected', ms: round(ms) });
      report(upstream, host, { kind: 'response', status: 200, latencyMs: ms });
      options.onAttempt?.(host, true);
      return { ok: true, socket, host, attempts };
    } catch (err) {
      host.inflight--;
      const code = err instanceof ConnectError ? err.code : 'ERROR';
      if (code === 'ABORT_ERR') return { ok: false, reason: 'aborted', attempts };
      attempts.push({ server: host.address, result: code, ms: round(performance.now() - started) });
      report(upstream, host, CONNECT_FAILURE);
      options.onAttempt?.(host, false);
    }
  }
  const reason: DialFailure = attempts.length > 0 ? 'connect-failed' : sawFull ? 'server-limit' : 'no-server';
  return { ok: false, reason, attempts };
}

function report(upstream: Upstream, host: Host, outcome: Outcome): void {
  if (outcome.kind === 'response') host.latency.observe(outcome.latencyMs);
  else host.latency.observeFailure();
  upstream.observe(host, outcome);
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
