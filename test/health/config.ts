/** YAML for the health tests: one listener, one upstream, access log off (the tests count log lines). */
import type { BallastOptions } from '../../src/ballast.js';
import { startBallast, type TestBallast } from '../helpers/ballast.js';
import { startOrigin, type Origin } from '../helpers/origin.js';

export interface PoolOptions {
  readonly servers: readonly (Origin | { address: string; backup?: boolean; weight?: number })[];
  /** Upstream keys, as YAML lines indented by four spaces. */
  readonly upstream?: string;
  readonly admin?: string;
  readonly level?: string;
}

export function poolConfig(o: PoolOptions): string {
  const servers = o.servers.map((s) => {
    const extra = 'backup' in s || 'weight' in s ? `${'backup' in s && s.backup ? ', backup: true' : ''}${'weight' in s && s.weight !== undefined ? `, weight: ${s.weight}` : ''}` : '';
    return `      - { address: ${s.address}${extra} }`;
  });
  return `
admin: { listen: 127.0.0.1:0${o.admin ?? ''} }
logging: { level: ${o.level ?? 'info'}, access_log: false }
listeners:
  - name: web
    listen: 127.0.0.1:0
    routes:
      - upstream: pool
upstreams:
  - name: pool
    servers:
${servers.join('\n')}
${o.upstream ?? ''}
`;
}

/** Everything a test starts, stopped in reverse order after it. */
export class Fixture {
  readonly #cleanup: (() => Promise<void>)[] = [];

  async origins(n: number, prefix = 'o'): Promise<Origin[]> {
    const list = await Promise.all(Array.from({ length: n }, (_, i) => startOrigin(`${prefix}${i + 1}`)));
    this.#cleanup.push(async () => {
      await Promise.all(list.map((o) => o.close()));
    });
    return list;
  }

  async ballast(yaml: string, options: BallastOptions = {}): Promise<TestBallast> {
    const b = await startBallast(yaml, options);
    this.#cleanup.push(() => b.stop());
    return b;
  }

  defer(fn: () => Promise<void>): void {
    this.#cleanup.push(fn);
  }

  async close(): Promise<void> {
    for (const c of this.#cleanup.splice(0).reverse()) await c();
  }
}
