/**
 * Layer-4 metrics, registered on the shared registry (`metrics.registry`) beside the HTTP ones.
 *
 * Labels stay bounded (design.md "Admin contract"): listener, upstream, server address, direction and the end
 * reasons listed in END_REASONS; never a client address or port. As on the HTTP path (admin/hot-metrics.ts), a
 * connection records into plain cells its listener resolved once, and the scrape moves them into prom-client: a
 * labelled prom-client child turns its labels into a key on every call, and a connection made about nine of them.
 * Bytes are counted from the sockets' own counters when a connection closes, which costs nothing per chunk; a
 * long-lived connection's bytes therefore show up when it ends.
 *
 * The contract's `ballast_active_connections{listener}` is fed too, and each connect is counted in
 * `ballast_upstream_attempts_total{upstream,server,outcome}` by its lease (outcomes `connected` or `connect-failure`),
 * so a dashboard built on them sees TCP listeners like HTTP ones.
 */
import { Counter, Gauge } from 'prom-client';
import type { HotCell, LevelCell, Metrics } from '../../admin/metrics.js';
import { flushCells, HotHistogram, registerHotHistograms, type LabelledCell } from '../../admin/hot-metrics.js';

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
  'not-tls', // routes by sni: the first bytes are not a TLS ClientHello
  'preread-timeout', // routes by sni: no whole ClientHello within preread_timeout
  'no-route', // routes by sni: no route for the name (or no name) and no default upstream
] as const;

export type EndReason = (typeof END_REASONS)[number];

/**
 * What SNI routing made of a connection: the `result` label of ballast_tcp_sni_total. A fixed set, never the name
 * itself, which the client chooses (design.md: labels stay bounded); the access log has the name.
 */
export const SNI_RESULTS = [
  'matched', // a route matched the server name
  'default', // a server name no route matched, sent to the listener's upstream
  'no_match', // a server name no route matched, and no default upstream: closed
  'no_sni', // a ClientHello without a server name (or too large to read it): to the default upstream, else closed
  'not_tls', // not a TLS ClientHello: closed
  'timeout', // no whole ClientHello within preread_timeout: closed
] as const;

export type SniResult = (typeof SNI_RESULTS)[number];

const DURATION_BUCKETS = [0.001, 0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600];

/** The cells of one listener name; a reloaded listener gets the same ones, so its series carry on. */
interface ListenerCells {
  readonly connections: HotCell;
  readonly closed: ReadonlyMap<EndReason, HotCell>;
  readonly bytesIn: HotCell;
  readonly bytesOut: HotCell;
  readonly duration: HotHistogram;
  /** Filled only for a listener with routes, so others export no SNI series. */
  sni: ReadonlyMap<SniResult, HotCell> | undefined;
}

/** The metric families of one registry, created once per Metrics, and every listener's cells. */
class TcpMetricSet {
  readonly connectFailures: Counter<'upstream' | 'server'>;
  readonly #listeners = new Map<string, ListenerCells>();
  readonly #connections: LabelledCell<'listener'>[] = [];
  readonly #closed: LabelledCell<'listener' | 'end'>[] = [];
  readonly #bytes: LabelledCell<'listener' | 'direction'>[] = [];
  readonly #durations: HotHistogram[] = [];
  readonly #sni: LabelledCell<'listener' | 'result'>[] = [];

  constructor(metrics: Metrics) {
    const registry = metrics.registry;
    const registers = [registry];
    const self = this;
    new Counter({
      name: 'ballast_tcp_connections_total',
      help: 'TCP connections accepted, by listener (refusals at the listener limit excluded).',
      labelNames: ['listener'],
      registers,
      collect() {
        flushCells(this, self.#connections);
      },
    });
    new Gauge({
      name: 'ballast_tcp_active_connections',
      help: 'TCP client connections open, by listener.',
      labelNames: ['listener'],
      registers,
      // The contract's ballast_active_connections count, for the listeners that are TCP ones (names are unique).
      collect() {
        this.reset();
        for (const listener of self.#listeners.keys()) this.set({ listener }, metrics.openConnections(listener).value);
      },
    });
    new Counter({
      name: 'ballast_tcp_connections_closed_total',
      help: 'TCP connections ended, by listener and how they ended.',
      labelNames: ['listener', 'end'],
      registers,
      collect() {
        flushCells(this, self.#closed);
      },
    });
    new Counter({
      name: 'ballast_tcp_bytes_total',
      help: 'Bytes relayed, by listener; direction "in" is client to server, "out" server to client. Counted when a connection closes.',
      labelNames: ['listener', 'direction'],
      registers,
      collect() {
        flushCells(this, self.#bytes);
      },
    });
    new Counter({
      name: 'ballast_tcp_sni_total',
      help: 'Connections to tcp listeners with routes, by what SNI routing made of their ClientHello.',
      labelNames: ['listener', 'result'],
      registers,
      collect() {
        flushCells(this, self.#sni);
      },
    });
    this.connectFailures = new Counter({ name: 'ballast_tcp_connect_failures_total', help: 'Failed or timed-out connects to each server.', labelNames: ['upstream', 'server'], registers });
    registerHotHistograms(registry, 'ballast_tcp_connection_duration_seconds', 'Time from accept to close of TCP client connections.', this.#durations);
  }

  cellsFor(listener: string): ListenerCells {
    let cells = this.#listeners.get(listener);
    if (cells !== undefined) return cells;
    const connections: HotCell = { pending: 0 };
    this.#connections.push({ labels: { listener }, cell: connections });
    const closed = new Map<EndReason, HotCell>();
    for (const end of END_REASONS) {
      const cell: HotCell = { pending: 0 };
      closed.set(end, cell);
      this.#closed.push({ labels: { listener, end }, cell });
    }
    const bytesIn: HotCell = { pending: 0 };
    const bytesOut: HotCell = { pending: 0 };
    this.#bytes.push({ labels: { listener, direction: 'in' }, cell: bytesIn }, { labels: { listener, direction: 'out' }, cell: bytesOut });
    const duration = new HotHistogram(DURATION_BUCKETS, { listener });
    this.#durations.push(duration);
    cells = { connections, closed, bytesIn, bytesOut, duration, sni: undefined };
    this.#listeners.set(listener, cells);
    return cells;
  }

  /** The SNI cells of a listener, created the first time it has routes; kept after, so its series carry on. */
  sniCellsFor(listener: string): ReadonlyMap<SniResult, HotCell> {
    const cells = this.cellsFor(listener);
    if (cells.sni !== undefined) return cells.sni;
    const sni = new Map<SniResult, HotCell>();
    for (const result of SNI_RESULTS) {
      const cell: HotCell = { pending: 0 };
      sni.set(result, cell);
      this.#sni.push({ labels: { listener, result }, cell });
    }
    cells.sni = sni;
    return sni;
  }
}

const sets = new WeakMap<Metrics, TcpMetricSet>();

/** What one TCP listener records. */
export class TcpListenerMetrics {
  readonly #set: TcpMetricSet;
  readonly #metrics: Metrics;
  readonly #cells: ListenerCells;
  readonly #sni: ReadonlyMap<SniResult, HotCell> | undefined;
  /** Open connections: `ballast_active_connections`, read by `ballast_tcp_active_connections` too. */
  readonly #open: LevelCell;

  /** `routesBySni`: the listener has routes, and counts their results. */
  constructor(metrics: Metrics, listener: string, routesBySni = false) {
    let set = sets.get(metrics);
    if (set === undefined) {
      set = new TcpMetricSet(metrics);
      sets.set(metrics, set);
    }
    this.#set = set;
    this.#metrics = metrics;
    this.#cells = set.cellsFor(listener);
    this.#sni = routesBySni ? set.sniCellsFor(listener) : undefined;
    this.#open = metrics.openConnections(listener);
  }

  opened(): void {
    this.#cells.connections.pending++;
    this.#open.value++;
  }

  /** A connection accepted by `opened` ended. */
  closed(end: EndReason, bytesIn: number, bytesOut: number, seconds: number): void {
    const cells = this.#cells;
    this.#open.value--;
    cells.closed.get(end)!.pending++;
    cells.bytesIn.pending += bytesIn;
    cells.bytesOut.pending += bytesOut;
    cells.duration.observe(seconds);
  }

  /** Refused at accept (listener limit): never opened. */
  refused(end: EndReason): void {
    this.#cells.closed.get(end)!.pending++;
  }

  /** What SNI routing made of a connection's ClientHello. */
  routedBySni(result: SniResult): void {
    const cell = this.#sni?.get(result);
    if (cell !== undefined) cell.pending++;
  }

  /** A connect failed (its attempt is counted by its lease, upstream/lease.ts). Rare, so recorded directly. */
  connectFailed(upstream: string, server: string): void {
    this.#set.connectFailures.inc({ upstream, server });
  }
}
