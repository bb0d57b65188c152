/**
 * A reload in cluster mode (SIGHUP, `POST /reload` or `--watch`, all in the primary: reload/config-reloader.ts reads
 * and validates the file, and refuses an invalid one with nothing changed): apply the config everywhere, or nowhere.
 * It is applied in the primary first (its new servers probed), then in every worker; if a worker refuses it (a new
 * listener that cannot bind), the primary and every worker go back to the previous config, so the cluster never runs
 * two configs for longer than the reload, and the reload fails.
 *
 * When each worker binds a socket of its own (accept.ts), a listener address the running config does not hold is
 * first bound once by the primary without SO_REUSEPORT: an address another process holds refuses the reload, as it
 * does in a single process, where the workers' own binds would have succeeded and shared the port with that process.
 *
 * The primary's Ballast holds the config in force (`ballast.config`): a worker forked during a reload starts on it.
 */
import type { Worker } from 'node:cluster';
import { adminChanged, type Ballast } from '../ballast.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { WorkerRpc } from './worker-rpc.js';
import { ensureFree, newAddresses, type AcceptMode } from './accept.js';

const RELOAD_TIMEOUT_MS = 15_000;

export interface ClusterReloadDeps {
  readonly ballast: Ballast;
  readonly rpc: WorkerRpc;
  /** The workers that have had their `init`: each runs a config and must switch. */
  readonly workers: () => readonly Worker[];
  /** How many workers run (a change of `workers` takes a restart). */
  readonly count: number;
  readonly accept: AcceptMode;
  readonly log: Logger;
}

/**
 * Apply a validated config to the primary and every worker; rejects, with the previous config back everywhere, if
 * either refuses it. The caller (the reloader) runs them one at a time, and logs and counts the result.
 */
export async function reloadCluster(deps: ClusterReloadDeps, next: Config): Promise<void> {
  const { ballast, log } = deps;
  const previous = ballast.config;
  if (next.workers !== previous.workers) {
    log.warn({ workers: deps.count, configured: next.workers }, 'workers changed: it takes effect at the next restart');
  }
  if (adminChanged(previous, next)) log.warn({}, 'admin settings changed: they take effect at the next restart');
  if (deps.accept === 'reuseport') await ensureFree(newAddresses(previous, next));
  await ballast.reload(next);
  const failed = await reloadWorkers(deps, next);
  if (failed.length === 0) return;
  log.error({ errors: failed }, 'reload failed in a worker: going back to the previous config');
  try {
    await ballast.reload(previous);
  } catch (err) {
    log.error({ err }, 'could not go back to the previous config here');
  }
  const again = await reloadWorkers(deps, previous);
  if (again.length > 0) log.error({ errors: again }, 'a worker could not go back to the previous config');
  throw new Error(`a worker refused the config: ${failed.map((f) => `worker ${f.worker}: ${f.error}`).join('; ')}`);
}

/** Reload every worker that has its config, with the primary's health as of now; resolves with those that refused. */
async function reloadWorkers(deps: ClusterReloadDeps, config: Config): Promise<{ worker: number; error: string }[]> {
  const health = deps.ballast.health.snapshot();
  const members = deps.ballast.members();
  const targets = deps.workers();
  const answers = await Promise.all(targets.map((w) => deps.rpc.ask(w, (id) => ({ type: 'reload', id, config, health, members }), RELOAD_TIMEOUT_MS)));
  const failed: { worker: number; error: string }[] = [];
  answers.forEach((a, i) => {
    const worker = targets[i]!;
    if (a === undefined) {
      // Gone (it is re-forked with the config now in force) or too slow: nothing to undo.
      if (worker.isConnected()) deps.log.warn({ worker: worker.id }, 'a worker did not confirm the reload in time');
    } else if (a.type === 'reloaded' && a.error !== undefined) failed.push({ worker: worker.id, error: a.error });
  });
  return failed;
}
