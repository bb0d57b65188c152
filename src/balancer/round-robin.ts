/**
 * Round robin: plain rotation over the hosts in configuration order, ignoring weights.
 *
 * Cost per pick: O(1), no allocation beyond the generator. Source: the classic scheduler (HAProxy `roundrobin` without
 * weights, NGINX's default with equal weights); use weighted-round-robin.ts when weights matter.
 *
 * Each pick starts just after the host the previous pick was taken at, then walks on through every host once, so a
 * retry reaches the next server and a server that is down gives its turns to no one (rotation.ts `turns`).
 */

import { Cursor, NOTHING, turns } from './rotation.js';
import type { BalancedHost, HashKey, Picker, Strategy } from './types.js';

export const roundRobin: Strategy = {
  name: 'round-robin',
  build<H extends BalancedHost>(hosts: readonly H[]): Picker<H> {
    return new RoundRobinPicker(hosts);
  },
};

class RoundRobinPicker<H extends BalancedHost> implements Picker<H> {
  readonly #hosts: readonly H[];
  readonly #cursor = new Cursor();
  /** Retries take their turns here, apart from first choices (types.ts, Picker). */
  readonly #retryCursor = new Cursor();

  constructor(hosts: readonly H[]) {
    this.#hosts = [...hosts];
  }

  candidates(_key?: HashKey, retry = false): Iterable<H> {
    const n = this.#hosts.length;
    if (n === 0) return NOTHING;
    return turns(this.#hosts, retry ? this.#retryCursor : this.#cursor);
  }
}
