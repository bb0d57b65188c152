/**
 * Panic mode (Envoy `healthy_panic_threshold`): when too few servers of a pool are available, the few that are would
 * take the whole load and fall over in turn, so the pool balances over all of its servers instead, health ignored.
 * Admin intent is not ignored: a disabled or draining server stays out.
 *
 * Two deliberate differences from Envoy: the share is taken over the servers the admin lets take traffic (draining
 * half the fleet for maintenance is not a health crisis), and with no server available at all there is no panic,
 * so Ballast answers 503 at once instead of sending every request to a server known to be down.
 */

/** Whether a pool with `available` of `eligible` servers available should spread over all of them. */
export function inPanic(available: number, eligible: number, threshold: number): boolean {
  if (available === 0 || eligible === 0) return false;
  // The epsilon keeps 3 of 10 at a 30% threshold out of panic (0.3 × 10 is 3.0000000000000004 in binary).
  return available < threshold * eligible - 1e-9;
}
