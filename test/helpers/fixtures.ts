/**
 * Per-test resources that clean up after themselves: origins and Ballast instances started through these helpers
 * (or anything registered with `onCleanup`) are stopped after each test, last started first.
 */
import { afterEach } from 'vitest';
import { startOrigin, type Origin } from './origin.js';
import { startBallast, type TestBallast } from './ballast.js';

const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

export function onCleanup(fn: () => Promise<void> | void): void {
  cleanups.push(fn);
}

/** `n` origins named o1…on on ephemeral ports. */
export function origins(n: number): Promise<Origin[]> {
  return namedOrigins(...Array.from({ length: n }, (_, i) => `o${i + 1}`));
}

/** One origin per name, on ephemeral ports. */
export async function namedOrigins(...names: string[]): Promise<Origin[]> {
  const list = await Promise.all(names.map((name) => startOrigin(name)));
  onCleanup(async () => {
    await Promise.all(list.map((o) => o.close()));
  });
  return list;
}

export async function ballast(yaml: string): Promise<TestBallast> {
  const b = await startBallast(yaml);
  onCleanup(() => b.stop());
  return b;
}
