/**
 * Peak EWMA: latency-aware power of two choices. Of two hosts drawn at random (in proportion to effective weight),
 * prefer the lower cost = latency estimate × (inflight + 1) / effectiveWeight; the estimate is a peak-sensitive,
 * time-decayed moving average of response latency, kept per host by the PeakEwma class below.
 *
 * Cost per pick: O(log n) expected, two estimate reads (one exp() each), no allocation beyond the generator (p2c.ts).
 * Source: Finagle `PeakEwma` / `P2CPeakEwma` (balancers, "peak EWMA" with the `outstanding + 1` load factor) and
 * Linkerd2's tower `peak_ewma.rs` (decay toward zero when no samples arrive).
 *
 * StrategyOptions.decayMs is not read here: it configures the PeakEwma that each host owns (the upstream builds
 * them), because the estimate lives as long as the host, across picker rebuilds.
 */

import { loadOf } from './least-request.js';
import { powerOfTwoChoices } from './p2c.js';
import { NOTHING } from './rotation.js';
import type { BalancedHost, LatencyObserver, Picker, Strategy, StrategyDeps } from './types.js';
import type { Clock, Random } from '../util/clock.js';
import { WeightedSampler } from './weighted-sample.js';
import { effectiveWeightOf } from './weights.js';

/** Decay window: Finagle's and Linkerd's default (10 s). A shorter one forgets a slow spell sooner but flaps more. */
export const DEFAULT_DECAY_MS = 10_000;

/**
 * What a failure costs, at least: a fast error (connection refused in 1 ms) must not look like a fast server, or
 * the host that fails quickest would win the most traffic. One second is slower than any healthy response we
 * expect to compare against; a host that is already slower than that is penalised by doubling its estimate instead.
 */
export const FAILURE_PENALTY_MS = 1_000;

/**
 * Ceiling on the estimate, so repeated failures back off the host exponentially (each doubles the estimate) but
 * the decay can still bring it back into play: from one minute, about 90 s of decay (at 10 s) to look like 10 ms.
 */
export const MAX_ESTIMATE_MS = 60_000;

export const peakEwma: Strategy = {
  name: 'peak-ewma',
  build<H extends BalancedHost>(hosts: readonly H[], deps: StrategyDeps): Picker<H> {
    return new PeakEwmaPicker([...hosts], deps.random, deps.clock);
  },
};

/**
 * b is cheaper than a. While either host has no estimate yet (0: never answered, and no initialMs), latency cannot
 * be compared, so both are compared by load alone: a new host is tried (it is idle) but not flooded, which a raw
 * cost of 0 × (inflight + 1) = 0 would do until its first response came back.
 */
function cheaper(a: BalancedHost, b: BalancedHost, now: number): boolean {
  const la = a.latency.estimate(now);
  const lb = b.latency.estimate(now);
  if (la > 0 && lb > 0) return costOf(b, lb) < costOf(a, la);
  return loadOf(b) < loadOf(a);
}

function costOf(host: BalancedHost, latency: number): number {
  const w = effectiveWeightOf(host);
  return w > 0 ? (latency * (host.inflight + 1)) / w : Infinity;
}

class PeakEwmaPicker<H extends BalancedHost> implements Picker<H> {
  readonly #hosts: readonly H[];
  readonly #random: Random;
  readonly #clock: Clock;
  readonly #sampler: WeightedSampler<H>;

  constructor(hosts: readonly H[], rnd: Random, clock: Clock) {
    this.#hosts = hosts;
    this.#random = rnd;
    this.#clock = clock;
    this.#sampler = new WeightedSampler(hosts, rnd);
  }

  candidates(): Iterable<H> {
    if (this.#hosts.length === 0) return NOTHING;
    return powerOfTwoChoices(this.#hosts, this.#sampler, this.#random, cheaper, this.#clock());
  }
}

/**
 * A host's peak-sensitive latency estimate, in milliseconds.
 *
 * - A sample above the current estimate replaces it at once (peak sensitivity: react to a slowdown immediately).
 * - A sample below it is averaged in, the old value weighted by exp(-elapsed / decayMs), so the estimate follows
 *   the host down at a rate set by time, not by request rate.
 * - Between samples the estimate decays toward zero (read-only: estimate(now) does not mutate), so a host that lost
 *   every comparison, or was penalised, is tried again after a while instead of starving forever.
 * - A failure counts as a sample of max(2 × estimate, FAILURE_PENALTY_MS), capped at MAX_ESTIMATE_MS.
 * - Before the first sample the estimate is `initialMs`. The default 0 means "unknown", which the strategy compares
 *   by load alone (see `cheaper`), so new hosts get traffic in proportion to their weight straight away.
 */
export class PeakEwma implements LatencyObserver {
  readonly #decayMs: number;
  readonly #clock: Clock;
  #value: number;
  #stamp: number;

  constructor(options: { decayMs: number; clock: Clock; initialMs?: number }) {
    const { decayMs, clock, initialMs = 0 } = options;
    if (!(decayMs > 0) || !Number.isFinite(decayMs)) {
      throw new RangeError(`peak-ewma decayMs must be a positive number of milliseconds, got ${decayMs}`);
    }
    if (!(initialMs >= 0) || !Number.isFinite(initialMs)) {
      throw new RangeError(`peak-ewma initialMs must be a non-negative number of milliseconds, got ${initialMs}`);
    }
    this.#decayMs = decayMs;
    this.#clock = clock;
    this.#value = Math.min(initialMs, MAX_ESTIMATE_MS);
    this.#stamp = clock();
  }

  observe(latencyMs: number): void {
    // A NaN would poison the estimate for good; a negative latency is a clock glitch, closest to 0.
    if (Number.isNaN(latencyMs)) return;
    const sample = Math.min(Math.max(latencyMs, 0), MAX_ESTIMATE_MS);
    const now = this.#clock();
    const decay = this.#decayFactor(now);
    const current = this.#value * decay;
    this.#value = sample > current ? sample : current + sample * (1 - decay);
    this.#stamp = now;
  }

  observeFailure(): void {
    const now = this.#clock();
    const current = this.#value * this.#decayFactor(now);
    this.#value = Math.min(Math.max(current * 2, FAILURE_PENALTY_MS), MAX_ESTIMATE_MS);
    this.#stamp = now;
  }

  estimate(now: number): number {
    return this.#value * this.#decayFactor(now);
  }

  /**
   * Continue from `previous`'s estimate (the same server's, before a reload), decayed from its last sample as it
   * would have been; the decay window stays this one's. Both must read the same clock.
   */
  continueFrom(previous: PeakEwma): void {
    this.#value = previous.#value;
    this.#stamp = previous.#stamp;
  }

  #decayFactor(now: number): number {
    // A clock that reads earlier than the last sample (two clocks mixed up) must not inflate the estimate.
    const elapsed = now - this.#stamp;
    return elapsed > 0 ? Math.exp(-elapsed / this.#decayMs) : 1;
  }
}
