/**
 * `ballast --watch`: tell the reloader when the config file may have changed (issue #16).
 *
 * Files are rarely changed in place. Editors write a new file and rename it over the old one; Kubernetes mounts a
 * ConfigMap as `config.yaml -> ..data/config.yaml` and swaps the `..data` symlink to a new directory by rename. A
 * watch on the file alone follows the inode it was opened on, and hears nothing after the first swap. So two
 * watches (node:fs `watch`, inotify on Linux):
 * - the directory, for a rename over the file's name and a swap of Kubernetes' `..data` (names starting with `..`);
 *   other names are ignored, so a log file written beside the config does not wake anything;
 * - the file itself, through symlinks, for an in-place write to a file that lives elsewhere; opened again after
 *   every change, since a rename leaves it on the old inode.
 * Events come in bursts (write, then chmod, then rename), so they are debounced: one call `debounceMs` after the
 * last. Whether the content really changed is the reloader's business (`onlyIfChanged`).
 */
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import type { Logger } from '../log.js';

export const DEFAULT_DEBOUNCE_MS = 300;

export class ConfigWatcher {
  readonly #file: string;
  readonly #name: string;
  readonly #changed: () => void;
  readonly #log: Logger;
  readonly #debounceMs: number;
  readonly #dir: FSWatcher;
  #fileWatch: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  /** Starts watching at once; throws if the file's directory cannot be watched. */
  constructor(file: string, changed: () => void, options: { log: Logger; debounceMs?: number }) {
    this.#file = resolve(file);
    this.#name = basename(this.#file);
    this.#changed = changed;
    this.#log = options.log;
    this.#debounceMs = options.debounceMs ?? DEFAULT_DEBOUNCE_MS;
    // persistent: false: a watch never keeps the process alive on its own (the listeners do).
    this.#dir = watch(dirname(this.#file), { persistent: false }, (_event, name) => {
      if (name === null || name === this.#name || name.startsWith('..')) this.#schedule();
    });
    this.#dir.on('error', (err) => this.#log.error({ err, file: this.#file }, 'config watch: the directory can no longer be watched'));
    this.#watchFile();
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#dir.close();
    this.#fileWatch?.close();
  }

  #schedule(): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#closed) return;
      this.#watchFile();
      this.#changed();
    }, this.#debounceMs);
    this.#timer.unref();
  }

  /** (Re)open the watch on the file as it is now; a file missing for a moment is watched again at the next event. */
  #watchFile(): void {
    this.#fileWatch?.close();
    this.#fileWatch = undefined;
    try {
      const w = watch(this.#file, { persistent: false }, () => this.#schedule());
      // The file was renamed or deleted under the watch: the directory's watch sees what comes next.
      w.on('error', () => w.close());
      this.#fileWatch = w;
    } catch (err) {
      this.#log.debug({ err, file: this.#file }, 'config watch: the file cannot be watched now');
    }
  }
}
