import { describe, expect, it } from 'vitest';
import { initialHistory, observeHealth, type HealthHistory } from '../../src/health/hysteresis.js';

const T = { healthy: 2, unhealthy: 3 };

/** Feeds results in order (+ pass, - fail); returns each verdict (H healthy, u unhealthy), ! where it flipped. */
function run(start: HealthHistory, results: string): string {
  let h = start;
  const out: string[] = [];
  for (const r of results) {
    const o = observeHealth(h, r === '+', T);
    h = o.history;
    out.push((h.healthy ? 'H' : 'u') + (o.flipped ? '!' : ''));
  }
  return out.join(' ');
}

describe('rise/fall hysteresis', () => {
  it.each([
    ['starts unhealthy: the first pass decides at once', false, '+', 'H!'],
    ['starts unhealthy: a first failure keeps it out, then healthy_threshold passes', false, '-++', 'u u H!'],
    ['starts healthy: the first failure decides at once', true, '-', 'u!'],
    ['starts healthy: a first pass confirms it, no flip', true, '+', 'H'],
    ['unhealthy_threshold failures in a row to go down', true, '+---', 'H H H u!'],
    ['a pass in between resets the count', true, '+--+--', 'H H H H H H'],
    ['healthy_threshold passes in a row to come back', true, '+---+-++', 'H H H u! u u u H!'],
    ['alternating results never flip', true, '+-+-+-+-', 'H H H H H H H H'],
  ])('%s', (_name, initial, results, expected) => {
    expect(run(initialHistory(initial), results)).toBe(expected);
  });

  it('thresholds of 1 flip on every change', () => {
    let h = initialHistory(true);
    const flips: boolean[] = [];
    for (const r of [true, false, true, true, false]) {
      const o = observeHealth(h, r, { healthy: 1, unhealthy: 1 });
      h = o.history;
      flips.push(o.flipped);
    }
    expect(flips).toEqual([false, true, true, false, true]);
  });

  it('returns the same object when nothing changes (no allocation on the steady path)', () => {
    const h = observeHealth(initialHistory(true), true, T).history;
    expect(observeHealth(h, true, T).history).toBe(h);
  });
});
