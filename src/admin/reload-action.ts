/**
 * `POST /reload` (design.md "Admin additions"): re-read the config file the process was started with, as SIGHUP
 * does, and say how it went. Like every POST route it needs the bearer token when `admin.token` is set, and passes
 * the cross-origin and Host checks first (request-guard.ts).
 *
 *   200  reloaded: `{ status, file, listeners, upstreams, servers: { kept, added, removed } }`
 *   400  the file cannot be read or is invalid: `errors`, each with `path`, `line`, `column`, `message`; the running
 *        config stays in force
 *   409  this instance was started in-process from a config object: there is no file to re-read
 *   500  a valid config that could not be applied (a new listener address already taken, a worker that refused it);
 *        nothing changed
 *
 * In cluster mode the primary serves the admin, so the reload goes through it (cluster-reload.ts), as SIGHUP does.
 */
import type { ConfigReloader } from '../reload/config-reloader.js';
import { AdminError } from './server.js';

export const RELOAD_PATH = '/reload';

/** The route's handler; `reloader` is undefined when the config came from no file. */
export function reloadAction(reloader: ConfigReloader | undefined): () => Promise<unknown> {
  return async () => {
    if (reloader === undefined) {
      throw new AdminError(409, 'this instance was started from a config object, not a file: there is nothing to re-read (call Ballast.reload)');
    }
    const r = await reloader.reload('admin');
    switch (r.result) {
      case 'success':
        return { status: 'reloaded', file: r.file, listeners: r.listeners, upstreams: r.upstreams, servers: r.servers };
      case 'unchanged':
        return { status: 'unchanged', file: r.file };
      case 'invalid':
        throw new AdminError(400, 'the config file is invalid: the running config is kept', { file: r.file, errors: r.errors });
      case 'failed':
        throw new AdminError(500, 'the config could not be applied: the running config is kept', { file: r.file, detail: r.error });
    }
  };
}
