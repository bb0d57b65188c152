/**
 * Time and chance, injected wherever a decision depends on them (strategies, health, retries), so tests are exact
 * and table-driven instead of sleeping and sampling (Traefik `p2c.go` injects its `rnd` the same way).
 */

/** Milliseconds on a monotonic clock. Injected so decay, slow start and ejections are testable without sleeping. */
export type Clock = () => number;

/** A uniform random number in [0, 1). */
export type Random = () => number;

/** Timers behind an interface, so a test can fire them by hand. */
export interface Timers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

/** Node's timers, unref'd: a pending ejection end or probe never keeps the process alive on its own. */
export const REAL_TIMERS: Timers = {
  set(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clear(handle) {
    clearTimeout(handle as NodeJS.Timeout);
  },
};

/** The process's monotonic clock. */
export const monotonic: Clock = () => performance.now();

/** Waits `ms`, or less when the function given to `cancel` is called first (it is, at once, with the waker). */
export function delay(ms: number, cancel: (wake: () => void) => void): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    cancel(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
