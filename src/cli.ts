#!/usr/bin/env node
/**
 * The `ballast` command (USAGE below says it all):
 * - `ballast --config FILE` (or `ballast run --config FILE`) runs; `ballast validate --config FILE` checks a file and
 *   exits 1 with every error; `ballast demo` runs the embedded demo; `ballast schema` prints the config's JSON Schema.
 * - `ballast health --config FILE` asks the running Ballast's admin `/ready` (health-command.ts): the Docker HEALTHCHECK.
 * - `ballast` alone prints the usage and exits 2: starting a proxy and three origins on five ports is something to
 *   ask for (`ballast demo`), not what a bare command should do.
 * SIGTERM/SIGINT: stop accepting, drain in-flight requests up to `shutdown.drain_timeout`, exit 0.
 * SIGHUP, the admin's POST /reload, and with `--watch` a change of the file: reload the file (reload/); an invalid one
 * is refused (every error logged) and the running config kept.
 * `workers: N > 1` (or `auto`, one per core) runs a node:cluster primary and N workers (src/cluster/primary.ts), with
 * the same commands and signals; `workers: 1` is one process, with no cluster and no IPC.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { Ballast } from './ballast.js';
import { ClusterPrimary, workerCount } from './cluster/primary.js';
import { configJsonSchemaText } from './config/json-schema.js';
import { formatConfigErrors, loadConfigFile, type ConfigError } from './config/load.js';
import { demoFailed, runDemo } from './demo.js';
import { checkHealth } from './health-command.js';
import { createCliLogger, LOG_FORMATS, type Logger, type LogFormat } from './log.js';
import { ConfigWatcher } from './reload/config-watcher.js';
import type { ConfigReloader } from './reload/config-reloader.js';
import { onShutdownSignal } from './signals.js';
import { logClusterSummary, logStartupSummary } from './startup-summary.js';

const USAGE = `Usage: ballast <command> [options]

Commands:
  run --config FILE       run a proxy from a config file (the default command: ballast --config FILE)
  validate --config FILE  check a config file; print every error with its line and column, exit 1 if any
  health --config FILE    ask the admin listener of the Ballast running this config whether it is ready (GET
                          /ready; 0.0.0.0 and :: are asked on loopback): one line, exit 0 if ready, 1 if not
  demo                    three local origins with Ballast in front, to try it (http://127.0.0.1:8080;
                          busy ports are replaced by free ones, BALLAST_DEMO_PORT sets the proxy's);
                          demo --tls adds https://localhost:8443 (HTTP/2 and HTTP/1.1, a throw-away certificate)
  schema                  print the config file's JSON Schema (for editors; also schema/ballast.schema.json)
  help                    print this help

Options:
  -c, --config FILE       the config file, YAML or JSON (examples: config/*.yaml in the package)
      --log-format FMT    auto (default): pretty on a terminal, JSON lines otherwise; or json, pretty
                          (with workers above 1, logs are always JSON)
      --tls               (demo) also serve HTTPS with HTTP/2
      --watch             (run) reload when the config file changes, as SIGHUP does
  -h, --help              print this help
  -v, --version           print the version

Signals while running: SIGTERM or Ctrl-C drains requests in flight and exits 0 (a second one exits at once);
SIGHUP reloads the config file (an invalid one is refused and the running config kept); so does POST /reload on
the admin listener.

Environment:
  BALLAST_DEMO_PORT       the demo's proxy port (default 8080); the demo fails if it is taken
  NO_COLOR, FORCE_COLOR   colours of pretty logs
  \${VAR} in a config file reads VAR from the environment (\${VAR:-default} with a default).
`;

/** A mistake in how the command was called: one line, a pointer to --help, exit 2. */
class UsageError extends Error {}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function parse(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c' },
        'log-format': { type: 'string' },
        watch: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
        tls: { type: 'boolean' },
      },
      allowPositionals: true,
    });
  } catch (err) {
    // parseArgs says e.g. "Unknown option '--foo'. To specify a positional argument starting with a '-', …"
    throw new UsageError((err as Error).message.split('. ')[0]!.replace(/^Unknown/, 'unknown').replace(/^Option/, 'option'));
  }
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv);
  if (values.version) {
    process.stdout.write(`ballast ${version()}\n`);
    return 0;
  }
  const command = positionals[0] ?? (values.config === undefined ? undefined : 'run');
  if (values.help || command === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  if (command === undefined) {
    process.stderr.write(`ballast: no command given. To try it: ballast demo; to run a config: ballast --config FILE\n\n${USAGE}`);
    return 2;
  }
  if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1]}"`);
  if (values.tls === true && command !== 'demo') throw new UsageError('--tls is for the demo: a config file says where TLS is, under a listener\'s tls');
  const logFormat = values['log-format'] ?? 'auto';
  if (!(LOG_FORMATS as readonly string[]).includes(logFormat)) throw new UsageError(`--log-format must be one of ${LOG_FORMATS.join(', ')} (got "${logFormat}")`);

  switch (command) {
    case 'demo':
      if (values.watch) throw new UsageError('--watch applies to run only');
      if (values.config !== undefined) throw new UsageError('the demo runs its own config: leave out --config');
      await runDemo({ logFormat: logFormat as LogFormat, tls: values.tls === true }).catch(demoFailed);
      return -1;
    case 'schema':
      process.stdout.write(configJsonSchemaText());
      return 0;
    case 'run':
    case 'validate':
    case 'health':
      if (values.config === undefined) throw new UsageError(`${command} needs --config FILE`);
      if (values.watch === true && command !== 'run') throw new UsageError('--watch applies to run only');
      if (command === 'health') return health(values.config);
      return command === 'validate' ? validate(values.config) : run(values.config, logFormat as LogFormat, values.watch ?? false);
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

/** Print a refused file's errors: one line when it could not be read, else a count and every error in place. */
function reportErrors(file: string, errors: readonly ConfigError[]): void {
  if (errors.length === 1 && errors[0]!.line === 0) {
    process.stderr.write(`ballast: ${file}: ${errors[0]!.message}\n`);
    return;
  }
  process.stderr.write(`${file}: invalid config (${errors.length} error${errors.length === 1 ? '' : 's'})\n`);
  process.stderr.write(`${formatConfigErrors(file, errors)}\n`);
}

async function validate(file: string): Promise<number> {
  const result = await loadConfigFile(file);
  if (!result.ok) {
    reportErrors(file, result.errors);
    return 1;
  }
  process.stdout.write(`${file}: ok\n`);
  return 0;
}

async function health(file: string): Promise<number> {
  const result = await loadConfigFile(file);
  if (!result.ok) {
    reportErrors(file, result.errors);
    return 1;
  }
  const answer = await checkHealth(result.config);
  (answer.ok ? process.stdout : process.stderr).write(`ballast health: ${answer.ok ? 'ready' : 'not ready'}: ${answer.line}\n`);
  return answer.ok ? 0 : 1;
}

async function run(file: string, logFormat: LogFormat, watch: boolean): Promise<number> {
  const result = await loadConfigFile(file);
  if (!result.ok) {
    reportErrors(file, result.errors);
    return 1;
  }
  const workers = workerCount(result.config.workers, availableParallelism());
  if (workers > 1) {
    const primary = await ClusterPrimary.start(file, result.config, workers);
    let watcher: ConfigWatcher | undefined;
    // The signals first: whoever reads the startup lines may signal at once, and an unhandled SIGTERM kills outright.
    onShutdownSignal(async (signal) => {
      primary.log.info({ signal }, 'draining');
      watcher?.close();
      await primary.stop();
    });
    process.on('SIGHUP', () => void primary.reloader.reload('signal'));
    logClusterSummary(primary.log, result.config);
    watcher = watchIfAsked(watch, primary.reloader, primary.log);
    return -1;
  }
  const log = createCliLogger(result.config.logging.level, logFormat);
  const ballast = await Ballast.start(result.config, { log, configFile: file });
  const reloader = ballast.reloader!;
  let watcher: ConfigWatcher | undefined;
  // The signals first: whoever reads the startup lines may signal at once, and an unhandled SIGTERM kills outright.
  onShutdownSignal(async (signal) => {
    ballast.log.info({ signal }, 'draining');
    watcher?.close();
    await ballast.stop();
  });
  // The reloader logs how it went and never rejects: an invalid file is refused and the running config stays.
  process.on('SIGHUP', () => void reloader.reload('signal'));
  logStartupSummary(ballast.log, ballast);
  watcher = watchIfAsked(watch, reloader, ballast.log);
  return -1;
}

/** `--watch`: reload when the file changes, unless its config is the one in force (or the one last refused). */
function watchIfAsked(watch: boolean, reloader: ConfigReloader, log: Logger): ConfigWatcher | undefined {
  if (!watch) return undefined;
  const watcher = new ConfigWatcher(reloader.file, () => void reloader.reload('watch', { onlyIfChanged: true }), { log });
  log.info({ file: reloader.file }, 'watching the config file: a change reloads it');
  return watcher;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`ballast: ${err.message} (see ballast --help)\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`ballast: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
