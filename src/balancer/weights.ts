/**
 * How strategies read a host's weights. Shared so that every strategy treats odd values the same way.
 */

import type { BalancedHost } from './types.js';

/**
 * The weight to balance with at this instant, clamped to [0, weight].
 *
 * Read at pick time, never cached: slow start raises it without a rebuild. The clamp keeps a transient bad value
 * (NaN, negative, or above the configured weight) from skewing a pick, and lets weighted-sample.ts use the configured
 * weight as an upper bound for rejection sampling.
 */
export function effectiveWeightOf(host: BalancedHost): number {
  const w = host.effectiveWeight;
  const cap = configuredWeightOf(host);
  if (!(w > 0)) return 0;
  return w < cap ? w : cap;
}

/** The configured weight, or 0 if it is not a positive number (the contract says >= 1; a 0 never wins a pick). */
export function configuredWeightOf(host: BalancedHost): number {
  const w = host.weight;
  return w > 0 && Number.isFinite(w) ? w : 0;
}
