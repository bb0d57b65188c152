/**
 * Each server's traffic over the last minute, for /status and the dashboard: requests, errors, and the p50 and p99
 * of their latency.
 *
 * Per server, a ring of 60 one-second buckets, each holding a request count, an error count and a latency histogram
 * with fixed geometric bounds (×1.5 from 0.25 ms up to ~48 s, then one overflow bucket), all in one preallocated
 * Uint32Array. Recording an outcome is O(1) and allocates nothing: a clock read, a WeakMap lookup, a five-step
 * binary search and three increments, plus zeroing the buckets of the seconds that passed since the server's
 * previous outcome (60 at most); about 0.1 µs, most of it the clock read. Reading sums the
 * buckets (60 × 34 numbers per server), once per /status. A quantile is read as Prometheus' `histogram_quantile`
 * does, interpolating linearly inside its bucket, so it is within one bucket (±25% of the value) of the truth.
 * Memory: 8 KiB per server.
 *
 * Windows are keyed by upstream name and server address, not by Host: a reload builds new Upstreams and Hosts, and a
 * server that stays keeps its numbers (`track` subscribes to the new upstreams and forgets servers that left).
 * A request counts at each server it tried: a retried request is one request to each of its servers.
 */
import type { Host } from '../upstream/host.js';
import type { Outcome } from '../upstream/outcome.js';
import type { Upstream } from '../upstream/upstream.js';

const SECONDS = 60;
/** The histogram: bucket 0 holds (0, BASE_MS], bucket k holds (BASE_MS × FACTOR^(k-1), BASE_MS × FACTOR^k], the last one the rest. */
const BASE_MS = 0.25;
const FACTOR = 1.5;
export const LATENCY_BUCKETS = 32;
/** The upper bound of every bucket but the last. */
const UPPER = Float64Array.from({ length: LATENCY_BUCKETS - 1 }, (_, k) => BASE_MS * FACTOR ** k);
/** Per second: requests, errors, then the histogram. */
const STRIDE = 2 + LATENCY_BUCKETS;

/** What /status shows of one server's, or one upstream's, last minute. */
export interface LastMinute {
  /** Requests that reported an outcome in the window (a client that left before the answer is not counted). */
  requests: number;
  /** Of those: connect failures, timeouts, resets and 5xx answers. */
  errors: number;
  requests_per_second: number;
  /** errors / requests, 0 when there were none. */
  error_rate: number;
  /** Null without a request that got an answer (or, for TCP, a connection) in the window. */
  p50_ms: number | null;
  p99_ms: number | null;
}

/** A window's numbers summed, before quantiles are read: servers add into one to give their upstream's. */
export class Tally {
  requests = 0;
  errors = 0;
  /** The time the window covers, in ms: a minute, or less for a server seen for the first time less than a minute ago. */
  spanMs = 0;
  readonly latency = new Float64Array(LATENCY_BUCKETS);

  summary(): LastMinute {
    const seconds = Math.max(1, this.spanMs / 1000);
    return {
      requests: this.requests,
      errors: this.errors,
      requests_per_second: round(this.requests / seconds, 2),
      error_rate: this.requests === 0 ? 0 : round(this.errors / this.requests, 4),
      p50_ms: this.quantile(0.5),
      p99_ms: this.quantile(0.99),
    };
  }

  quantile(q: number): number | null {
    let total = 0;
    for (const n of this.latency) total += n;
    if (total === 0) return null;
    const rank = q * total;
    let below = 0;
    for (let k = 0; k < LATENCY_BUCKETS; k++) {
      const n = this.latency[k]!;
      if (n > 0 && below + n >= rank) {
        const lower = k === 0 ? 0 : UPPER[k - 1]!;
        // The overflow bucket has no upper bound: its lower bound is the best that can be said.
        if (k === LATENCY_BUCKETS - 1) return round(lower, 2);
        return significant(lower + (UPPER[k]! - lower) * ((rank - below) / n));
      }
      below += n;
    }
    return null;
  }
}

/** The histogram bucket of a latency: a binary search over the 31 bounds, five comparisons. */
export function latencyBucket(ms: number): number {
  if (!(ms > BASE_MS)) return 0; // NaN too
  let lo = 1;
  let hi = LATENCY_BUCKETS - 1;
  // The first bucket whose upper bound holds `ms`; the overflow bucket when none does.
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ms <= UPPER[mid]!) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** A failure the server is to blame for: what outlier detection and the error rate count. */
function isError(o: Outcome): boolean {
  return o.kind === 'response' ? o.status >= 500 : o.kind !== 'connected';
}

export class ServerWindow {
  /** SECONDS rows of STRIDE numbers; row `second mod SECONDS` holds that second while it is in the window. */
  readonly #cells = new Uint32Array(SECONDS * STRIDE);
  /** The newest second recorded (clock ms / 1000, floored): rows of seconds after it are not cleared yet. */
  #second: number;
  /** When this window began: a younger window divides by its own age, not by a whole minute. */
  readonly #since: number;

  constructor(now: number) {
    this.#since = now;
    this.#second = Math.floor(now / 1000);
  }

  record(outcome: Outcome, now: number): void {
    const second = this.#advance(now);
    const row = slot(second) * STRIDE;
    const cells = this.#cells;
    cells[row]!++;
    if (isError(outcome)) cells[row + 1]!++;
    if (outcome.kind === 'response' || outcome.kind === 'connected') cells[row + 2 + latencyBucket(outcome.latencyMs)]!++;
  }

  /** Add the last minute before `now` to `tally`. */
  addTo(tally: Tally, now: number): void {
    const second = Math.floor(now / 1000);
    const oldest = second - SECONDS + 1;
    const cells = this.#cells;
    for (let s = Math.max(oldest, this.#second - SECONDS + 1); s <= Math.min(second, this.#second); s++) {
      const row = slot(s) * STRIDE;
      tally.requests += cells[row]!;
      tally.errors += cells[row + 1]!;
      for (let k = 0; k < LATENCY_BUCKETS; k++) tally.latency[k]! += cells[row + 2 + k]!;
    }
    tally.spanMs = Math.max(tally.spanMs, Math.min(now - oldest * 1000, now - this.#since));
  }

  /** Move to the second `now` falls in, zeroing the rows of the seconds skipped; a clock that went back stays put. */
  #advance(now: number): number {
    const second = Math.floor(now / 1000);
    if (second <= this.#second) return this.#second;
    for (let s = Math.max(this.#second + 1, second - SECONDS + 1); s <= second; s++) {
      const row = slot(s) * STRIDE;
      this.#cells.fill(0, row, row + STRIDE);
    }
    this.#second = second;
    return second;
  }
}

function slot(second: number): number {
  return ((second % SECONDS) + SECONDS) % SECONDS;
}

/** Every server's window, fed by the outcome sink of every upstream given to `track`. */
export class TrafficWindows {
  readonly #windows = new Map<string, ServerWindow>();
  /** The window each Host records into, found once per Host so an outcome costs no string key. */
  readonly #byHost = new WeakMap<Host, ServerWindow>();
  readonly #watched = new WeakSet<Upstream>();

  /**
   * Record the outcomes of these upstreams from now on (each is subscribed once), and forget the servers that are in
   * none of them. A server's window starts when the server first appears, so a quiet start counts as quiet. An
   * upstream a reload replaced may still report requests it is finishing: they go to the window its server had,
   * which is the new one's when the server stayed.
   */
  track(upstreams: readonly Upstream[]): void {
    const live = new Set<string>();
    for (const upstream of upstreams) {
      const now = upstream.now();
      for (const host of upstream.hosts) {
        const k = key(upstream.name, host.address);
        live.add(k);
        let window = this.#windows.get(k);
        if (window === undefined) this.#windows.set(k, (window = new ServerWindow(now)));
        this.#byHost.set(host, window);
      }
      if (this.#watched.has(upstream)) continue;
      this.#watched.add(upstream);
      upstream.onOutcome((host, outcome) => this.#byHost.get(host)?.record(outcome, upstream.now()));
    }
    for (const k of this.#windows.keys()) if (!live.has(k)) this.#windows.delete(k);
  }

  /** Add one server's last minute to `tally`; a server never tracked adds nothing. */
  addTo(tally: Tally, host: Host, now: number): void {
    this.#byHost.get(host)?.addTo(tally, now);
  }
}

function key(upstream: string, address: string): string {
  return `${upstream}\u0000${address}`;
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Three significant digits, enough for an interpolated quantile. */
function significant(x: number): number {
  return Number(x.toPrecision(3));
}
