/** `discovery.dns` in the config: what is accepted, and errors that name the key and say what to write. */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';

function upstreamYaml(body: string): string {
  return `
listeners:
  - { name: web, listen: 127.0.0.1:8080, routes: [{ upstream: api }] }
upstreams:
  - name: api
${body}
`;
}

function errors(body: string): { path: string; message: string }[] {
  const r = parseConfig(upstreamYaml(body), {});
  if (r.ok) throw new Error('expected the config to be refused');
  return r.errors.map((e) => ({ path: e.path, message: e.message }));
}

describe('discovery.dns config', () => {
  it('accepts an upstream with discovery and no servers, with defaults', () => {
    const r = parseConfig(upstreamYaml('    discovery: { dns: { name: api.default.svc.cluster.local, port: 8080 } }'), {});
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const u = r.config.upstreams[0]!;
    expect(u.servers).toEqual([]);
    expect(u.discovery?.dns).toEqual({ name: 'api.default.svc.cluster.local', port: 8080, type: 'A', interval: 5000 });
  });

  it('reads resolvers as IP:port, port 53 by default', () => {
    const r = parseConfig(upstreamYaml('    discovery: { dns: { name: _http._tcp.api.test, type: SRV, resolvers: ["10.96.0.10", "[fd00::a]:5353"] } }'), {});
    expect(r.ok && r.config.upstreams[0]!.discovery?.dns.resolvers).toEqual([{ host: '10.96.0.10', port: 53 }, { host: 'fd00::a', port: 5353 }]);
  });

  it('refuses what cannot work, naming the key', () => {
    expect(errors('    servers: []')).toEqual([{ path: 'upstreams[0].servers', message: 'an upstream needs at least one server, or discovery (or both)' }]);
    expect(errors('    discovery: { dns: { name: api.test } }')).toEqual([{ path: 'upstreams[0].discovery.dns.port', message: 'A records carry no port: port is required' }]);
    expect(errors('    discovery: { dns: { name: api.test, type: SRV, port: 80 } }')).toEqual([{ path: 'upstreams[0].discovery.dns.port', message: 'SRV records carry the port: leave port out' }]);
    expect(errors('    discovery: { dns: { name: api.test, port: 80, resolvers: [dns.example.com] } }')[0]).toMatchObject({ path: 'upstreams[0].discovery.dns.resolvers[0]' });
    expect(errors('    discovery: { dns: { name: "api test", port: 80 } }')[0]!.message).toContain('expected a DNS name');
    expect(errors('    discovery: { dns: { name: api.test, port: 80, type: CNAME } }')[0]!.path).toBe('upstreams[0].discovery.dns.type');
    expect(errors('    discovery: { dns: { name: api.test, port: 80, interval: 10ms } }')[0]).toMatchObject({ path: 'upstreams[0].discovery.dns.interval', message: 'must be at least 100ms' });
    expect(errors('    discovery: { dns: { name: api.test, port: 80, ttl: 5s } }')[0]!.message).toContain('unknown key "ttl"');
  });
});
