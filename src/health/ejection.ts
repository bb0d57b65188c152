/**
 * The arithmetic of passive ejection (Envoy outlier detection, `outlier_detection.proto`):
 *
 * - how long: `base_ejection_time` × the number of times the server has been ejected, capped by
 *   `max_ejection_time` (but never below the base), then lengthened by up to EJECTION_JITTER so that replicas which
 *   ejected a server on the same failures do not all send it traffic again at the same instant;
 * - how many: an ejection is allowed only if, counting it, no more than `max_ejection_percent` of the pool's servers
 *   are ejected. The share is checked after the ejection, exactly: 50% of 4 allows 2, 0% allows none, 100% all.
 */
import type { Random } from '../util/clock.js';

/** Up to 10% longer than the computed time. A constant: nobody can set this sensibly per pool. */
export const EJECTION_JITTER = 0.1;

export interface EjectionTimes {
  readonly baseMs: number;
  readonly maxMs: number;
}

/** The largest useful ejection count: beyond it the time is capped anyway, and the count would only decay slower. */
export function maxEjectionCount(times: EjectionTimes): number {
  if (times.baseMs <= 0) return 1;
  return Math.max(1, Math.ceil(times.maxMs / times.baseMs));
}

/** Milliseconds to eject a server for, on its `count`-th ejection (count >= 1). */
export function ejectionDuration(count: number, times: EjectionTimes, random: Random): number {
  const cap = Math.max(times.baseMs, times.maxMs);
  const ms = Math.min(times.baseMs * Math.max(1, count), cap);
  return ms * (1 + EJECTION_JITTER * random());
}

/** How many of `total` servers may be ejected at once under `maxShare` (a share in [0, 1]). */
export function maxEjectable(total: number, maxShare: number): number {
  // The epsilon keeps 30% of 10 at 3 (0.3 × 10 is 3.0000000000000004, and 0.29 × 100 is 28.999999999999996).
  return Math.max(0, Math.min(total, Math.floor(maxShare * total + 1e-9)));
}

/** Whether one more server may be ejected when `ejected` of `total` already are. */
export function mayEject(ejected: number, total: number, maxShare: number): boolean {
  return ejected + 1 <= maxEjectable(total, maxShare);
}
