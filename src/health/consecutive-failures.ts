/**
 * The consecutive-failure rules of passive outlier detection (Envoy `consecutive_5xx`, `consecutive_gateway_failure`),
 * as pure functions over the outcome of each proxied attempt.
 *
 * Outcomes fall into four classes, and local-origin failures (the connection never produced a response: refused,
 * timed out, reset) are kept apart from the 5xx an upstream chose to send:
 * - `consecutive_failures` counts every failure in a row: 5xx answers and local-origin failures;
 * - `consecutive_gateway_failures` counts 502, 503, 504 and local-origin failures in a row; any other answer,
 *   a 500 included, breaks the run (Envoy does the same), since a 500 says the server is up and talking;
 * - the local-origin run is counted on its own, so an ejection by the gateway rule says whether the server was
 *   unreachable (`consecutive_local_origin_failures`) or answered with gateway errors.
 * Any answer below 500 (a 404 too: the server works) resets every run.
 *
 * The runs are not reset by an ejection: when it ends, the server gets one trial, and one more failure ejects it
 * again (for longer; ejection.ts), while one success clears its record.
 */
import type { Outcome } from '../upstream/outcome.js';

export type OutcomeClass = 'success' | 'upstream-5xx' | 'gateway' | 'local-origin';

export function classifyOutcome(outcome: Outcome): OutcomeClass {
  // A TCP connection that opened is layer 4's answer: the server is up.
  if (outcome.kind === 'connected') return 'success';
  if (outcome.kind !== 'response') return 'local-origin';
  const s = outcome.status;
  if (s < 500) return 'success';
  return s === 502 || s === 503 || s === 504 ? 'gateway' : 'upstream-5xx';
}

export interface FailureRuns {
  readonly failures: number;
  readonly gateway: number;
  readonly localOrigin: number;
}

export const NO_FAILURES: FailureRuns = Object.freeze({ failures: 0, gateway: 0, localOrigin: 0 });

export function nextRuns(runs: FailureRuns, cls: OutcomeClass): FailureRuns {
  switch (cls) {
    case 'success':
      return NO_FAILURES;
    case 'upstream-5xx':
      return { failures: runs.failures + 1, gateway: 0, localOrigin: 0 };
    case 'gateway':
      return { failures: runs.failures + 1, gateway: runs.gateway + 1, localOrigin: 0 };
    case 'local-origin':
      return { failures: runs.failures + 1, gateway: runs.gateway + 1, localOrigin: runs.localOrigin + 1 };
  }
}

export type ConsecutiveReason = 'consecutive_failures' | 'consecutive_gateway_failures' | 'consecutive_local_origin_failures';

/** The rule these runs break, if any; a threshold of 0 turns its rule off. The gateway rule is checked first. */
export function brokenRule(runs: FailureRuns, thresholds: { readonly failures: number; readonly gateway: number }): ConsecutiveReason | undefined {
  if (thresholds.gateway > 0 && runs.gateway >= thresholds.gateway) {
    return runs.localOrigin >= runs.gateway ? 'consecutive_local_origin_failures' : 'consecutive_gateway_failures';
  }
  if (thresholds.failures > 0 && runs.failures >= thresholds.failures) return 'consecutive_failures';
  return undefined;
}
