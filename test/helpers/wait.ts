/** Polling helpers for tests over real sockets: wait for behaviour, with generous bounds, instead of sleeping. */

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Resolves with the milliseconds it took once `cond` holds; rejects after `timeoutMs`, naming `what` (a function is
 * called then, so the message can say how far things got). `cond` is polled every `intervalMs`, and may be async.
 */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  options: { timeoutMs?: number; intervalMs?: number; what?: string | (() => string) } = {},
): Promise<number> {
  const { timeoutMs = 10_000, intervalMs = 10, what = 'condition' } = options;
  const started = performance.now();
  for (;;) {
    if (await cond()) return performance.now() - started;
    if (performance.now() - started > timeoutMs) throw new Error(`${typeof what === 'function' ? what() : what}: not met within ${timeoutMs} ms`);
    await sleep(intervalMs);
  }
}
