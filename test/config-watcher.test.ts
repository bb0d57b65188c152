/**
 * `--watch` hears every way a config file is replaced (issue #16): written in place, renamed over (editors), a
 * symlink to a file elsewhere written in place, and a Kubernetes ConfigMap's `..data` symlink swapped by rename.
 * Real files in a temporary directory, real inotify; the reloader's side (unchanged content) is tested in
 * reload-admin.test.ts.
 */
import { mkdirSync, mkdtempSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { ConfigWatcher } from '../src/reload/config-watcher.js';
import { onCleanup } from './helpers/fixtures.js';
import { waitFor } from './helpers/wait.js';

const log = pino({ level: 'silent' });

function watched(file: string): { calls: () => number; next: (what: string) => Promise<void> } {
  let calls = 0;
  const watcher = new ConfigWatcher(file, () => calls++, { log, debounceMs: 50 });
  onCleanup(() => watcher.close());
  return {
    calls: () => calls,
    /** Resolves at the next call after now. */
    next: async (what) => {
      const seen = calls;
      await waitFor(() => calls > seen, { what });
    },
  };
}

describe('ConfigWatcher', () => {
  it('hears a write in place and a rename over the file, again and again', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ballast-watch-'));
    const file = join(dir, 'ballast.yaml');
    writeFileSync(file, 'a: 1\n');
    const w = watched(file);
    writeFileSync(file, 'a: 2\n');
    await w.next('a write in place');
    for (let i = 3; i < 6; i++) {
      writeFileSync(join(dir, `.ballast.yaml.${i}.tmp`), `a: ${i}\n`);
      renameSync(join(dir, `.ballast.yaml.${i}.tmp`), file);
      await w.next(`rename over the file #${i}`);
    }
    writeFileSync(file, 'a: 9\n');
    await w.next('a write in place after the renames');
  });

  it('hears a write to the file a symlink points to in another directory', async () => {
    const elsewhere = mkdtempSync(join(tmpdir(), 'ballast-watch-target-'));
    const dir = mkdtempSync(join(tmpdir(), 'ballast-watch-link-'));
    writeFileSync(join(elsewhere, 'real.yaml'), 'a: 1\n');
    symlinkSync(join(elsewhere, 'real.yaml'), join(dir, 'ballast.yaml'));
    const w = watched(join(dir, 'ballast.yaml'));
    writeFileSync(join(elsewhere, 'real.yaml'), 'a: 2\n');
    await w.next('a write through the symlink');
    writeFileSync(join(elsewhere, 'real.yaml'), 'a: 3\n');
    await w.next('a second write through the symlink');
  });

  it('hears a Kubernetes ConfigMap update: the ..data symlink swapped to a new directory', async () => {
    // The kubelet's layout (atomic_writer.go): ballast.yaml -> ..data/ballast.yaml, ..data -> ..<timestamp>/.
    const dir = mkdtempSync(join(tmpdir(), 'ballast-watch-configmap-'));
    const version = (n: number) => {
      mkdirSync(join(dir, `..v${n}`));
      writeFileSync(join(dir, `..v${n}`, 'ballast.yaml'), `a: ${n}\n`);
    };
    version(1);
    symlinkSync('..v1', join(dir, '..data'));
    symlinkSync('..data/ballast.yaml', join(dir, 'ballast.yaml'));
    const w = watched(join(dir, 'ballast.yaml'));
    for (let n = 2; n < 4; n++) {
      version(n);
      symlinkSync(`..v${n}`, join(dir, '..data_tmp'));
      renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
      await w.next(`ConfigMap update #${n}`);
    }
    expect(w.calls()).toBeGreaterThanOrEqual(2);
  });
});
