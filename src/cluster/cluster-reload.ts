/**
 * SIGHUP in cluster mode: re-read the file and apply it everywhere, or nowhere. An invalid file is refused (every
 * error logged with its line and column) and nothing changes. A valid one is applied in the primary first (its new
 * servers probed), then in every worker; if a worker refuses it (a new listener that cannot bind), the primary and
 * every worker go back to the previous config, so the cluster never runs two configs for longer than the reload.
 *
 * When each worker binds a socket of its own (accept.ts), a listener address the running config does not hold is
 * first bound once by the primary without SO_REUSEPORT: an address another process holds refuses the reload, as it
 * does in a single process, where the workers' own binds would have succeeded and shared the port with that process.
 *
 * The primary's Ballast holds the config in force (`ballast.config`): a worker forked during a reload starts on it.
 */
import type { Worker } from 'node:cluster';
import { adminChanged, type Ballast } from '../ballast.js';
import { formatConfigErrors, loadConfigFile } from '../config/load.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { WorkerRpc } from './worker-rpc.js';
import { ensureFree, newAddresses, type AcceptMode } from './accept.js';

const RELOAD_TIMEOUT_MS = 15_000;

export interface ClusterReloadDeps {
  readonly file: string;
  readonly ballast: Ballast;
  readonly rpc: WorkerRpc;
  /** The workers that have had their `init`: each runs a config and must switch. */
  readonly workers: () => readonly Worker[];
  /** How many workers run (a change of `workers` takes a restart). */
  readonly count: number;
  readonly accept: AcceptMode;
  readonly log: Logger;
}

/** One reload; the caller runs them one at a time. A file or a config that fails is logged, not thrown. */
export async function reloadCluster(deps: ClusterReloadDeps): Promise<void> {
  const { file, ballast, log } = deps;
  const next = await loadConfigFile(file);
  if (!next.ok) {
    log.error({ file, errors: next.errors }, `reload refused, keeping the running config:\n${formatConfigErrors(file, next.errors)}`);
    return;
  }
  const previous = ballast.config;
  if (next.config.workers !== previous.workers) {
    log.warn({ workers: deps.count, configured: next.config.workers }, 'workers changed: it takes effect at the next restart');
  }
  if (adminChanged(previous, next.config)) log.warn({}, 'admin settings changed: they take effect at the next restart');
  try {
    if (deps.accept === 'reuseport') await ensureFree(newAddresses(previous, next.config));
    await ballast.reload(next.config);
  } catch (err) {
    log.error({ file, err }, 'reload failed');
    return;
  }
  const failed = await reloadWorkers(deps, next.config);
  if (failed.length === 0) {
    log.info({ file, workers: deps.count }, 'config reloaded');
    return;
  }
  log.error({ file, errors: failed }, 'reload failed in a worker: going back to the previous config');
  try {
    await ballast.reload(previous);
  } catch (err) {
    log.error({ err }, 'could not go back to the previous config here');
  }
  const again = await reloadWorkers(deps, previous);
  if (again.length > 0) log.error({ errors: again }, 'a worker could not go back to the previous config');
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
