/**
 * Rise/fall hysteresis for active checks (HAProxy `rise`/`fall`, Envoy `healthy_threshold`/`unhealthy_threshold`),
 * as a tiny pure function that reports a flip, so the caller acts and logs only on flips (Pingora
 * `health_check.rs`, `observe_health`).
 *
 * A server's state before its first probe is a guess (`initial_state`), so the first result decides at once, either
 * way: a new server takes traffic after one passing probe (Envoy does the same for a new host), and a server assumed
 * healthy that fails its first probe is not sent traffic for `unhealthy_threshold` more intervals.
 * After that, `unhealthy_threshold` consecutive failures turn a healthy server unhealthy, and `healthy_threshold`
 * consecutive passes turn it back.
 */

export interface HealthHistory {
  readonly healthy: boolean;
  /** False until the first probe result. */
  readonly probed: boolean;
  /** Consecutive results that disagree with `healthy`. */
  readonly streak: number;
}

export interface Thresholds {
  /** Passes that turn an unhealthy server healthy (>= 1). */
  readonly healthy: number;
  /** Failures that turn a healthy server unhealthy (>= 1). */
  readonly unhealthy: number;
}

export interface Observed {
  readonly history: HealthHistory;
  /** The verdict changed with this result. */
  readonly flipped: boolean;
}

export function initialHistory(healthy: boolean): HealthHistory {
  return { healthy, probed: false, streak: 0 };
}

export function observeHealth(history: HealthHistory, passed: boolean, thresholds: Thresholds): Observed {
  if (!history.probed) {
    return { history: { healthy: passed, probed: true, streak: 0 }, flipped: passed !== history.healthy };
  }
  if (passed === history.healthy) {
    return { history: history.streak === 0 ? history : { ...history, streak: 0 }, flipped: false };
  }
  const streak = history.streak + 1;
  const needed = history.healthy ? thresholds.unhealthy : thresholds.healthy;
  if (streak >= needed) return { history: { healthy: passed, probed: true, streak: 0 }, flipped: true };
  return { history: { ...history, streak }, flipped: false };
}
