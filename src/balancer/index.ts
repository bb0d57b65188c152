/**
 * The balancer module: the strategies by name, and the pieces the upstream and proxy use around them.
 */

import { consistentHash } from './consistent-hash.js';
import { leastRequest } from './least-request.js';
import { maglev } from './maglev.js';
import { peakEwma } from './peak-ewma.js';
import { random } from './random.js';
import { roundRobin } from './round-robin.js';
import type { BalanceName, Strategy } from './types.js';
import { weightedRoundRobin } from './weighted-round-robin.js';

const STRATEGIES: { readonly [name in BalanceName]: Strategy } = {
  'round-robin': roundRobin,
  'weighted-round-robin': weightedRoundRobin,
  random,
  'least-request': leastRequest,
  'peak-ewma': peakEwma,
  'consistent-hash': consistentHash,
  maglev,
};

/** The strategy configured as `balance: NAME`. */
export function strategyFor(name: BalanceName): Strategy {
  const strategy = STRATEGIES[name];
  // Config is validated at the edge, but a name from an unchecked source must not become `undefined.build`.
  if (strategy === undefined) throw new Error(`unknown balance strategy ${JSON.stringify(name)}`);
  return strategy;
}

/** Whether a strategy maps a hash key (and so needs `hash_key`). */
export function isHashing(name: BalanceName): boolean {
  return name === 'consistent-hash' || name === 'maglev';
}

export { consistentHash, DEFAULT_VIRTUAL_NODES, MAX_RING_POINTS } from './consistent-hash.js';
export { compileHashKey, HASH_KEY_PATTERN, type HashKeyReader, type HashKeySource } from './hash-key.js';
export { murmur3 } from './hash.js';
export { leastRequest } from './least-request.js';
export { DEFAULT_TABLE_SIZE, maglev } from './maglev.js';
export { DEFAULT_DECAY_MS, FAILURE_PENALTY_MS, MAX_ESTIMATE_MS, PeakEwma, peakEwma } from './peak-ewma.js';
export { random } from './random.js';
export { roundRobin } from './round-robin.js';
export { StickyTable, stickyCookieValue } from './sticky.js';
export { BALANCE_NAMES } from './types.js';
export type {
  BalancedHost,
  BalanceName,
  HashKey,
  LatencyObserver,
  Picker,
  Strategy,
  StrategyDeps,
  StrategyOptions,
} from './types.js';
export { weightedRoundRobin } from './weighted-round-robin.js';
