/** The compiled `ballast` command as a user runs it (dist/cli.js, built once per test run), with its output kept. */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';

export const CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli.js');

export type CliProcess = ChildProcess & { out: () => string; err: () => string };

/** Starts `node dist/cli.js ...args` with `env` over this process's environment. */
export function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}): CliProcess {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '';
  let err = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  return Object.assign(child, { out: () => out, err: () => err });
}

/** The exit code, or a failure if the process is still running after `timeoutMs` (it must never hang). */
export async function exitCode(child: ChildProcess, timeoutMs = 10_000): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  clearTimeout(timer);
  if (signal === 'SIGKILL') throw new Error(`still running after ${timeoutMs} ms`);
  return code;
}
