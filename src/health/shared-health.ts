/**
 * Health as data that can cross a process boundary (cluster mode, src/cluster/): the changes one process decides
 * and the others apply, and a snapshot of every server's flags for a process that starts (or reloads) late.
 *
 * Each event carries one source's verdict only (design.md: one flag per source), so applying them in any order
 * never lets one source undo another. Times travel as durations, never as clock readings: each process's clock
 * (`performance.now()`) has its own origin.
 */
import type { EjectionReason } from './outlier-detector.js';

export type HealthEvent =
  /** An active check flipped (only the process that probes decides these). */
  | { readonly kind: 'active'; readonly upstream: string; readonly server: string; readonly failed: boolean }
  /** Passive outlier detection ejected the server for `forMs` from now; `count` is its ejection multiplier. */
  | { readonly kind: 'ejected'; readonly upstream: string; readonly server: string; readonly forMs: number; readonly count: number; readonly reason: EjectionReason }
  /** An ejection ended early: a probe that started after it passed (`uneject_on_active_success`). */
  | { readonly kind: 'ejection-ended'; readonly upstream: string; readonly server: string }
  /** The admin drained, undrained, disabled or enabled the server: both admin flags as they now are. */
  | { readonly kind: 'admin'; readonly upstream: string; readonly server: string; readonly draining: boolean; readonly disabled: boolean };

/** One server's flags, for a snapshot. */
export interface HostHealth {
  readonly upstream: string;
  readonly server: string;
  readonly activeCheckFailed: boolean;
  /** Milliseconds of passive ejection left; 0 when not ejected. */
  readonly ejectedForMs: number;
  /** Times ejected (decayed): the multiplier of the next ejection. */
  readonly ejections: number;
  readonly draining: boolean;
  readonly disabled: boolean;
}
