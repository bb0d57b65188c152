/**
 * When the next active probe of a server starts. The delay runs from the end of the previous probe, so a probe still
 * in flight is never started again and a slow server is never probed more often than its interval allows.
 *
 * Jitter spreads each delay uniformly over interval × (1 ± jitter), so many Ballast replicas (or one replica's many
 * servers) that started together drift apart instead of probing in lockstep (HAProxy `spread-checks`).
 */
import type { Random } from '../util/clock.js';
import type { HealthCheckConfig } from '../config/schema.js';

/** The interval for a server in this state: `unhealthy_interval` while it is unhealthy (HAProxy `downinter`). */
export function probeInterval(config: Pick<HealthCheckConfig, 'interval' | 'unhealthy_interval'>, healthy: boolean): number {
  // Unset, a down server is probed twice as often, so its recovery is noticed in half the time.
  return healthy ? config.interval : (config.unhealthy_interval ?? Math.max(1, Math.round(config.interval / 2)));
}

/** The base interval spread uniformly over ± `jitter` (a share in [0, 1]). */
export function jittered(intervalMs: number, jitter: number, random: Random): number {
  const share = Math.min(1, Math.max(0, jitter));
  return Math.max(0, intervalMs * (1 + share * (2 * random() - 1)));
}
