/** Upstreams built from YAML with an injected clock and random, for unit tests (no socket is opened). */
import { parseConfig, formatConfigErrors } from '../../src/config/load.js';
import { Upstream } from '../../src/upstream/upstream.js';
import { mulberry32 } from '../helpers/random.js';

export interface ManualClock {
  now: number;
  (): number;
}

export function manualClock(start = 1_000_000): ManualClock {
  const clock = (() => clock.now) as ManualClock;
  clock.now = start;
  return clock;
}

export interface HeldClock {
  (): number;
  /** Stop the clock at `at` (default: now), which must not be earlier than what it reads now; returns `at`. */
  hold(at?: number): number;
  /** Let it run again from where it was held. */
  release(): void;
}

/**
 * performance.now(), which an end-to-end test can hold still at chosen moments: what depends on the time (slow start)
 * is then the same for every request sent meanwhile, however slowly the machine sends them.
 */
export function heldClock(): HeldClock {
  let held: number | undefined;
  let offset = 0;
  const clock = (() => held ?? performance.now() + offset) as HeldClock;
  clock.hold = (at) => {
    const now = clock();
    if (at !== undefined && at < now) throw new Error(`cannot hold the clock at ${at}: it reads ${now} already`);
    held = at ?? now;
    return held;
  };
  clock.release = () => {
    if (held === undefined) return;
    offset = held - performance.now();
    held = undefined;
  };
  return clock;
}

/** A deterministic uniform random (mulberry32). */
export function seededRandom(seed = 42): () => number {
  return mulberry32(seed);
}

/** One upstream named pool over `n` servers 127.0.0.1:1.., the last `backups` of them backups. */
export function upstream(keys: string, options: { n?: number; backups?: number; clock?: ManualClock; random?: () => number } = {}): Upstream {
  const { n = 4, backups = 0 } = options;
  const servers = Array.from({ length: n }, (_, i) => `      - { address: 127.0.0.1:${i + 1}${i >= n - backups ? ', backup: true' : ''} }`).join('\n');
  const yaml = `
listeners: [{ name: web, listen: 127.0.0.1:0, routes: [{ upstream: pool }] }]
upstreams:
  - name: pool
    servers:
${servers}
${keys}
`;
  const r = parseConfig(yaml, {});
  if (!r.ok) throw new Error(formatConfigErrors('test', r.errors));
  return new Upstream(r.config.upstreams[0]!, { clock: options.clock ?? manualClock(), random: options.random ?? seededRandom() });
}
