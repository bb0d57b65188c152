#!/usr/bin/env node
/**
 * `ballast --config FILE` runs; `ballast validate --config FILE` checks a file and exits non-zero with every error;
 * `ballast` alone runs the embedded demo (three local origins with Ballast in front).
 * SIGTERM/SIGINT: stop accepting, drain in-flight requests up to `shutdown.drain_timeout`, exit 0.
 * SIGHUP: reload the file; an invalid one is refused (every error logged) and the running config kept.
 * `workers: N > 1` (or `auto`, one per core) runs a node:cluster primary and N workers (src/cluster/primary.ts), with
 * the same commands and signals; `workers: 1` is one process, with no cluster and no IPC.
 */
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { Ballast } from './ballast.js';
import { ClusterPrimary, workerCount } from './cluster/primary.js';
import { formatConfigErrors, loadConfigFile } from './config/load.js';
import { runDemo } from './demo.js';
import { onShutdownSignal } from './signals.js';

const USAGE = `usage:
  ballast [--config FILE]            run (without --config: the demo with its own local origins)
  ballast validate --config FILE     check a config file; exit 1 with every error
`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const command = positionals[0] ?? 'run';
  if (command !== 'run' && command !== 'validate') {
    process.stderr.write(`unknown command: ${command}\n${USAGE}`);
    return 2;
  }
  if (values.config === undefined) {
    if (command === 'validate') {
      process.stderr.write(`validate needs --config FILE\n${USAGE}`);
      return 2;
    }
    await runDemo();
    return -1;
  }
  const result = await loadConfigFile(values.config);
  if (!result.ok) {
    process.stderr.write(`${values.config}: invalid config (${result.errors.length} error${result.errors.length === 1 ? '' : 's'})\n`);
    process.stderr.write(`${formatConfigErrors(values.config, result.errors)}\n`);
    return 1;
  }
  if (command === 'validate') {
    process.stdout.write(`${values.config}: ok\n`);
    return 0;
  }
  const file = values.config;
  const workers = workerCount(result.config.workers, availableParallelism());
  if (workers > 1) {
    const primary = await ClusterPrimary.start(file, result.config, workers);
    onShutdownSignal(async (signal) => {
      primary.log.info({ signal }, 'draining');
      await primary.stop();
    });
    process.on('SIGHUP', () => {
      primary.reload().catch((err: unknown) => primary.log.error({ file, err }, 'reload failed'));
    });
    return -1;
  }
  const ballast = await Ballast.start(result.config);
  onShutdownSignal(async (signal) => {
    ballast.log.info({ signal }, 'draining');
    await ballast.stop();
  });
  // SIGHUP re-reads the file. An invalid file is refused with every error and the running config stays in force; so
  // does any exception on the way, loading included: a rejection escaping this handler would end the process.
  process.on('SIGHUP', () => {
    void (async () => {
      try {
        const next = await loadConfigFile(file);
        if (!next.ok) {
          ballast.log.error({ file, errors: next.errors }, `reload refused, keeping the running config:\n${formatConfigErrors(file, next.errors)}`);
          return;
        }
        await ballast.reload(next.config);
        ballast.log.info({ file }, 'config reloaded');
      } catch (err) {
        ballast.log.error({ file, err }, 'reload failed');
      }
    })();
  });
  return -1;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`ballast: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
