/**
 * A token bucket per key (`client.rate_limit: { rate, per, burst, key }`): each key's bucket holds up to `burst`
 * tokens, starts full, refills at `rate` tokens per `per`, and a request is admitted when it can take a whole token.
 * A refused request takes nothing and is never delayed or queued (NGINX's `nodelay`). So a client flooding for t
 * seconds at 20/s with burst 10 is admitted 10 + 20·t times, and a client that pauses gets its burst back.
 *
 * A bucket is kept as one number, the time at which it is full again: GCRA, the virtual scheduling form of the
 * Generic Cell Rate Algorithm (ITU-T I.371; Brandur Leach's redis-cell limits the same way). With interval =
 * per / rate, a bucket holds burst - (fullAt - now) / interval tokens, so a request is admitted while
 * fullAt - now ≤ (burst - 1) · interval, and moves fullAt one interval later. Retry-After is the time until that
 * holds.
 *
 * Cost per call: one Map lookup, a typed-array read and write and a few float operations; no allocation. A new key
 * adds a Map entry, and its share of the sweeps below: at most 16 slot visits per new key, amortised, in sweeps of
 * about a millisecond per 100,000 buckets.
 *
 * NGINX counts a burst one lower. `limit_req rate=20r/s burst=10 nodelay` admits 11 requests at once: a key's
 * `excess` is 0 for its first request and a request is refused only when it would take `excess` above the burst
 * (`ngx_http_limit_req_lookup`), although the documentation speaks of "bursts not exceeding" the burst. Here `burst`
 * is the bucket's capacity, the number admitted at once: NGINX's burst=B is burst: B + 1 here, and NGINX with no
 * burst is burst: 1. Like NGINX, and unlike an HAProxy rule such as `sc_http_req_rate(0) gt 20` (whose stick-table
 * counter also counts the requests the rule denies, so a client that never pauses is never let through), a refused
 * request costs nothing: a client that floods still gets `rate` through.
 *
 * Memory is bounded by `maxKeys`. Buckets live in slots (typed arrays, doubled as needed up to maxKeys); when the
 * slots run out, `#sweep`:
 *  - Forgets every bucket that is full again. A full bucket carries no state: its key is answered exactly as a key
 *    never seen (a fullAt at or before now acts as now), so forgetting it loses nothing. So the table holds the keys
 *    with a request in the last refill time (burst · interval) and full ones not yet swept; it doubles only when a
 *    sweep leaves it more than half full, and does not shrink.
 *  - Only at maxKeys, forgets buckets that are not full, down to 7/8 of it, nearest to full first (to within 1/16
 *    of the refill time). That errs on the side of admitting: the key starts again with a full bucket, up to `burst`
 *    requests more than it was owed, and nearest to full first makes that the least. Least recently used would
 *    forget by age instead; age bounds the deficit (a bucket is full one refill time after its last request), but the
 *    deficit is what forgetting costs, and this way the clients being refused are the last to be forgotten.
 *
 * The default cap, 100,000 buckets, is about what a 6 MB NGINX zone holds (its documentation: a megabyte keeps about
 * 16,000 states): some 8 MB for IPv4 keys and 17 MB for IPv6 ones, far more distinct clients within one refill time
 * than a listener sees outside a flood, and a sweep short enough (about a millisecond) to run on the event loop.
 * Keys are kept as given, so a caller keying on a header bounds its length.
 */
import type { Clock } from '../../util/clock.js';

export interface RateLimit {
  /** Tokens added per `perMs`; need not be an integer (0.5 per second is one request every two seconds). */
  readonly rate: number;
  /** The period `per`, in milliseconds. */
  readonly perMs: number;
  /** The bucket's capacity: requests admitted at once after a pause. An integer ≥ 1. */
  readonly burst: number;
}

export interface RateLimiterOptions {
  readonly clock: Clock;
  /** Buckets kept at most; see the file comment. Default 100,000. */
  readonly maxKeys?: number;
}

export const DEFAULT_MAX_KEYS = 100_000;

/** Slots allocated at first; the table doubles from here up to maxKeys as keys accumulate. */
const INITIAL_SLOTS = 1024;

/** Deficit classes for choosing which non-full buckets to forget at the cap. */
const BINS = 16;

export class RateLimiter {
  readonly #clock: Clock;
  /** Milliseconds per token: per / rate. */
  readonly #interval: number;
  /** How far fullAt may lie ahead of now and still hold a whole token: (burst - 1) · interval. */
  readonly #tolerance: number;
  /** Time for an empty bucket to fill: burst · interval. No bucket's fullAt lies further ahead of now than this. */
  readonly #refill: number;
  readonly #maxKeys: number;
  /** Key → slot. A slot holds one bucket: the time its bucket is full again, and its key (undefined when free). */
  readonly #slots = new Map<string, number>();
  #fullAt: Float64Array;
  #keys: (string | undefined)[];
  /** A stack of free slots. */
  #free: Int32Array;
  #freeCount: number;
  /** Counts per deficit class during a sweep, kept to avoid allocating one per sweep. */
  readonly #bins = new Uint32Array(BINS);

  constructor(limit: RateLimit, options: RateLimiterOptions) {
    const { rate, perMs, burst } = limit;
    const maxKeys = options.maxKeys ?? DEFAULT_MAX_KEYS;
    if (!(rate > 0 && Number.isFinite(rate))) throw new RangeError(`rate must be a positive number, not ${rate}`);
    if (!(perMs > 0 && Number.isFinite(perMs))) throw new RangeError(`per must be a positive duration, not ${perMs} ms`);
    if (!(Number.isInteger(burst) && burst >= 1)) throw new RangeError(`burst must be an integer ≥ 1, not ${burst}`);
    if (!(Number.isInteger(maxKeys) && maxKeys >= 1)) throw new RangeError(`maxKeys must be an integer ≥ 1, not ${maxKeys}`);
    this.#clock = options.clock;
    this.#interval = perMs / rate;
    this.#tolerance = (burst - 1) * this.#interval;
    this.#refill = burst * this.#interval;
    this.#maxKeys = maxKeys;
    this.#fullAt = new Float64Array(0);
    this.#keys = [];
    this.#free = new Int32Array(0);
    this.#freeCount = 0;
    this.#grow(Math.min(maxKeys, INITIAL_SLOTS));
  }

  /**
   * Takes a token from the key's bucket. Returns 0 when admitted; otherwise the whole milliseconds (≥ 1) until a
   * token is available, for Retry-After (the caller rounds up to seconds: RFC 9110 §10.2.3 allows only whole seconds).
   * A refused request takes nothing, so retrying after that wait is admitted unless other requests took the token.
   */
  take(key: string): number {
    const now = this.#clock();
    const slot = this.#slots.get(key);
    if (slot === undefined) {
      this.#add(key, now + this.#interval, now);
      return 0;
    }
    const fullAt = Math.max(this.#fullAt[slot]!, now);
    const wait = fullAt - now - this.#tolerance;
    if (wait > 0) return Math.ceil(wait);
    this.#fullAt[slot] = fullAt + this.#interval;
    return 0;
  }

  /** Keys tracked: those not yet full again, and full ones the next sweep will forget. */
  get size(): number {
    return this.#slots.size;
  }

  #add(key: string, fullAt: number, now: number): void {
    if (this.#freeCount === 0) this.#sweep(now);
    const slot = this.#free[--this.#freeCount]!;
    this.#fullAt[slot] = fullAt;
    this.#keys[slot] = key;
    this.#slots.set(key, slot);
  }

  /**
   * Out of slots: forgets every full bucket. If that leaves the table more than half full, doubles it, up to maxKeys;
   * at maxKeys, forgets non-full buckets, nearest to full first, down to 7/8 of it. Either way a sweep leaves at least
   * an eighth of the slots free, so the next one is that many new keys away: at most 16 slot visits per new key.
   */
  #sweep(now: number): void {
    const bins = this.#bins;
    const scale = BINS / this.#refill;
    bins.fill(0);
    for (let slot = 0; slot < this.#keys.length; slot++) {
      if (this.#keys[slot] === undefined) continue;
      const deficit = this.#fullAt[slot]! - now;
      if (deficit <= 0) this.#forget(slot);
      else bins[Math.min(BINS - 1, Math.floor(deficit * scale))]!++;
    }
    const live = this.#slots.size;
    const capacity = this.#keys.length;
    if (live > capacity / 2 && capacity < this.#maxKeys) this.#grow(Math.min(this.#maxKeys, 2 * capacity));
    let toForget = live - (this.#maxKeys - Math.ceil(this.#maxKeys / 8));
    if (toForget <= 0) return;
    // Every bucket in the classes nearest to full, then from the next class only as many as are still needed.
    let last = 0;
    let fromLast = toForget;
    while (fromLast > bins[last]!) fromLast -= bins[last++]!;
    for (let slot = 0; toForget > 0 && slot < this.#keys.length; slot++) {
      if (this.#keys[slot] === undefined) continue;
      const bin = Math.min(BINS - 1, Math.floor((this.#fullAt[slot]! - now) * scale));
      if (bin < last || (bin === last && fromLast-- > 0)) {
        this.#forget(slot);
        toForget--;
      }
    }
  }

  #forget(slot: number): void {
    this.#slots.delete(this.#keys[slot]!);
    this.#keys[slot] = undefined;
    this.#free[this.#freeCount++] = slot;
  }

  /** Grows the table to `capacity` slots, the new ones free (and taken lowest first). */
  #grow(capacity: number): void {
    const old = this.#fullAt.length;
    const fullAt = new Float64Array(capacity);
    fullAt.set(this.#fullAt);
    this.#fullAt = fullAt;
    const free = new Int32Array(capacity);
    free.set(this.#free.subarray(0, this.#freeCount));
    for (let slot = capacity - 1; slot >= old; slot--) free[this.#freeCount++] = slot;
    this.#free = free;
    for (let slot = old; slot < capacity; slot++) this.#keys.push(undefined);
  }
}
