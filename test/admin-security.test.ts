/**
 * The admin listener refuses what a web page could send it: mutations from another origin (CSRF) and requests under a
 * Host name that could be rebound to 127.0.0.1 (DNS rebinding). Requests go out over node:http with explicit headers,
 * as fetch will not send a Host or an Origin of our choosing.
 */
import { request as httpRequest, type OutgoingHttpHeaders } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.js';
import { hostName } from '../src/admin/request-guard.js';
import type { Origin } from './helpers/origin.js';
import type { TestBallast } from './helpers/ballast.js';
import { Fixture, poolConfig } from './health/config.js';

const fx = new Fixture();
afterEach(() => fx.close());

const TOKEN = 'a-test-token-of-enough-length';

interface Answer {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

/** One request to the admin listener on 127.0.0.1, with exactly the headers given (Host too, when given). */
function admin(b: TestBallast, method: string, path: string, headers: OutgoingHttpHeaders = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: b.adminPort, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        const json = res.headers['content-type'] === 'application/json' && text !== ''; // HEAD: no body
        resolve({ status: res.statusCode ?? 0, body: json ? (JSON.parse(text) as Record<string, unknown>) : { text } });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const drain = (o: Origin) => `/servers/drain?upstream=pool&server=${encodeURIComponent(o.address)}`;

async function stateOf(b: TestBallast): Promise<string> {
  const { body } = await admin(b, 'GET', '/status');
  return (body as { upstreams: { servers: { state: string }[] }[] }).upstreams[0]!.servers[0]!.state;
}

async function start(adminExtra = ''): Promise<{ b: TestBallast; o: Origin }> {
  const [o] = await fx.origins(1);
  const b = await fx.ballast(poolConfig({ servers: [o!], admin: adminExtra }));
  return { b, o: o! };
}

const refusals = (b: TestBallast) => b.logs.filter((l) => l.msg === 'admin: request refused');

describe('admin mutations from a web page (CSRF)', () => {
  it('refuses a foreign Origin with 403 and a warning, and leaves the server as it was', async () => {
    const { b, o } = await start();
    const answer = await admin(b, 'POST', drain(o), { origin: 'http://evil.example' });
    expect(answer.status).toBe(403);
    expect(answer.body.error).toContain('http://evil.example');
    expect(await stateOf(b)).toBe('healthy');
    expect(refusals(b)).toEqual([
      expect.objectContaining({ level: 40, method: 'POST', path: '/servers/drain', origin: 'http://evil.example' }),
    ]);
    expect(b.logs.some((l) => l.msg === 'admin: server drain')).toBe(false);
  });

  it('refuses Origin: null, another scheme and another port; accepts its own origin however the Host spells it', async () => {
    const { b, o } = await start();
    const own = `127.0.0.1:${b.adminPort}`;
    for (const origin of ['null', `https://${own}`, `http://127.0.0.1:${b.adminPort + 1}`, 'http://127.0.0.1', `http://localhost:${b.adminPort}`]) {
      expect((await admin(b, 'POST', drain(o), { host: own, origin })).status, origin).toBe(403);
    }
    expect(await stateOf(b)).toBe('healthy');
    expect((await admin(b, 'POST', drain(o), { host: own, origin: `http://${own}` })).status).toBe(200);
    expect(await stateOf(b)).toBe('draining');
    const undrain = drain(o).replace('drain', 'undrain');
    expect((await admin(b, 'POST', undrain, { host: `LOCALHOST:${b.adminPort}`, origin: `http://localhost:${b.adminPort}` })).status).toBe(200);
    expect((await admin(b, 'POST', drain(o), { host: `[::1]:${b.adminPort}`, origin: `http://[0:0::1]:${b.adminPort}` })).status).toBe(200);
    expect((await admin(b, 'POST', undrain, { host: '127.0.0.1:80', origin: 'http://127.0.0.1' })).status).toBe(200);
    expect(await stateOf(b)).toBe('healthy');
  });

  it('refuses Sec-Fetch-Site cross-site and same-site; same-origin and none pass', async () => {
    const { b, o } = await start();
    for (const site of ['cross-site', 'same-site']) {
      const answer = await admin(b, 'POST', drain(o), { 'sec-fetch-site': site });
      expect(answer).toMatchObject({ status: 403, body: { error: expect.stringContaining(site) as unknown } });
    }
    expect(await stateOf(b)).toBe('healthy');
    expect((await admin(b, 'POST', drain(o), { 'sec-fetch-site': 'same-origin' })).status).toBe(200);
    expect((await admin(b, 'POST', drain(o).replace('drain', 'undrain'), { 'sec-fetch-site': 'none' })).status).toBe(200);
  });

  it('checks every method but GET and HEAD, on any path (a route added later is covered)', async () => {
    const { b } = await start();
    for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS']) {
      expect((await admin(b, method, '/a-future-route', { origin: 'http://evil.example' })).status, method).toBe(403);
    }
    expect((await admin(b, 'POST', '/a-future-route')).status).toBe(404);
  });

  it('checks before the token, and never logs it', async () => {
    const { b, o } = await start(`, token: ${TOKEN}`);
    const auth = { authorization: `Bearer ${TOKEN}` };
    expect((await admin(b, 'POST', drain(o), { ...auth, origin: 'http://evil.example' })).status).toBe(403);
    expect((await admin(b, 'POST', drain(o), { ...auth, host: 'evil.example' })).status).toBe(403);
    expect(await stateOf(b)).toBe('healthy');
    expect(refusals(b)).toHaveLength(2);
    expect(JSON.stringify(b.logs)).not.toContain(TOKEN);
    // The token rules stand as they were: no token, 401; the token, 200.
    expect((await admin(b, 'POST', drain(o))).status).toBe(401);
    expect((await admin(b, 'POST', drain(o), auth)).status).toBe(200);
    expect(await stateOf(b)).toBe('draining');
  });

  it('a plain curl-style POST (no Origin, Host an IP literal) still drains', async () => {
    const { b, o } = await start();
    const answer = await admin(b, 'POST', drain(o));
    expect(answer).toMatchObject({ status: 200, body: { action: 'drain' } });
    expect(await stateOf(b)).toBe('draining');
    expect(refusals(b)).toHaveLength(0);
  });
});

describe('admin requests under a rebound name (DNS rebinding)', () => {
  it('refuses Host: evil.example for a mutation, and for /status and /metrics; /healthz and /ready answer any Host', async () => {
    const { b, o } = await start();
    const evil = { host: `evil.example:${b.adminPort}` };
    const answer = await admin(b, 'POST', drain(o), evil);
    expect(answer).toMatchObject({ status: 403, body: { error: expect.stringContaining('admin.allowed_hosts') as unknown } });
    expect(await stateOf(b)).toBe('healthy');
    expect((await admin(b, 'GET', '/status', evil)).status).toBe(403);
    expect((await admin(b, 'GET', '/metrics', evil)).status).toBe(403);
    expect((await admin(b, 'HEAD', '/status', evil)).status).toBe(403);
    expect((await admin(b, 'GET', '/healthz', evil)).status).toBe(200);
    expect((await admin(b, 'GET', '/ready', evil)).status).toBe(200);
    expect(refusals(b)).toHaveLength(4);
    expect(refusals(b)[0]).toMatchObject({ level: 40, host: `evil.example:${b.adminPort}` });
  });

  it('refuses names that only look local, and malformed Hosts', async () => {
    const { b, o } = await start();
    for (const host of ['localhost.evil.example', '127.0.0.1.nip.io', '127.1', '::1', 'a:b:c', `127.0.0.1:99999`, 'evil.example@127.0.0.1']) {
      expect((await admin(b, 'POST', drain(o), { host })).status, host).toBe(403);
    }
    expect(await stateOf(b)).toBe('healthy');
  });

  it('serves Prometheus and /status by any IP literal or localhost, with or without a port', async () => {
    const { b } = await start();
    for (const host of [`127.0.0.1:${b.adminPort}`, '10.1.2.3', `[::1]:${b.adminPort}`, '[fd00::7]', `localhost:${b.adminPort}`, 'localhost']) {
      const metrics = await admin(b, 'GET', '/metrics', { host });
      expect(metrics.status, host).toBe(200);
      expect(metrics.body.text).toContain('ballast_upstream_server_healthy');
      expect((await admin(b, 'GET', '/status', { host })).status, host).toBe(200);
    }
  });

  it('accepts a name listed in admin.allowed_hosts, in any case and on any port', async () => {
    const { b, o } = await start(', allowed_hosts: [ballast.internal]');
    expect((await admin(b, 'POST', drain(o), { host: 'ballast.internal' })).status).toBe(200);
    expect(await stateOf(b)).toBe('draining');
    expect((await admin(b, 'GET', '/metrics', { host: `Ballast.Internal:${b.adminPort}` })).status).toBe(200);
    const own = `ballast.internal:${b.adminPort}`;
    expect((await admin(b, 'POST', drain(o).replace('drain', 'undrain'), { host: own, origin: `http://${own}` })).status).toBe(200);
    expect((await admin(b, 'GET', '/status', { host: 'other.internal' })).status).toBe(403);
    // Listed is not trusted blindly: a listed name is still checked for a foreign Origin.
    expect((await admin(b, 'POST', drain(o), { host: own, origin: 'http://evil.example' })).status).toBe(403);
    expect(await stateOf(b)).toBe('healthy');
  });

  it('takes a reloaded admin.allowed_hosts at once', async () => {
    const [o] = await fx.origins(1);
    const b = await fx.ballast(poolConfig({ servers: [o!] }));
    expect((await admin(b, 'GET', '/status', { host: 'ballast.internal' })).status).toBe(403);
    const next = parseConfig(poolConfig({ servers: [o!], admin: ', allowed_hosts: [ballast.internal]' }), {});
    if (!next.ok) throw new Error(JSON.stringify(next.errors));
    await b.ballast.reload(next.config);
    expect((await admin(b, 'GET', '/status', { host: 'ballast.internal' })).status).toBe(200);
    expect(b.logs.some((l) => l.msg === 'admin settings changed: they take effect at the next restart')).toBe(false);
  });
});

describe('admin.allowed_hosts config', () => {
  const yaml = (hosts: string) => poolConfig({ servers: [{ address: '127.0.0.1:1' }], admin: `, allowed_hosts: ${hosts}` });

  it('defaults to none and keeps names lower-case', () => {
    const none = parseConfig(poolConfig({ servers: [{ address: '127.0.0.1:1' }] }), {});
    expect(none.ok && none.config.admin.allowed_hosts).toEqual([]);
    const some = parseConfig(yaml('[Ballast.Internal, admin_1.svc.cluster.local]'), {});
    expect(some.ok && some.config.admin.allowed_hosts).toEqual(['ballast.internal', 'admin_1.svc.cluster.local']);
  });

  it.each([
    ['ballast.internal', 'expected a list of host names'],
    ['["ballast.internal:9901"]', 'expected a host name such as ballast.internal'],
    ['["http://ballast.internal"]', 'expected a host name'],
    ['["*.internal"]', 'expected a host name'],
    ['[""]', 'expected a host name'],
    ['[42]', 'expected a host name'],
  ])('refuses allowed_hosts: %s with its path', (hosts, message) => {
    const r = parseConfig(yaml(hosts), {});
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]!.path).toMatch(/^admin\.allowed_hosts/);
    expect(r.errors[0]!.message).toContain(message);
  });
});

describe('hostName', () => {
  it.each([
    ['127.0.0.1:9901', '127.0.0.1'],
    ['[::1]:9901', '[::1]'],
    ['[::1]', '[::1]'],
    ['LocalHost', 'localhost'],
    ['ballast.internal:80', 'ballast.internal'],
    ['::1', undefined],
    ['a b', undefined],
    ['host:65536', undefined],
    ['host:', undefined],
    ['user@host', undefined],
  ])('%s → %s', (host, name) => {
    expect(hostName(host)).toBe(name);
  });
});
