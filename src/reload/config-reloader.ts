/**
 * Re-reading the config file the process was started with (issue #16), one way for every trigger: SIGHUP, the admin's
 * `POST /reload` and `--watch`. The file is read and validated; an invalid one is refused with every error (key
 * path, line, column) and the running config stays in force; a valid one is handed to `apply` (Ballast.reload in a
 * single process, the primary-then-workers reload in cluster mode). Each ends in one log line and one count in
 * `ballast_config_reloads_total{result}`; a success also sets `ballast_config_last_reload_success_timestamp_seconds`.
 *
 * Reloads run one at a time, in the order asked. `reload` never rejects: its result says what happened, for the
 * admin's answer.
 *
 * `onlyIfChanged` (the file watcher's): a file whose config equals the one in force (an editor that saved without a
 * change, a comment edited, a ConfigMap swapped to the same content), or whose text is the one last refused, does
 * nothing — not even a log line or a count.
 */
import { isDeepStrictEqual } from 'node:util';
import { formatConfigErrors, parseConfig, readConfigFile, type ConfigError } from '../config/load.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';

export type ReloadTrigger = 'signal' | 'admin' | 'watch';

/** What changed among the servers (same upstream and address: kept, with all their state). */
export interface ServerChanges {
  readonly kept: number;
  readonly added: number;
  readonly removed: number;
}

export type ReloadResult =
  | { readonly result: 'success'; readonly file: string; readonly listeners: number; readonly upstreams: number; readonly servers: ServerChanges }
  | { readonly result: 'unchanged'; readonly file: string }
  /** The file could not be read or is not a valid config. */
  | { readonly result: 'invalid'; readonly file: string; readonly errors: readonly ConfigError[] }
  /** A valid config that could not be applied (a new listener address that cannot be bound, a worker that refused). */
  | { readonly result: 'failed'; readonly file: string; readonly error: string };

export interface ReloaderDeps {
  readonly file: string;
  /** The config in force. */
  readonly current: () => Config;
  /** Apply a validated config, or reject with nothing changed. */
  readonly apply: (next: Config) => Promise<void>;
  /** Where the reload metrics go (admin/metrics.ts `Metrics`). */
  readonly metrics: { configReloaded(ok: boolean): void };
  readonly log: Logger;
}

export class ConfigReloader {
  readonly file: string;
  readonly #deps: ReloaderDeps;
  #queue: Promise<unknown> = Promise.resolve();
  /** The text last refused as invalid: the watcher does not refuse it again. */
  #refusedText: string | undefined;

  constructor(deps: ReloaderDeps) {
    this.file = deps.file;
    this.#deps = deps;
  }

  reload(trigger: ReloadTrigger, options: { onlyIfChanged?: boolean } = {}): Promise<ReloadResult> {
    const run = this.#queue
      .then(() => this.#reload(trigger, options.onlyIfChanged ?? false))
      .catch((err: unknown): ReloadResult => ({ result: 'failed', file: this.file, error: err instanceof Error ? err.message : String(err) }));
    this.#queue = run;
    return run;
  }

  async #reload(trigger: ReloadTrigger, onlyIfChanged: boolean): Promise<ReloadResult> {
    const { file, log, metrics } = this.#deps;
    const read = await readConfigFile(file);
    if (read.ok && onlyIfChanged && read.text === this.#refusedText) return { result: 'unchanged', file };
    const loaded = read.ok ? parseConfig(read.text) : read;
    if (!loaded.ok) {
      this.#refusedText = read.ok ? read.text : undefined;
      metrics.configReloaded(false);
      log.error({ file, trigger, errors: loaded.errors }, `reload refused, keeping the running config:\n${formatConfigErrors(file, loaded.errors)}`);
      return { result: 'invalid', file, errors: loaded.errors };
    }
    this.#refusedText = undefined;
    const previous = this.#deps.current();
    if (onlyIfChanged && isDeepStrictEqual(loaded.config, previous)) {
      log.debug({ file, trigger }, 'config file unchanged: nothing to reload');
      return { result: 'unchanged', file };
    }
    try {
      await this.#deps.apply(loaded.config);
    } catch (err) {
      metrics.configReloaded(false);
      log.error({ file, trigger, err }, 'reload failed, keeping the running config');
      return { result: 'failed', file, error: err instanceof Error ? err.message : String(err) };
    }
    metrics.configReloaded(true);
    const next = loaded.config;
    const servers = serverChanges(previous, next);
    log.info({ file, trigger, servers }, 'config reloaded');
    return { result: 'success', file, listeners: next.listeners.length, upstreams: next.upstreams.length, servers };
  }
}

/** Servers kept, added and removed, each identified by upstream and address as Ballast.reload matches them. */
export function serverChanges(previous: Config, next: Config): ServerChanges {
  const keys = (c: Config) => new Set(c.upstreams.flatMap((u) => u.servers.map((s) => `${u.name}\u0000${s.address.host}\u0000${s.address.port}`)));
  const before = keys(previous);
  const after = keys(next);
  let kept = 0;
  for (const k of after) if (before.has(k)) kept++;
  return { kept, added: after.size - kept, removed: before.size - kept };
}
