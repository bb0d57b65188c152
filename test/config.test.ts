/** Config loading: every error names the key path, line and column; defaults fill the rest. */
import { describe, expect, it } from 'vitest';
import { mkdirSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfig, type ConfigError } from '../src/config/load.js';
import { createCertificateAuthority } from './helpers/certs.js';
import { parseDuration, parsePercent, parseSize } from '../src/config/units.js';
import { closest, editDistance } from '../src/config/suggest.js';
import type { Config } from '../src/config/schema.js';

function withClient(client: string): string {
  return MINIMAL.replace('  - name: web\n', `  - name: web\n    client: ${client}\n`);
}

const byPosition = (a: string, b: string): number => {
  const [la, ca] = a.split(' ')[0]!.split(':').map(Number);
  const [lb, cb] = b.split(' ')[0]!.split(':').map(Number);
  return la! - lb! || ca! - cb!;
};

function errorsOf(text: string, env: NodeJS.ProcessEnv = {}): ConfigError[] {
  const r = parseConfig(text, env);
  if (r.ok) throw new Error('expected the config to be refused');
  return r.errors;
}

const MINIMAL = `
listeners:
  - name: web
    listen: 127.0.0.1:8080
    routes: [{ upstream: api }]
upstreams:
  - name: api
    servers: [{ address: 127.0.0.1:9000 }]
`;

describe('config loading', () => {
  it('accepts the smallest useful file and fills every default', () => {
    const r = parseConfig(MINIMAL, {});
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const c = r.config;
    expect(c.admin.listen).toEqual({ host: '127.0.0.1', port: 9901 });
    expect(c.logging).toEqual({ level: 'info', access_log: true });
    expect(c.workers).toBe(1);
    const l = c.listeners[0]!;
    expect(l.protocol).toBe('http');
    const u = c.upstreams[0]!;
    expect(u.balance).toBe('round-robin');
    expect(u.servers[0]).toEqual({ address: { host: '127.0.0.1', port: 9000 }, weight: 1, backup: false });
    expect(u.retry.attempts).toBe(3);
    expect(u.retry.buffer_body).toBe(65536);
    expect(u.retry.backoff).toEqual({ base: 25, max: 250 });
    expect(u.timeouts).toEqual({ connect: 2000, request: 30000, idle: 60000 });
    expect(u.panic_threshold).toBe(0.5);
    expect(Object.isFrozen(c.upstreams[0]!.servers)).toBe(true);
  });

  it('names the key, line, column and allowed values of a misspelt enum', () => {
    const errors = errorsOf(MINIMAL.replace('  - name: api\n', '  - name: api\n    balance: round-robbin\n'));
    expect(errors).toHaveLength(1);
    const e = errors[0]!;
    expect(e.path).toBe('upstreams[0].balance');
    expect(e.line).toBe(8);
    expect(e.column).toBe(14);
    expect(e.message).toContain('"weighted-round-robin"');
    expect(e.message).toContain('"maglev"');
    expect(e.message).toContain('got "round-robbin"');
  });

  it('reports every error at once, each at its own position', () => {
    const text = `
listeners:
  - name: web
    listen: nowhere
    colour: red
    routes: [{ upstream: missing }]
upstreams:
  - name: api
    servers:
      - { address: 127.0.0.1:9000, weight: 0 }
    health_check: { interval: 2 }
    retry: { budget: 150%, buffer_body: lots }
`;
    const errors = errorsOf(text);
    const byPath = Object.fromEntries(errors.map((e) => [e.path, e]));
    expect(byPath['listeners[0].listen']).toMatchObject({ line: 4, column: 13 });
    expect(byPath['listeners[0].colour']).toMatchObject({ line: 5, column: 5, message: 'unknown key "colour"' });
    expect(byPath['upstreams[0].servers[0].weight']).toMatchObject({ line: 10, column: 44 });
    expect(byPath['upstreams[0].health_check.interval']!.message).toContain('duration');
    expect(byPath['upstreams[0].retry.budget']!.message).toContain('150%');
    expect(byPath['upstreams[0].retry.buffer_body']!.message).toContain('size');
    // References across keys are checked in the same pass, not once the rest parses.
    expect(byPath['listeners[0].routes[0].upstream']).toMatchObject({ line: 6, message: 'no upstream is named "missing" (defined: api)' });
    expect(errors.length).toBeGreaterThanOrEqual(7);
  });

  it('refuses references to upstreams that do not exist, and duplicate names', () => {
    const errors = errorsOf(`
listeners:
  - { name: web, listen: 127.0.0.1:8080, routes: [{ upstream: nope }] }
upstreams:
  - { name: api, servers: [{ address: 127.0.0.1:9000 }] }
  - { name: api, servers: [{ address: 127.0.0.1:9001 }] }
`);
    expect(errors.map((e) => e.path).sort()).toEqual(['listeners[0].routes[0].upstream', 'upstreams[1].name']);
    expect(errors.find((e) => e.path === 'listeners[0].routes[0].upstream')!.message).toContain('no upstream is named "nope"');
  });

  it('points a missing required key at its parent', () => {
    const errors = errorsOf(`
listeners:
  - { name: web, listen: 127.0.0.1:8080, routes: [{ upstream: api }] }
upstreams:
  - name: api
`);
    expect(errors[0]).toMatchObject({ path: 'upstreams[0].servers', line: 5, column: 5 });
    // servers may be left out when discovery finds them (issue #16): the error says what is missing.
    expect(errors[0]!.message).toContain('an upstream needs at least one server, or discovery');
  });

  it('reports YAML syntax errors with their position', () => {
    const errors = errorsOf('listeners:\n  - name: web\n   listen: [oops\n');
    expect(errors[0]!.line).toBeGreaterThan(0);
    expect(errors[0]!.column).toBeGreaterThan(0);
  });

  describe('YAML aliases', () => {
    // Two upstreams sharing one server list through an anchor: the way a user writes it.
    const shared = (alias: string) => `
listeners:
  - { name: web, listen: 127.0.0.1:8080, routes: [{ upstream: api }] }
upstreams:
  - name: api
    servers: &servers [{ address: 127.0.0.1:9000 }]
  - name: api-canary
    servers: ${alias}
`;

    it('accepts an alias to an anchor defined before it', () => {
      const r = parseConfig(shared('*servers'), {});
      expect(r.ok ? r.config.upstreams[1]!.servers[0]!.address : r.errors).toEqual({ host: '127.0.0.1', port: 9000 });
    });

    it('refuses an alias to an undefined anchor at the alias, and reports every such alias', () => {
      const errors = errorsOf(`${shared('*srvers')}    retry: { backoff: *backof }
`);
      expect(errors).toEqual([
        { path: 'upstreams[1].servers', line: 8, column: 14, message: 'alias *srvers has no anchor: expected &srvers defined before it' },
        { path: 'upstreams[1].retry.backoff', line: 9, column: 23, message: 'alias *backof has no anchor: expected &backof defined before it' },
      ]);
    });

    it('refuses an alias used before its anchor', () => {
      const errors = errorsOf(`
listeners:
  - { name: web, listen: 127.0.0.1:8080, routes: [{ upstream: api }] }
upstreams:
  - { name: api-canary, servers: *servers }
  - { name: api, servers: &servers [{ address: 127.0.0.1:9000 }] }
`);
      expect(errors).toEqual([{ path: 'upstreams[0].servers', line: 5, column: 34, message: 'alias *servers has no anchor: expected &servers defined before it' }]);
    });

    it('refuses an alias inside the node it refers to', () => {
      const errors = errorsOf(MINIMAL.replace('servers: [', 'servers: &loop [*loop, '));
      expect(errors).toEqual([{ path: 'upstreams[0].servers[0]', line: 8, column: 21, message: 'alias *loop refers to a node that contains it' }]);
    });

    it('refuses an anchor aliased too many times (the yaml package\'s guard against resource exhaustion) at the alias', () => {
      const routes = Array.from({ length: 120 }, (_, i) => `      - { match: { path_prefix: /p${i} }, upstream: api, retry: *retry }`);
      const text = MINIMAL.replace('    routes: [{ upstream: api }]\n', `    routes:\n      - { upstream: api, retry: &retry { attempts: 2 } }\n${routes.join('\n')}\n`);
      const errors = errorsOf(text);
      expect(errors).toHaveLength(1);
      const e = errors[0]!;
      expect(e.message).toMatch(/^alias \*retry: too many aliases/);
      // The alias that crossed the limit, at its own line.
      const index = Number(/^listeners\[0\]\.routes\[(\d+)\]\.retry$/.exec(e.path)?.[1]);
      expect(index).toBeGreaterThan(50);
      expect(e.line).toBe(6 + index);
      expect(e.column).toBe(text.split('\n')[e.line - 1]!.indexOf('*retry') + 1);
    });
  });

  it('interpolates ${VAR} and ${VAR:-default} in values, and names a missing variable', () => {
    const text = MINIMAL.replace('127.0.0.1:9000', '"${ORIGIN}"').replace('listen: 127.0.0.1:8080', 'listen: "${LISTEN:-127.0.0.1:8081}"');
    const r = parseConfig(text, { ORIGIN: '10.1.2.3:7000' });
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.config.upstreams[0]!.servers[0]!.address).toEqual({ host: '10.1.2.3', port: 7000 });
      expect(r.config.listeners[0]!.listen).toEqual({ host: '127.0.0.1', port: 8081 });
    }
    const errors = errorsOf(text, {});
    expect(errors[0]).toMatchObject({ path: 'upstreams[0].servers[0].address', message: 'environment variable ORIGIN is not set' });
  });

  it('reads numbers, booleans and bare percentages that ${VAR} gives as text, quoted or not; other text is still refused', () => {
    const text = `workers: "\${WORKERS:-2}"
logging: { access_log: "\${ACCESS_LOG}" }
listeners:
  - name: web
    listen: 127.0.0.1:8080
    routes: [{ upstream: api }]
upstreams:
  - name: api
    servers:
      - address: 127.0.0.1:9000
        weight: \${WEIGHT:-3}
    retry: { attempts: "\${ATTEMPTS}", budget: "\${BUDGET}" }
`;
    const r = parseConfig(text, { ACCESS_LOG: 'false', ATTEMPTS: '2', BUDGET: '25' });
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.config.workers).toBe(2);
      expect(r.config.logging.access_log).toBe(false);
      expect(r.config.upstreams[0]!.servers[0]!.weight).toBe(3);
      expect(r.config.upstreams[0]!.retry.attempts).toBe(2);
      expect(r.config.upstreams[0]!.retry.budget).toBe(0.25);
    }
    const errors = errorsOf(text, { ACCESS_LOG: 'no', ATTEMPTS: 'two', BUDGET: '25', WEIGHT: '3.5' });
    expect(errors.map((e) => [e.path, e.line])).toEqual([
      ['logging.access_log', 2],
      ['upstreams[0].servers[0].weight', 11],
      ['upstreams[0].retry.attempts', 12],
    ]);
  });

  it('refuses values that would fail at run time: a non-prime Maglev table, a zero EWMA window, no pending queue', () => {
    const errors = errorsOf(MINIMAL.replace('  - name: api\n', '  - name: api\n    maglev_table_size: 100\n    ewma_decay: "0"\n    limits: { max_pending_requests: 0 }\n'));
    expect(errors.map((e) => e.path).sort()).toEqual(['upstreams[0].ewma_decay', 'upstreams[0].limits.max_pending_requests', 'upstreams[0].maglev_table_size']);
    expect(errors.find((e) => e.path === 'upstreams[0].maglev_table_size')!.message).toContain('prime');
  });

  describe('zero durations', () => {
    /** MINIMAL with `key: value` set at the path `key` names (`upstreams[0].` keys go into the upstream). */
    const withKey = (key: string, value: string): string => {
      const nest = (path: string[]): string => (path.length === 1 ? `${path[0]}: ${value}` : `${path[0]}: { ${nest(path.slice(1))} }`);
      const [scope, ...path] = key.split('.');
      if (scope === 'upstreams[0]') return MINIMAL.replace('  - name: api\n', `  - name: api\n    ${nest(path)}\n`);
      if (scope === 'listeners[0]') return MINIMAL.replace('  - name: web\n', `  - name: web\n    ${nest(path)}\n`);
      return `${nest([scope!, ...path])}\n${MINIMAL}`;
    };
    const tcp = (line: string): string => `
listeners:
  - { name: db, protocol: tcp, listen: 127.0.0.1:6432, upstream: pg, ${line} }
upstreams:
  - { name: pg, servers: [{ address: 127.0.0.1:5432 }] }
`;

    // Intervals, and timeouts that 0 would make fire at once (or, for headers_timeout, make Node check every
    // connection each millisecond): 0 has no "off" meaning there, so it is refused.
    it.each([
      'upstreams[0].health_check.interval',
      'upstreams[0].health_check.unhealthy_interval',
      'upstreams[0].health_check.timeout',
      'upstreams[0].outlier_detection.interval',
      'upstreams[0].outlier_detection.base_ejection_time',
      'upstreams[0].outlier_detection.max_ejection_time',
      'upstreams[0].retry.per_try_timeout',
      'upstreams[0].timeouts.connect',
      'upstreams[0].timeouts.request',
      'upstreams[0].ewma_decay',
      'listeners[0].client.headers_timeout',
    ])('refuses %s: 0s, at its line and column', (key) => {
      const text = withKey(key, '0s');
      const errors = errorsOf(text);
      expect(errors).toHaveLength(1);
      const e = errors[0]!;
      expect(e.path).toBe(key);
      expect(e.message).toBe('must be longer than 0');
      const line = text.split('\n')[e.line - 1]!;
      expect(line.slice(e.column - 1)).toMatch(/^0s\b/);
      expect(line.slice(0, e.column - 1)).toContain(`${key.split('.').at(-1)!}: `);
    });

    it('refuses 0s in a route\'s retry override too', () => {
      const errors = errorsOf(MINIMAL.replace('routes: [{ upstream: api }]', 'routes: [{ upstream: api, retry: { per_try_timeout: 0s } }]'));
      expect(errors).toMatchObject([{ path: 'listeners[0].routes[0].retry.per_try_timeout', line: 5, message: 'must be longer than 0' }]);
    });

    it('refuses a sticky cookie ttl under a second (its Max-Age counts whole seconds; 0 deletes the cookie)', () => {
      for (const ttl of ['0s', '500ms']) {
        const errors = errorsOf(withKey('upstreams[0].sticky', `{ cookie: srv, ttl: ${ttl} }`));
        expect(errors).toMatchObject([{ path: 'upstreams[0].sticky.ttl', line: 8, message: 'must be at least 1s: the cookie\'s Max-Age counts whole seconds' }]);
      }
    });

    // 0 means "none" or "no limit" here, as in Envoy and in node:http and undici, which these values are handed to.
    it.each([
      ['upstreams[0].slow_start', (c: Config) => c.upstreams[0]!.slow_start],
      ['upstreams[0].retry.backoff.base', (c: Config) => c.upstreams[0]!.retry.backoff.base],
      ['upstreams[0].retry.backoff.max', (c: Config) => c.upstreams[0]!.retry.backoff.max],
      ['upstreams[0].timeouts.idle', (c: Config) => c.upstreams[0]!.timeouts.idle],
      ['listeners[0].client.request_timeout', (c: Config) => (c.listeners[0]!.protocol === 'http' ? c.listeners[0]!.client.request_timeout : NaN)],
      ['listeners[0].client.keep_alive_timeout', (c: Config) => (c.listeners[0]!.protocol === 'http' ? c.listeners[0]!.client.keep_alive_timeout : NaN)],
      ['shutdown.drain_timeout', (c: Config) => c.shutdown.drain_timeout],
    ])('accepts %s: 0s', (key, read) => {
      const r = parseConfig(withKey(key, '0s'), {});
      expect(r.ok ? read(r.config) : r.errors).toBe(0);
    });

    it('accepts a tcp listener\'s idle_timeout: 0s (no idle limit)', () => {
      const r = parseConfig(tcp('idle_timeout: 0s'), {});
      expect(r.ok && r.config.listeners[0]!.protocol === 'tcp' ? r.config.listeners[0]!.idle_timeout : r).toBe(0);
    });
  });

  it('refuses a client headers_timeout above its request_timeout, which node:http would throw on', () => {
    const errors = errorsOf(withClient('{ headers_timeout: 10s, request_timeout: 5s }'));
    expect(errors).toMatchObject([{ path: 'listeners[0].client.headers_timeout', line: 4, message: 'must not be longer than request_timeout' }]);
    expect(parseConfig(withClient('{ headers_timeout: 10s, request_timeout: 0s }'), {}).ok).toBe(true);
  });

  describe('what a refused value should have been', () => {
    const upstreamKey = (line: string): string => MINIMAL.replace('  - name: api\n', `  - name: api\n    ${line}\n`);
    const RETRY_ON = 'expected connect-failure, reset, timeout, gateway-error, 5xx, retriable-4xx or a status code from 100 to 599';
    it.each([
      ['workers: "two"', 'workers', 'expected a number of processes from 1 to 64, or auto (got "two")'],
      ['workers: 1.5', 'workers', 'expected a number of processes from 1 to 64, or auto (got 1.5)'],
      ['workers: true', 'workers', 'expected a number of processes from 1 to 64, or auto (got true)'],
      ['workers: 0', 'workers', 'expected a number of processes from 1 to 64, or auto (got 0)'],
      ['workers: 65', 'workers', 'expected a number of processes from 1 to 64, or auto (got 65)'],
    ])('%s', (line, path, message) => {
      expect(errorsOf(`${line}\n${MINIMAL}`)).toEqual([{ path, line: 1, column: 10, message }]);
    });

    it.each([
      ['retry: { retry_on: [sometimes] }', 'retry.retry_on[0]', `"sometimes" is not a retry condition: ${RETRY_ON}`],
      ['retry: { retry_on: ["700"] }', 'retry.retry_on[0]', `"700" is not a retry condition: ${RETRY_ON}`],
      ['retry: { retry_on: [700] }', 'retry.retry_on[0]', `"700" is not a retry condition: ${RETRY_ON}`],
      ['retry: { retry_on: [true] }', 'retry.retry_on[0]', `${RETRY_ON} (got true)`],
      ['health_check: { expected_status: true }', 'health_check.expected_status', 'expected a status list such as "200-399" or "200, 204" (got true)'],
      ['health_check: { expected_status: 2.5 }', 'health_check.expected_status', 'expected a status list such as "200-399" or "200, 204" (got 2.5)'],
      ['health_check: { expected_status: [200] }', 'health_check.expected_status', 'expected a status list such as "200-399" or "200, 204"'],
      ['hash_key: header', 'hash_key', 'expected header:NAME, cookie:NAME, query:NAME, client-ip or path (got "header")'],
      ['hash_key: 5', 'hash_key', 'expected header:NAME, cookie:NAME, query:NAME, client-ip or path (got 5)'],
      ['panic_threshold: 150', 'panic_threshold', 'expected a percentage from 0% to 100% (got 150)'],
      ['retry: { buffer_body: -1 }', 'retry.buffer_body', 'expected a size such as 64KiB or 1MiB (got -1)'],
    ])('upstream %s', (line, path, message) => {
      expect(errorsOf(upstreamKey(line))).toMatchObject([{ path: `upstreams[0].${path}`, line: 8, message }]);
    });

    it('a listen address that is a bare port, and a listener that is not a map', () => {
      expect(errorsOf(MINIMAL.replace('listen: 127.0.0.1:8080', 'listen: 8080'))).toMatchObject([
        { path: 'listeners[0].listen', message: 'expected a listen address as "host:port", "[v6]:port" or ":port" (got 8080)' },
      ]);
      expect(errorsOf(MINIMAL.replace(/listeners:\n[\s\S]*?upstreams/, 'listeners: [web]\nupstreams'))).toMatchObject([
        { path: 'listeners[0]', message: 'expected a listener: { name, listen, routes } or { name, protocol: tcp, listen, upstream } (got "web")' },
      ]);
      expect(errorsOf(MINIMAL.replace('  - name: web\n', '  - name: web\n    protocol: udp\n'))).toMatchObject([
        { path: 'listeners[0].protocol', message: 'expected protocol: http or tcp (got "udp")' },
      ]);
    });
  });

  it('refuses a non-loopback admin listener without a token', () => {
    const errors = errorsOf(`admin: { listen: 0.0.0.0:9901 }\n${MINIMAL}`);
    expect(errors[0]!.path).toBe('admin.token');
  });

  it('accepts JSON, which is YAML too', () => {
    const r = parseConfig(JSON.stringify({
      listeners: [{ name: 'db', protocol: 'tcp', listen: ':6432', upstream: 'pg' }],
      upstreams: [{ name: 'pg', servers: [{ address: '[::1]:5432' }] }],
    }), {});
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.config.listeners[0]!.listen).toEqual({ host: '0.0.0.0', port: 6432 });
      expect(r.config.upstreams[0]!.servers[0]!.address).toEqual({ host: '::1', port: 5432 });
    }
  });

  it('validates every example in config/', () => {
    const dir = join(import.meta.dirname, '..', 'config');
    const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
    expect(files.length).toBeGreaterThanOrEqual(3);
    // The certificate files config/tls.yaml names, relative to the working directory, as a user would have them.
    const ca = createCertificateAuthority();
    const certs = join(ca.dir, 'certs');
    mkdirSync(certs);
    for (const [file, names] of [['example', ['example.com']], ['other', ['other.example']]] as const) {
      const pem = ca.issue(names, { file });
      renameSync(pem.certPath, join(certs, `${file}.pem`));
      renameSync(pem.keyPath, join(certs, `${file}-key.pem`));
    }
    const cwd = process.cwd();
    process.chdir(ca.dir);
    try {
      for (const f of files) {
        const r = parseConfig(readFileSync(join(dir, f), 'utf8'), { BALLAST_ADMIN_TOKEN: 'x'.repeat(32) });
        expect(r.ok ? [] : r.errors, f).toEqual([]);
      }
    } finally {
      process.chdir(cwd);
      ca.remove();
    }
  });
});

describe('one pass, with suggestions', () => {
  it('reports duplicates, unknown upstreams and a shared address beside schema errors, never a false reference error', () => {
    const errors = errorsOf(`
admin: { listen: 127.0.0.1:9901 }
listeners:
  - { name: web, listen: 127.0.0.1:9901, routes: [{ upstream: ap }], colour: red }
  - { name: web, protocol: tcp, listen: 127.0.0.1:7000, upstream: api, idle_timeout: soon }
upstreams:
  - { name: api, balance: random, servers: [{ address: 127.0.0.1:9000 }, { address: 127.0.0.1:9000, weight: 0 }] }
  - { name: api, servers: [{ address: nowhere }] }
`);
    expect(errors.map((e) => `${e.line}:${e.column} ${e.path}: ${e.message}`)).toEqual([
      '4:26 listeners[0].listen: 127.0.0.1:9901 is already used by another listener or the admin listener',
      '4:63 listeners[0].routes[0].upstream: no upstream is named "ap" (defined: api); did you mean "api"?',
      '4:70 listeners[0].colour: unknown key "colour"',
      '5:13 listeners[1].name: listener "web" is defined twice',
      '5:86 listeners[1].idle_timeout: "soon" is not a duration: expected e.g. 250ms, 2s, 1m, 1h',
      '7:109 upstreams[0].servers[1].weight: Too small: expected number to be >=1 (got 0)',
      '7:85 upstreams[0].servers[1].address: server 127.0.0.1:9000 is listed twice',
      '8:13 upstreams[1].name: upstream "api" is defined twice',
      '8:39 upstreams[1].servers[0].address: "nowhere" is not a server address: expected "host:port" or "[v6]:port", e.g. 127.0.0.1:8080',
    ].sort(byPosition));
  });

  it('says nothing of references while an upstream has no readable name, which could be the one referred to', () => {
    const errors = errorsOf(`
listeners: [{ name: web, listen: 127.0.0.1:8080, routes: [{ upstream: api }] }]
upstreams: [{ nme: api, servers: [{ address: 127.0.0.1:9000 }] }]
`);
    expect(errors.map((e) => e.message)).toEqual(['missing required key: Invalid input: expected string, received undefined', 'unknown key "nme"; did you mean "name"?']);
  });

  it('suggests the closest key of the object at hand, the branch of a tcp listener included', () => {
    const messages = errorsOf(`
workers: auot
logging: { levl: debug }
listeners:
  - { name: pg, protocol: tcp, listen: 127.0.0.1:6432, upstrem: api, upstream: api }
  - { name: web, listen: 127.0.0.1:8080, routes: [{ upstream: api, retyr: { attempts: 2 } }] }
upstreams:
  - name: api
    balance: RoundRobin
    healthCheck: { type: htp }
    servers: [{ address: 127.0.0.1:9000, wieght: 2, bakup: true }]
`).map((e) => `${e.path}: ${e.message}`);
    expect(messages).toEqual([
      'workers: expected a number of processes from 1 to 64, or auto (got "auot"); did you mean "auto"?',
      'logging.levl: unknown key "levl"; did you mean "level"?',
      'listeners[0].upstrem: unknown key "upstrem"; did you mean "upstream"?',
      'listeners[1].routes[0].retyr: unknown key "retyr"; did you mean "retry"?',
      expect.stringMatching(/^upstreams\[0\]\.balance: Invalid option: .* \(got "RoundRobin"\); did you mean "round-robin"\?$/),
      'upstreams[0].healthCheck: unknown key "healthCheck"; did you mean "health_check"?',
      'upstreams[0].servers[0].wieght: unknown key "wieght"; did you mean "weight"?',
      'upstreams[0].servers[0].bakup: unknown key "bakup"; did you mean "backup"?',
    ]);
  });

  it('suggests a listener protocol, and nothing for a word close to no option', () => {
    const messages = errorsOf(MINIMAL.replace('  - name: web\n', '  - name: web\n    protocol: htp\n').replace('  - name: api\n', '  - name: api\n    balance: fastest\n')).map((e) => e.message);
    expect(messages[0]).toBe('expected protocol: http or tcp (got "htp"); did you mean "http"?');
    expect(messages[1]).toMatch(/\(got "fastest"\)$/);
  });

  it('edit distance counts a swap of neighbours as one step; a candidate must be within a third of the word', () => {
    expect(editDistance('wieght', 'weight')).toBe(1);
    expect(editDistance('round-robbin', 'round-robin')).toBe(1);
    expect(editDistance('', 'abc')).toBe(3);
    expect(closest('listner', ['listen', 'listeners', 'name'])).toBe('listen');
    expect(closest('HEALTH-CHECK', ['health_check', 'hash_key'])).toBe('health_check');
    expect(closest('colour', ['client', 'routes', 'name'])).toBeUndefined();
    expect(closest('tls', ['ttl'])).toBeUndefined();
  });
});

describe('units', () => {
  it.each([
    ['250ms', 250], ['2s', 2000], ['1.5s', 1500], ['1m', 60000], ['1h', 3600000], ['0', 0],
  ])('duration %s is %d ms', (text, ms) => expect(parseDuration(text)).toBe(ms));
  it.each(['2', '1 d', '-1s', 's', ''])('"%s" is not a duration', (text) => expect(parseDuration(text)).toBeUndefined());
  it.each([
    ['64KiB', 65536], ['1MiB', 1048576], ['512', 512], ['1KB', 1000], ['1GiB', 1073741824],
  ])('size %s is %d bytes', (text, n) => expect(parseSize(text)).toBe(n));
  it('reads percentages as shares', () => {
    expect(parsePercent('50%')).toBe(0.5);
    expect(parsePercent('0%')).toBe(0);
    expect(parsePercent('100%')).toBe(1);
    expect(parsePercent('101%')).toBeUndefined();
    expect(parsePercent('50')).toBeUndefined();
  });
});
