/** Shutdown: stop accepting, let open connections finish up to the deadline, then close what is left. */
import { connect } from 'node:net';
import { once } from 'node:events';
import { afterEach, expect, it } from 'vitest';
import { connectClient, endedWithin, readAll, readBytes, startBlackhole, startTcpOrigin, startTcpProxy } from './helpers.js';
import { sleep, waitFor } from '../helpers/wait.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function setup(upstream?: string) {
  const o = await startTcpOrigin('o1', 'echo');
  cleanup.push(() => o.close());
  const p = await startTcpProxy([o.address], upstream === undefined ? {} : { upstream });
  cleanup.push(() => p.stop());
  return { o, p };
}

async function refused(port: number): Promise<string | undefined> {
  const s = connect({ port, host: '127.0.0.1' });
  const [err] = (await Promise.race([once(s, 'error'), once(s, 'connect').then(() => [undefined])])) as [(Error & { code?: string }) | undefined];
  s.destroy();
  return err?.code;
}

it('stops accepting at once, lets an open connection finish, and resolves when it does', async () => {
  const { p } = await setup();
  const client = await connectClient(p.port);
  client.write('one');
  expect((await readBytes(client, 3)).toString()).toBe('one');
  const started = performance.now();
  const closing = p.listener.close(5000);
  expect(await refused(p.port)).toBe('ECONNREFUSED');
  // The open connection still works during the drain.
  client.write('two');
  expect((await readBytes(client, 3)).toString()).toBe('two');
  await sleep(50);
  const all = readAll(client);
  client.end();
  await all;
  await closing;
  expect(performance.now() - started).toBeLessThan(2000);
  const [line] = await p.waitForAccessLogs(1);
  expect(line).toMatchObject({ end: 'done', bytesIn: 6, bytesOut: 6 });
});

it('closes connections still open at the deadline', async () => {
  const { p } = await setup();
  const client = await connectClient(p.port);
  client.write('x');
  await readBytes(client, 1);
  const started = performance.now();
  await p.listener.close(300);
  const took = performance.now() - started;
  expect(took).toBeGreaterThanOrEqual(290);
  expect(took).toBeLessThan(1500);
  await endedWithin(client, 1000);
  // Written before close() resolved, so the last flush of a stopping Ballast includes it.
  p.accessLog.flush();
  expect(p.logs.filter((l) => l.kind === 'access')).toMatchObject([{ end: 'shutdown' }]);
  expect(p.upstream.hosts[0]!.inflight).toBe(0);
  const text = await p.metrics.registry.metrics();
  expect(text).toContain('ballast_tcp_active_connections{listener="db"} 0');
});

it('resolves at once with nothing open', async () => {
  const { p } = await setup();
  const started = performance.now();
  await p.listener.close(5000);
  expect(performance.now() - started).toBeLessThan(200);
});

it('a connection still waiting for its server is closed at the deadline and holds nothing', async () => {
  const hole = await startBlackhole();
  cleanup.push(() => hole.close());
  const p = await startTcpProxy([hole.address], { upstream: 'timeouts: { connect: 10s }' });
  cleanup.push(() => p.stop());
  const client = await connectClient(p.port);
  await waitFor(() => p.upstream.hosts[0]!.inflight === 1, { what: 'a lease on the silent server' });
  await p.listener.close(100);
  await endedWithin(client, 1000);
  const [line] = await p.waitForAccessLogs(1);
  expect(line).toMatchObject({ end: 'shutdown' });
  expect(p.upstream.hosts[0]!.inflight).toBe(0);
  expect(p.outcomes).toEqual([]);
});
