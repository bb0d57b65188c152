/**
 * The Dockerfile, checked without a Docker engine: it builds on the Node LTS line that .ci/run tests and the README
 * and `engines` name, its HEALTHCHECK is `ballast health` on the config the image runs, it runs as a non-root user,
 * and everything it copies from the build context exists (issue #16).
 */
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..');
const read = (file: string) => readFileSync(join(ROOT, file), 'utf8');

interface Instruction {
  readonly keyword: string;
  readonly args: string;
}

/** Instructions in order: comments dropped, `\` continuations joined. */
function instructions(text: string): Instruction[] {
  const joined = text.split('\n').filter((l) => !/^\s*#/.test(l)).join('\n').replace(/\\\n/g, ' ');
  return joined.split('\n').filter((l) => l.trim() !== '').map((l) => {
    const m = /^\s*(\S+)\s*(.*)$/.exec(l)!;
    return { keyword: m[1]!.toUpperCase(), args: m[2]!.trim() };
  });
}

/** The exec form `["a", "b"]` of a CMD, ENTRYPOINT or HEALTHCHECK CMD. */
function execForm(args: string): string[] {
  return JSON.parse(args.slice(args.indexOf('['))) as string[];
}

const dockerfile = instructions(read('Dockerfile'));
const all = (keyword: string) => dockerfile.filter((i) => i.keyword === keyword);
const LTS = Number(/^LTS_MAJOR=(\d+)$/m.exec(read('.ci/run'))?.[1]);

describe('Dockerfile', () => {
  it('builds and runs on the LTS line that CI tests, which engines and the README name as supported', () => {
    expect(LTS).toBeGreaterThanOrEqual(26);
    const froms = all('FROM').map((i) => /^node:(\d+)-/.exec(i.args)?.[1]);
    expect(froms.length).toBeGreaterThanOrEqual(2);
    for (const major of froms) expect(Number(major)).toBe(LTS);
    const engines = (JSON.parse(read('package.json')) as { engines: { node: string } }).engines.node;
    expect(engines).toContain(`>=${LTS}.0.0`);
    expect(engines).toContain('^20.');
    const requirements = /## Requirements\n([\s\S]*?)\n## /.exec(read('README.md'))?.[1] ?? '';
    expect(requirements).toMatch(new RegExp(`^\\| \\*\\*${LTS}\\*\\* \\(Active LTS\\) \\| supported`, 'm'));
    expect(requirements).toMatch(/^\| 20\.[^\n]*\*\*end of life\*\*/m);
  });

  it('checks its health with ballast health, on the config it runs', () => {
    const [health] = all('HEALTHCHECK');
    const command = execForm(health!.args);
    const entrypoint = execForm(all('ENTRYPOINT').at(-1)!.args);
    const cmd = execForm(all('CMD').at(-1)!.args);
    expect(command.slice(0, 3)).toEqual([...entrypoint, 'health']);
    const config = (argv: string[]) => argv[argv.indexOf('--config') + 1];
    expect(config(command)).toBe(config(cmd));
    // The config the image runs is copied in from the repository: config/ballast.yaml → /app/config/ballast.yaml.
    const workdir = all('WORKDIR').at(-1)!.args;
    expect(config(cmd)).toBe(`${workdir}/config/ballast.yaml`);
    expect(all('COPY').some((c) => c.args === 'config ./config')).toBe(true);
    expect(existsSync(join(ROOT, 'config', 'ballast.yaml'))).toBe(true);
  });

  it('runs as a non-root user', () => {
    const user = all('USER').at(-1)!.args;
    expect(['root', '0', '0:0']).not.toContain(user);
    // The user is set before the image's command, so the command runs as that user.
    expect(dockerfile.findLastIndex((i) => i.keyword === 'USER')).toBeLessThan(dockerfile.findIndex((i) => i.keyword === 'ENTRYPOINT'));
  });

  it('copies only what exists in the build context, and .dockerignore keeps out none of it', () => {
    const ignored = read('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
    const sources = all('COPY').filter((c) => !c.args.startsWith('--from')).flatMap((c) => c.args.split(/\s+/).slice(0, -1));
    expect(sources.length).toBeGreaterThan(0);
    for (const source of sources) {
      expect(existsSync(join(ROOT, source)), source).toBe(true);
      expect(ignored.some((i) => source === i || source.startsWith(`${i}/`)), source).toBe(false);
    }
  });
});
