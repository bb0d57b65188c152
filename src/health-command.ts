/**
 * `ballast health --config FILE`: is the Ballast that runs this config ready? For a container's HEALTHCHECK (the
 * Dockerfile), a script or a human: it reads the admin address from the config, so the check follows the config
 * instead of hard-coding port 9901 (issue #16), and answers in one line with exit 0 (ready) or 1 (anything else).
 *
 * It asks `/ready`, not `/healthz`: `/healthz` answers 200 as soon as the admin listens, while `/ready` answers 200
 * only once the listeners are bound and every server has had its first health check, and 503 again from the moment
 * a drain starts: "healthy" then means "can take traffic", which is what `depends_on: condition: service_healthy` and
 * a container status should say. (A Kubernetes liveness probe is different: it restarts, so it uses /healthz.)
 */
import { request } from 'node:http';
import type { Config } from './config/schema.js';

/** A wildcard address is where the admin listens, not where to reach it: ask its loopback twin. */
const REACH = new Map([['0.0.0.0', '127.0.0.1'], ['::', '::1']]);

export interface HealthAnswer {
  readonly ok: boolean;
  /** One line: what was asked and what came back. */
  readonly line: string;
}

/** The admin URL of a config, reachable from the same host. */
export function adminUrl(config: Config, path: string): URL | undefined {
  const { host, port } = config.admin.listen;
  if (port === 0) return undefined;
  const reach = REACH.get(host) ?? host;
  return new URL(`http://${reach.includes(':') ? `[${reach}]` : reach}:${port}${path}`);
}

/** GET `/ready` on the config's admin listener; never rejects, and gives up after `timeoutMs`. */
export async function checkHealth(config: Config, timeoutMs = 3000): Promise<HealthAnswer> {
  const url = adminUrl(config, '/ready');
  if (url === undefined) return { ok: false, line: 'admin.listen has port 0 (a port the system picks): there is no known address to ask' };
  return new Promise((resolve) => {
    const req = request(url, { method: 'GET', timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('error', (err) => resolve({ ok: false, line: `${url.href}: ${err.message}` }));
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        const said = /"status":\s*"([^"]*)"/.exec(body)?.[1];
        resolve({ ok: status === 200, line: `${url.href}: ${status}${said === undefined ? '' : ` ${said}`}` });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      const why = err.code === 'ECONNREFUSED' ? 'connection refused (is Ballast running with this config?)' : err.message;
      resolve({ ok: false, line: `${url.href}: ${why}` });
    });
    req.end();
  });
}
