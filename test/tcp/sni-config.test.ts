/** The config of SNI routes on a tcp listener: what is accepted, and each mistake named by its key path and line. */
import { describe, expect, it } from 'vitest';
import { parseConfig, type ConfigError } from '../../src/config/load.js';

function file(listener: string): string {
  return `
listeners:
  - name: edge
    protocol: tcp
    listen: 127.0.0.1:8443
${listener}
upstreams:
  - { name: web, servers: [{ address: 127.0.0.1:9443 }] }
  - { name: api, servers: [{ address: 127.0.0.1:9444 }] }
`;
}

function errorsOf(text: string): { path: string; line: number; message: string }[] {
  const r = parseConfig(text, {});
  if (r.ok) throw new Error('expected the config to be refused');
  return r.errors.map((e: ConfigError) => ({ path: e.path, line: e.line, message: e.message }));
}

describe('tcp listener routes', () => {
  it('accepts routes with and without a default upstream, lower-cases the patterns, and defaults preread_timeout to 5s', () => {
    const r = parseConfig(file(`    routes: [ { match: { sni: "*.Example.com" }, upstream: web }, { match: { sni: api.example.com }, upstream: api } ]
    upstream: web`), {});
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const l = r.config.listeners[0]!;
    expect(l.protocol === 'tcp' && { routes: l.routes, upstream: l.upstream, preread_timeout: l.preread_timeout }).toEqual({
      routes: [{ match: { sni: '*.example.com' }, upstream: 'web' }, { match: { sni: 'api.example.com' }, upstream: 'api' }],
      upstream: 'web',
      preread_timeout: 5000,
    });
    expect(parseConfig(file('    routes: [ { match: { sni: a.example.com }, upstream: web } ]\n    preread_timeout: 2s'), {}).ok).toBe(true);
  });

  it('needs an upstream or routes', () => {
    expect(errorsOf(file(''))).toEqual([{ path: 'listeners[0].upstream', line: 3, message: 'a tcp listener needs an upstream, or routes by sni' }]);
  });

  it('refuses a pattern that is not a name or a one-label wildcard, with its path and line', () => {
    for (const bad of ['"*"', '"a.*.example.com"', '"**.example.com"', '"example.com."', '"exa mple.com"', '"*example.com"', '""']) {
      const errors = errorsOf(file(`    routes:\n      - { match: { sni: ${bad} }, upstream: web }`));
      expect(errors).toEqual([{ path: 'listeners[0].routes[0].match.sni', line: 7, message: expect.stringContaining('expected a server name such as api.example.com') as string }]);
    }
  });

  it('refuses a route to an unknown upstream, a pattern listed twice, and a route without sni', () => {
    const errors = errorsOf(file(`    routes:
      - { match: { sni: a.example.com }, upstream: wbe }
      - { match: { sni: A.example.com }, upstream: api }
      - { match: { host: a.example.com }, upstream: api }
    upstream: nope`));
    expect(errors.map((e) => `${e.path}: ${e.message}`)).toEqual(expect.arrayContaining([
      'listeners[0].routes[0].upstream: no upstream is named "wbe" (defined: web, api); did you mean "web"?',
      'listeners[0].routes[1].match.sni: sni "a.example.com" is already the pattern of routes[0]',
      'listeners[0].routes[2].match.host: unknown key "host"',
      expect.stringMatching(/^listeners\[0\]\.upstream: no upstream is named "nope"/) as string,
    ]));
  });

  it('refuses a preread_timeout of 0: the ClientHello wait must be bounded', () => {
    expect(errorsOf(file('    upstream: web\n    routes: [ { match: { sni: a.example.com }, upstream: web } ]\n    preread_timeout: 0s'))[0]!.path).toBe('listeners[0].preread_timeout');
  });
});
