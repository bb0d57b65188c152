/**
 * Layer-4 metrics, registered on the shared registry (`metrics.registry`) beside the HTTP ones.
 *
 * Labels stay bounded (design.md "Admin contract"): listener, upstream, server address, direction and the end
 * reasons listed in END_REASONS; never a client address or port. Each listener holds pre-resolved label children,
 * so recording is a field update. Bytes are counted from the sockets' own counters when a connection closes, which
 * costs nothing per chunk; a long-lived connection's bytes therefore show up when it ends.
 *
 * The contract's `ballast_active_connections{listener}` and `ballast_upstream_attempts_total{upstream,server,outcome}`
 * are fed too, so a dashboard built on them sees TCP listeners like HTTP ones (attempt outcomes: `connected` or
 * `connect-failure`).
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Metrics } from '../../admin/metrics.js';

/** How a connection ended: the `end` label of ballast_tcp_connections_closed_total and the access log's `end`. */
export const END_REASONS = [
  'done', // both sides closed with a FIN
  'client-error', // the client reset or failed first
  'upstream-error', // the server reset or failed first
  'idle-timeout',
  'shutdown', // still open at the drain deadline
  'no-server', // no server available
  'server-limit', // every available server at limits.max_connections
  'connect-failed', // every connect attempt failed
  'client-gone', // the client left before a server was connected
  'proxy-protocol', // accept_proxy_protocol: missing, invalid or late header
  'listener-limit', // the listener's max_connections was reached: refused at accept
] as const;

export type EndReason = (typeof END_REASONS)[number];

/** The metric objects of one registry, created once per Metrics. */
class TcpMetricSet {
  readonly connections: Counter<'listener'>;
  readonly active: Gauge<'listener'>;
  readonly closed: Counter<'listener' | 'end'>;
  readonly bytes: Counter<'listener' | 'direction'>;
  readonly connectFailures: Counter<'upstream' | 'server'>;
  readonly duration: Histogram<'listener'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.connections = new Counter({ name: 'ballast_tcp_connections_total', help: 'TCP connections accepted, by listener (refusals at the listener limit excluded).', labelNames: ['listener'], registers });
    this.active = new Gauge({ name: 'ballast_tcp_active_connections', help: 'TCP client connections open, by listener.', labelNames: ['listener'], registers });
    this.closed = new Counter({ name: 'ballast_tcp_connections_closed_total', help: 'TCP connections ended, by listener and how they ended.', labelNames: ['listener', 'end'], registers });
    this.bytes = new Counter({ name: 'ballast_tcp_bytes_total', help: 'Bytes relayed, by listener; direction "in" is client to server, "out" server to client. Counted when a connection closes.', labelNames: ['listener', 'direction'], registers });
    this.connectFailures = new Counter({ name: 'ballast_tcp_connect_failures_total', help: 'Failed or timed-out connects to each server.', labelNames: ['upstream', 'server'], registers });
    this.duration = new Histogram({
      name: 'ballast_tcp_connection_duration_seconds',
      help: 'Time from accept to close of TCP client connections.',
      labelNames: ['listener'],
      buckets: [0.001, 0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600],
      registers,
    });
  }
}

const sets = new WeakMap<Metrics, TcpMetricSet>();

/** What one TCP listener records. */
export class TcpListenerMetrics {
  readonly #set: TcpMetricSet;
  readonly #metrics: Metrics;
  readonly #upstream: string;
  readonly #connections: Counter.Internal;
  readonly #active: Gauge.Internal<'listener'>;
  readonly #sharedActive: Gauge.Internal<'listener'>;
  readonly #bytesIn: Counter.Internal;
  readonly #bytesOut: Counter.Internal;
  readonly #duration: Histogram.Internal<'listener'>;
  readonly #closed = new Map<EndReason, Counter.Internal>();

  constructor(metrics: Metrics, listener: string, upstream: string) {
    let set = sets.get(metrics);
    if (set === undefined) {
      set = new TcpMetricSet(metrics.registry);
      sets.set(metrics, set);
    }
    this.#set = set;
    this.#metrics = metrics;
    this.#upstream = upstream;
    this.#connections = set.connections.labels({ listener });
    this.#active = set.active.labels({ listener });
    this.#sharedActive = metrics.activeConnections.labels({ listener });
    this.#bytesIn = set.bytes.labels({ listener, direction: 'in' });
    this.#bytesOut = set.bytes.labels({ listener, direction: 'out' });
    this.#duration = set.duration.labels({ listener });
    for (const end of END_REASONS) this.#closed.set(end, set.closed.labels({ listener, end }));
  }

  opened(): void {
    this.#connections.inc();
    this.#active.inc();
    this.#sharedActive.inc();
  }

  /** A connection accepted by `opened` ended. */
  closed(end: EndReason, bytesIn: number, bytesOut: number, seconds: number): void {
    this.#active.dec();
    this.#sharedActive.dec();
    this.#closed.get(end)!.inc();
    if (bytesIn > 0) this.#bytesIn.inc(bytesIn);
    if (bytesOut > 0) this.#bytesOut.inc(bytesOut);
    this.#duration.observe(seconds);
  }

  /** Refused at accept (listener limit): never opened. */
  refused(end: EndReason): void {
    this.#closed.get(end)!.inc();
  }

  attempt(server: string, ok: boolean): void {
    if (!ok) this.#set.connectFailures.inc({ upstream: this.#upstream, server });
    this.#metrics.attempts.inc({ upstream: this.#upstream, server, outcome: ok ? 'connected' : 'connect-failure' });
  }
}
