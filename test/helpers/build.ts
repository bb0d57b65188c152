/**
 * Vitest global setup: compiles src/ into dist/ once before the tests run (and again before each watch-mode rerun),
 * because the CLI and cluster tests start the built `node dist/cli.js` as a user would. A bare `npx vitest run` on
 * a fresh clone therefore tests the sources it sees, not a stale or missing build. A compile error fails the run.
 * BALLAST_TEST_SKIP_BUILD=1 skips the first build: .ci/run sets it for its second run (the same sources under another
 * Node), whose dist/ the first run has just built; the compiler's output does not depend on the Node running it.
 */
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { TestProject } from 'vitest/node';

const ROOT = join(import.meta.dirname, '..', '..');
const TSC = createRequire(import.meta.url).resolve('typescript/bin/tsc');

async function build(): Promise<void> {
  try {
    await promisify(execFile)(process.execPath, [TSC, '-p', 'tsconfig.build.json'], { cwd: ROOT });
  } catch (err) {
    const { stdout = '', stderr = '' } = err as { stdout?: string; stderr?: string };
    throw new Error(`tsc -p tsconfig.build.json failed, so dist/ cannot be trusted:\n${stdout}${stderr}`, { cause: err });
  }
}

export default async function setup(project: TestProject): Promise<void> {
  if (process.env.BALLAST_TEST_SKIP_BUILD !== '1') await build();
  project.onTestsRerun(build);
}
