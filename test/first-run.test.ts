/**
 * A new user's first half hour (issue #17): the demo on busy ports, --version and --help, one-pass validate with
 * "did you mean", a missing file, the start-up summary, the warning for a server that never comes up, pretty logs,
 * and the package itself (declarations, exports, LICENSE, the JSON Schema). The CLI runs from dist/, as a user runs it.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Ajv } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { configJsonSchema, configJsonSchemaText, DESCRIPTIONS } from '../src/config/json-schema.js';
import { parseConfig } from '../src/config/load.js';
import { DEMO_PORTS } from '../src/demo.js';
import { prettyDestination } from '../src/log.js';
import { LOOPBACK_HINT, NEVER_HEALTHY_PROBES } from '../src/health/health-service.js';
import { freePort, get, simpleConfig, startBallast, type TestBallast } from './helpers/ballast.js';
import { startOrigin, type Origin } from './helpers/origin.js';
import { waitFor, sleep } from './helpers/wait.js';
import { exitCode, spawnCli, type CliProcess } from './helpers/cli.js';

const ROOT = join(import.meta.dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'ballast-first-run-'));
const children: ChildProcess[] = [];
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const f of cleanups.splice(0)) await f();
});

type Run = CliProcess;

function run(args: string[], env: NodeJS.ProcessEnv = {}): Run {
  const child = spawnCli(args, { BALLAST_DEMO_PORT: '', ...env });
  children.push(child);
  return child;
}

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const lines = (text: string): string[] => text.split('\n').filter((l) => l !== '');
const jsonLines = (text: string): Record<string, unknown>[] => lines(text).filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);

describe('ballast --version and --help', () => {
  it('--version and -v print the package version', async () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-v']) {
      const child = run([flag]);
      expect(await exitCode(child)).toBe(0);
      expect(child.out()).toBe(`ballast ${version}\n`);
    }
  });

  it('--help names every command, flag and the demo\'s environment variable', async () => {
    const child = run(['--help']);
    expect(await exitCode(child)).toBe(0);
    const help = child.out();
    for (const command of ['run', 'validate', 'demo', 'schema', 'help']) expect(help).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
    for (const flag of ['--config', '-c,', '--log-format', '--watch', '--help', '-h,', '--version', '-v,']) expect(help).toContain(flag);
    expect(help).toContain('BALLAST_DEMO_PORT');
    expect(help).toContain('SIGHUP');
  });

  it('plain ballast binds nothing: it says how to start, prints the usage and exits 2', async () => {
    const child = run([]);
    expect(await exitCode(child, 5000)).toBe(2);
    expect(child.err()).toContain('ballast demo');
    expect(child.err()).toContain('Usage: ballast <command>');
    expect(child.out()).toBe('');
  });

  it('an unknown option or command is one line pointing at --help, exit 2', async () => {
    for (const args of [['--bogus'], ['frobnicate'], ['validate']]) {
      const child = run(args);
      expect(await exitCode(child)).toBe(2);
      expect(lines(child.err())).toHaveLength(1);
      expect(child.err()).toMatch(/^ballast: .*\(see ballast --help\)\n$/);
    }
  });
});

describe('ballast validate', () => {
  it('reports schema and reference errors in one pass, with "did you mean" for keys and values', async () => {
    const path = file('one-pass.yaml', `listeners:
  - { name: web, listen: 127.0.0.1:8080, routes: [{ upstream: apii }] }
  - { name: web, listen: 127.0.0.1:8080, routes: [{ upstream: api }] }
upstreams:
  - name: api
    balance: round-robbin
    servers: [{ address: 127.0.0.1:9000, wieght: 2 }]
    helth_check: { interval: 2s }
  - { name: api, servers: [{ address: 127.0.0.1:9001 }] }
`);
    const child = run(['validate', '--config', path]);
    expect(await exitCode(child)).toBe(1);
    const err = child.err();
    expect(err).toContain('7 errors');
    // Schema errors ...
    expect(err).toContain(`${path}:6:14 upstreams[0].balance: Invalid option`);
    expect(err).toContain('(got "round-robbin"); did you mean "round-robin"?');
    expect(err).toContain(`${path}:7:42 upstreams[0].servers[0].wieght: unknown key "wieght"; did you mean "weight"?`);
    expect(err).toContain(`${path}:8:5 upstreams[0].helth_check: unknown key "helth_check"; did you mean "health_check"?`);
    // ... and, in the same run, what refers across keys.
    expect(err).toContain(`${path}:2:63 listeners[0].routes[0].upstream: no upstream is named "apii"`);
    expect(err).toContain(`${path}:3:13 listeners[1].name: listener "web" is defined twice`);
    expect(err).toContain(`${path}:3:26 listeners[1].listen: 127.0.0.1:8080 is already used`);
    expect(err).toContain(`${path}:9:13 upstreams[1].name: upstream "api" is defined twice`);
  });

  it('a missing file is one clear line and exit 1', async () => {
    const path = join(dir, 'no-such-file.yaml');
    for (const args of [['validate', '--config', path], ['--config', path]]) {
      const child = run(args);
      expect(await exitCode(child)).toBe(1);
      expect(child.err()).toBe(`ballast: ${path}: cannot read the file: no such file or directory\n`);
    }
  });
});

describe('ballast demo', () => {
  /** Hold 127.0.0.1:port, as another program would; a port someone else holds already is just as busy. */
  async function hold(port: number): Promise<Server | undefined> {
    const server = createServer();
    return new Promise((resolve) => {
      server.once('error', () => resolve(undefined));
      server.listen(port, '127.0.0.1', () => resolve(server));
    });
  }

  async function holdDefaultPorts(): Promise<void> {
    const held = await Promise.all([DEMO_PORTS.proxy, DEMO_PORTS.admin, ...DEMO_PORTS.origins, ...DEMO_PORTS.grpc].map(hold));
    cleanups.push(async () => {
      for (const s of held) if (s !== undefined) await new Promise<void>((resolve) => s.close(() => resolve()));
    });
  }

  it('on busy default ports, moves to free ones, says so, and serves', async () => {
    await holdDefaultPorts();
    const child = run(['demo']);
    const banner = /Ballast demo: http:\/\/127\.0\.0\.1:(\d+) -> origins on (.*)\n/;
    await waitFor(() => {
      if (child.exitCode !== null) throw new Error(`the demo exited ${child.exitCode}: ${child.err()}`);
      return banner.test(child.out());
    }, { timeoutMs: 15_000, intervalMs: 20, what: () => `the demo's banner in: ${child.out()}${child.err()}` });
    const [, port, origins] = banner.exec(child.out())!;
    expect(Number(port)).not.toBe(DEMO_PORTS.proxy);
    for (const p of DEMO_PORTS.origins) expect(origins).not.toContain(`:${p}`);
    expect(child.out()).toContain(`port ${DEMO_PORTS.proxy} is in use: the proxy listens on 127.0.0.1:${port} instead`);
    expect(child.out()).toContain(`port ${DEMO_PORTS.admin} is in use: the admin endpoint listens on`);
    expect(child.out()).toContain(`port ${DEMO_PORTS.grpc[0]} is in use: grpc-1 listens on`);
    const seen = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const res = await get(`http://127.0.0.1:${port}/hello`);
      expect(res.status).toBe(200);
      seen.add((JSON.parse(res.body) as { origin: string }).origin);
    }
    expect(seen).toEqual(new Set(['origin-1', 'origin-2', 'origin-3']));
    child.kill('SIGTERM');
    expect(await exitCode(child)).toBe(0);
  });

  it('when the port BALLAST_DEMO_PORT asks for is taken, fails fast with one line and exit 1', async () => {
    const port = await freePort();
    const held = await hold(port);
    cleanups.push(() => new Promise<void>((resolve) => (held ? held.close(() => resolve()) : resolve())));
    const child = run(['demo'], { BALLAST_DEMO_PORT: String(port) });
    expect(await exitCode(child, 10_000)).toBe(1);
    expect(lines(child.err())).toEqual([`ballast demo: port ${port} (BALLAST_DEMO_PORT) is already in use: choose another, or unset it to let the demo pick`]);
  });
});

describe('start-up', () => {
  it('logs a summary line per listener and upstream, the admin address, and once a server that never came up', async () => {
    const origin = await startOrigin('up');
    cleanups.push(() => origin.close());
    const dead = await freePort();
    const path = file('summary.yaml', `
admin: { listen: 127.0.0.1:0 }
logging: { access_log: false }
listeners:
  - { name: web, listen: 127.0.0.1:0, routes: [{ match: { path_prefix: /api/ }, upstream: api }, { upstream: down }] }
  - { name: raw, protocol: tcp, listen: 127.0.0.1:0, upstream: api }
upstreams:
  - name: api
    servers: [{ address: ${origin.address} }]
    health_check: { interval: 100ms, timeout: 500ms, healthy_threshold: 1 }
  - name: down
    servers: [{ address: 127.0.0.1:${dead} }]
    health_check: { interval: 100ms, unhealthy_interval: 50ms, timeout: 500ms }
`);
    const child = run(['--config', path]);
    const warning = 'server has not become healthy since start-up';
    await waitFor(() => child.out().includes(warning), { timeoutMs: 10_000, what: () => `the warning in: ${child.out()}${child.err()}` });
    const logs = jsonLines(child.out());
    const startup = logs.filter((l) => l.kind === 'startup');
    const web = startup.find((l) => l.listener === 'web')!;
    expect(web.msg).toMatch(/^listener web: http:\/\/127\.0\.0\.1:\d+ \(\/api\/ → api, \* → down\)$/);
    expect(startup.find((l) => l.listener === 'raw')!.msg).toMatch(/^listener raw: tcp 127\.0\.0\.1:\d+ → upstream api$/);
    expect(startup.find((l) => l.balance !== undefined && l.upstream === 'api')!.msg).toBe('upstream api: round-robin over 1 server, all available; checked by http GET /healthz every 100ms');
    expect(startup.find((l) => l.balance !== undefined && l.upstream === 'down')!).toMatchObject({ available: 0, down: [`127.0.0.1:${dead}`] });
    const admin = startup.find((l) => l.admin !== undefined)!;
    expect(admin.msg).toMatch(/^admin: http:\/\/127\.0\.0\.1:\d+ \(\/status, \/metrics, \/healthz, \/ready\)$/);
    // The admin address logged is the one bound (the config said port 0).
    expect((await get(`${admin.admin as string}/healthz`)).status).toBe(200);

    // The warning: the dead server only, once, however long it stays down.
    await sleep(20 * 50);
    const warnings = jsonLines(child.out()).filter((l) => l.msg === `${warning}: it still fails its active health checks`);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ level: 40, upstream: 'down', server: `127.0.0.1:${dead}`, reason: 'connect' });
    // Refused on loopback: the line says why that is the usual 503 in a container.
    expect(warnings[0]!.hint).toBe(LOOPBACK_HINT);
    expect(warnings[0]!.probes).toBeGreaterThanOrEqual(NEVER_HEALTHY_PROBES);
    child.kill('SIGTERM');
    expect(await exitCode(child)).toBe(0);
  });

  it('warns of a server that never came up once, and not of one that came up late, also across a reload', async () => {
    // Fails its first probe, passes every later one: healthy after its third (healthy_threshold 2), never warned of.
    let probes = 0;
    const late = createHttpServer((_req, res) => res.writeHead(probes++ === 0 ? 503 : 200).end());
    await new Promise<void>((resolve) => late.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => late.close(() => resolve())));
    const lateAddress = `127.0.0.1:${(late.address() as AddressInfo).port}`;
    const dead = await freePort();
    const yaml = (interval: string) => `
admin: { listen: 127.0.0.1:0 }
listeners: [{ name: web, listen: 127.0.0.1:0, routes: [{ upstream: pool }] }]
upstreams:
  - name: pool
    servers: [{ address: 127.0.0.1:${dead} }, { address: ${lateAddress} }]
    health_check: { interval: ${interval}, timeout: 200ms, healthy_threshold: 2 }
`;
    const b: TestBallast = await startBallast(yaml('40ms'));
    cleanups.push(() => b.stop());
    const warnings = () => b.logs.filter((l) => l.msg === 'server has not become healthy since start-up: it still fails its active health checks');
    await waitFor(() => warnings().length > 0 && probes >= 5, { what: 'the warning, and five probes of the late server' });
    expect(b.logs.some((l) => l.msg === 'server passed its active health checks' && l.server === lateAddress)).toBe(true);
    // A reload starts a new health service with new probe loops: what was reported stays reported.
    const next = parseConfig(yaml('30ms'), {});
    if (!next.ok) throw new Error('reload config refused');
    await b.ballast.reload(next.config);
    await sleep(20 * 15);
    expect(warnings().map((w) => w.server)).toEqual([`127.0.0.1:${dead}`]);
  });

  it('a 503 for want of a server says in its access line how many servers there are and why none is available', async () => {
    const [dead, alsoDead] = [await freePort(), await freePort()];
    const origin = await startOrigin('drained');
    cleanups.push(() => origin.close());
    const b = await startBallast(simpleConfig([`127.0.0.1:${dead}`, `127.0.0.1:${alsoDead}`, origin.address], '    health_check: { interval: 5s, timeout: 500ms }'));
    cleanups.push(() => b.stop());
    const now = b.ballast.upstreams.get('pool')!.now();
    b.ballast.upstreams.get('pool')!.host(origin.address)!.setDraining(true, now);
    const res = await get(b.url('/x'));
    expect(res.status).toBe(503);
    // The client is told nothing is available, not the servers' states.
    expect(res.body).toBe('No upstream server is available: no available server\n');
    await waitFor(() => b.logs.some((l) => l.kind === 'access'), { what: 'the access line' });
    expect(b.logs.find((l) => l.kind === 'access')).toMatchObject({ status: 503, detail: 'no available server (3 servers: 2 failing active health checks, 1 draining)' });
  });
});

describe('logs', () => {
  function capture(): { dest: ReturnType<typeof prettyDestination>; text: () => string } {
    let text = '';
    const out = new Writable({
      write(chunk: Buffer, _enc, cb) {
        text += chunk.toString();
        cb();
      },
    });
    return { dest: prettyDestination(out), text: () => text };
  }

  it('pretty-prints JSON lines, access lines as one sentence, start-up lines as their message', () => {
    const { dest, text } = capture();
    const time = Date.UTC(2026, 0, 1, 12, 0, 0);
    dest.write(`${JSON.stringify({ level: 30, time, service: 'ballast', listener: 'web', msg: 'listening' })}\n`);
    // The access log hands over batches of lines, and a line may be split between writes.
    const access = JSON.stringify({ level: 30, time, service: 'ballast', kind: 'access', listener: 'web', method: 'GET', url: '/hello', upstream: 'demo', server: '127.0.0.1:9001', attempts: 2, status: 200, durationMs: 1.5 });
    const startup = JSON.stringify({ level: 30, time, kind: 'startup', upstream: 'demo', msg: 'upstream demo: round-robin over 3 servers' });
    dest.write(`${access}\n${startup.slice(0, 20)}`);
    dest.write(`${startup.slice(20)}\n`);
    const out = lines(text().replace(/\u001b\[\d+m/g, ''));
    expect(out).toHaveLength(3);
    expect(out[0]).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: listening \{"listener":"web"\}$/);
    expect(out[1]).toMatch(/INFO: web, GET \/hello → 200 in 1\.5 ms, demo 127\.0\.0\.1:9001 after 2 tries$/);
    expect(out[2]).toMatch(/INFO: upstream demo: round-robin over 3 servers$/);
  });

  it('are JSON lines through a pipe, and pretty with --log-format pretty', async () => {
    const origin = await startOrigin('o');
    cleanups.push(() => origin.close());
    const path = file('logs.yaml', `
admin: { listen: 127.0.0.1:0 }
listeners: [{ name: web, listen: 127.0.0.1:0, routes: [{ upstream: api }] }]
upstreams: [{ name: api, servers: [{ address: ${origin.address} }] }]
`);
    for (const [args, json] of [[[], true], [['--log-format', 'pretty'], false]] as const) {
      const child = run(['--config', path, ...args]);
      await waitFor(() => child.out().includes('admin: http'), { what: () => `the admin line in: ${child.out()}${child.err()}` });
      const first = lines(child.out())[0]!;
      if (json) expect(JSON.parse(first)).toMatchObject({ msg: 'listening' });
      else expect(first).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] .*INFO.*: .*listening/);
      child.kill('SIGTERM');
      expect(await exitCode(child)).toBe(0);
    }
  });
});

describe('the package', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    types: string;
    exports: Record<string, string | Record<string, string>>;
    files: string[];
  };

  it('ships declarations, an exports map whose files exist, and the MIT LICENSE', () => {
    expect(pkg.types).toBe('dist/index.d.ts');
    const root = pkg.exports['.'] as Record<string, string>;
    expect(root.types).toBe('./dist/index.d.ts');
    for (const target of [root.types!, root.default!, pkg.exports['./schema.json'] as string]) expect(existsSync(join(ROOT, target))).toBe(true);
    const dts = readFileSync(join(ROOT, 'dist', 'index.d.ts'), 'utf8');
    for (const name of ['Ballast', 'parseConfig', 'loadConfigFile', 'Config', 'configJsonSchema']) expect(dts).toContain(name);
    expect(existsSync(join(ROOT, 'dist', 'ballast.d.ts'))).toBe(true);
    expect(pkg.files).toEqual(expect.arrayContaining(['dist', 'config', 'schema']));
    const license = readFileSync(join(ROOT, 'LICENSE'), 'utf8');
    expect(license).toMatch(/^MIT License\n\nCopyright \(c\) 2026 Ballast contributors\n/);
  });

  it('imports by its name through the exports map', async () => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', "const m = await import('ballast'); const s = await import('ballast/schema.json', { with: { type: 'json' } }); console.log(typeof m.Ballast, typeof m.parseConfig, s.default.title)"], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    expect(await exitCode(child), err).toBe(0);
    expect(out.trim()).toBe('function function Ballast configuration');
  });
});

describe('the JSON Schema', () => {
  const shipped = join(ROOT, 'schema', 'ballast.schema.json');

  it('schema/ballast.schema.json is up to date with the zod schema (npm run schema writes it)', () => {
    expect(readFileSync(shipped, 'utf8'), 'run npm run schema').toBe(configJsonSchemaText());
  });

  it('describes keys for editors, each description on a key that exists', () => {
    const text = configJsonSchemaText();
    const lost = Object.entries(DESCRIPTIONS).filter(([, d]) => !text.includes(`"description": ${JSON.stringify(d)}`)).map(([path]) => path);
    expect(lost).toEqual([]);
    const schema = configJsonSchema() as { properties: { upstreams: { items: { properties: { balance: { description: string } } } } } };
    expect(schema.properties.upstreams.items.properties.balance.description).toContain('round-robin (default)');
  });

  it('ballast schema prints it', async () => {
    const child = run(['schema']);
    expect(await exitCode(child)).toBe(0);
    expect(child.out()).toBe(readFileSync(shipped, 'utf8'));
  });

  const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
  const validate = ajv.compile(configJsonSchema());
  const examples = readdirSync(join(ROOT, 'config')).filter((f) => f.endsWith('.yaml'));

  it('every example in config/ points editors at it and passes it', () => {
    expect(examples.length).toBeGreaterThan(0);
    for (const name of examples) {
      const text = readFileSync(join(ROOT, 'config', name), 'utf8');
      expect(text.split('\n')[0], name).toBe('# yaml-language-server: $schema=../schema/ballast.schema.json');
      expect(validate(parseYaml(text)), `${name}: ${JSON.stringify(validate.errors)}`).toBe(true);
    }
  });

  it('accepts the smallest file (no protocol) and ${VAR} where a number or an enum is expected; refuses unknown keys and values', () => {
    const minimal = {
      workers: '${WORKERS:-auto}',
      listeners: [{ name: 'web', listen: '0.0.0.0:8080', routes: [{ upstream: 'api' }] }],
      upstreams: [{ name: 'api', balance: '${BALANCE}', servers: [{ address: '10.0.0.1:8080', weight: '${W:-3}' }] }],
    };
    expect(validate(minimal), JSON.stringify(validate.errors)).toBe(true);
    const misspelt = { ...minimal, upstreams: [{ name: 'api', balance: 'round-robbin', servers: [{ address: '10.0.0.1:8080', wieght: 3 }] }] };
    expect(validate(misspelt)).toBe(false);
    const paths = validate.errors!.map((e) => `${e.instancePath} ${e.message}`);
    expect(paths).toContain('/upstreams/0/servers/0 must NOT have additional properties');
    expect(paths).toContain('/upstreams/0/balance must be equal to one of the allowed values');
  });
});

afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});
