/** The runtime server API: drain, undrain, disable, enable (admin POST, token-protected when a token is set). */
import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { get } from '../helpers/ballast.js';
import { waitFor } from '../helpers/wait.js';
import { Fixture, poolConfig } from './config.js';
import { send } from './traffic.js';

const fx = new Fixture();
afterEach(() => fx.close());

const TOKEN = 'a-test-token-of-enough-length';

async function post(adminPort: number, path: string, token?: string): Promise<{ status: number; body: unknown }> {
  const res = await request(`http://127.0.0.1:${adminPort}${path}`, {
    method: 'POST',
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
  });
  const text = await res.body.text();
  return { status: res.statusCode, body: JSON.parse(text) as unknown };
}

interface Status {
  upstreams: { name: string; servers: { address: string; state: string; active_requests: number; health: Record<string, unknown> }[] }[];
}

async function status(adminPort: number): Promise<Status> {
  return JSON.parse((await get(`http://127.0.0.1:${adminPort}/status`)).body) as Status;
}

describe('admin server actions', () => {
  it('drains a server: its request in flight finishes, it takes no new ones; undrain brings it back', async () => {
    const [o1, o2] = await fx.origins(2);
    let release: (() => void) | undefined;
    o1!.handler = (_req, res) => {
      release = () => res.writeHead(200, { 'x-origin': 'o1' }).end('slow but complete');
    };
    const b = await fx.ballast(poolConfig({ servers: [o1!, o2!], admin: `, token: ${TOKEN}` }));
    // Round robin: the first request goes to o1 and waits there.
    const slow = send(b);
    await waitFor(() => release !== undefined, { what: 'request in flight at o1' });
    const server = encodeURIComponent(o1!.address);

    expect((await post(b.adminPort, `/servers/drain?upstream=pool&server=${server}`)).status).toBe(401);
    expect((await post(b.adminPort, `/servers/drain?upstream=pool&server=${server}`, 'wrong-token-of-enough-length')).status).toBe(401);
    const drained = await post(b.adminPort, `/servers/drain?upstream=pool&server=${server}`, TOKEN);
    expect(drained).toEqual({ status: 200, body: { action: 'drain', servers: [{ upstream: 'pool', address: o1!.address, state: 'draining', active_requests: 1 }] } });

    for (let i = 0; i < 6; i++) expect((await send(b)).origin).toBe('o2');
    let s = await status(b.adminPort);
    expect(s.upstreams[0]!.servers[0]).toMatchObject({ state: 'draining', active_requests: 1, health: { draining: true, disabled: false } });
    release!();
    const done = await slow;
    expect(done).toMatchObject({ status: 200, origin: 'o1' });
    await waitFor(async () => (await status(b.adminPort)).upstreams[0]!.servers[0]!.active_requests === 0, { what: 'drained' });

    expect((await post(b.adminPort, `/servers/undrain?upstream=pool&server=${server}`, TOKEN)).status).toBe(200);
    o1!.handler = undefined;
    const seen = new Set<string | undefined>();
    for (let i = 0; i < 4; i++) seen.add((await send(b)).origin);
    expect(seen).toEqual(new Set(['o1', 'o2']));
    s = await status(b.adminPort);
    expect(s.upstreams[0]!.servers.map((x) => x.state)).toEqual(['healthy', 'healthy']);
    expect(b.logs.filter((l) => l.msg === 'admin: server drain')).toHaveLength(1);
  });

  it('disables and enables a server without touching its health flags; every server disabled answers 503', async () => {
    const [o1, o2] = await fx.origins(2);
    const b = await fx.ballast(poolConfig({ servers: [o1!, o2!], upstream: '    health_check: { type: http, interval: 100ms }' }));
    // No token configured and a loopback admin listener: allowed.
    for (const o of [o1!, o2!]) expect((await post(b.adminPort, `/servers/disable?server=${o.address}`)).status).toBe(200);
    const res = await send(b);
    expect(res.status).toBe(503);
    expect(res.retryAfter).toBe('1');
    // A health flip while disabled does not undo the admin's choice, and enabling does not hide a failed check.
    o1!.healthy = false;
    const u = b.ballast.upstreams.get('pool')!;
    await waitFor(() => u.hosts[0]!.activeCheckFailed, { what: 'o1 fails checks' });
    expect((await status(b.adminPort)).upstreams[0]!.servers.map((x) => x.state)).toEqual(['disabled', 'disabled']);
    for (const o of [o1!, o2!]) expect((await post(b.adminPort, `/servers/enable?server=${o.address}`)).status).toBe(200);
    expect((await status(b.adminPort)).upstreams[0]!.servers.map((x) => x.state)).toEqual(['unhealthy', 'healthy']);
    for (let i = 0; i < 4; i++) expect((await send(b)).origin).toBe('o2');
  });

  it('refuses bad requests clearly', async () => {
    const [o1] = await fx.origins(1);
    const b = await fx.ballast(poolConfig({ servers: [o1!] }));
    expect(await post(b.adminPort, '/servers/drain')).toMatchObject({ status: 400 });
    expect(await post(b.adminPort, '/servers/drain?server=127.0.0.1:1')).toMatchObject({ status: 404 });
    expect(await post(b.adminPort, `/servers/drain?upstream=nope&server=${o1!.address}`)).toMatchObject({ status: 404 });
    expect((await get(`http://127.0.0.1:${b.adminPort}/servers/drain?server=${o1!.address}`)).status).toBe(405);
  });
});
