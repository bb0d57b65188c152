import { createServer } from 'node:net';

/*
 * Ports a test binds later, or binds again: configs a child process must bind itself, origins and DNS servers a test
 * kills and restarts on the same port. Picked below Linux's ephemeral range (32768–60999 by default), so no outgoing
 * connection's source port and no `listen(0)` of a test running in parallel can take one in between; each vitest
 * worker draws from its own block, so two workers never pick the same port either. A port still held is skipped.
 */
const PORTS_PER_WORKER = 1500;
const FIRST_PORT = 20_000;
// A random start: the files a worker runs one after another rarely reuse a port (one may linger in a child's exit).
let nextPortOffset = Math.floor(Math.random() * PORTS_PER_WORKER);

/** A port that was free a moment ago and that no other test of this run will be handed. */
export async function freePort(): Promise<number> {
  const worker = Math.max(0, Number(process.env.VITEST_POOL_ID ?? 1) - 1) % 8;
  for (let tries = 0; tries < PORTS_PER_WORKER; tries++) {
    const port = FIRST_PORT + worker * PORTS_PER_WORKER + (nextPortOffset++ % PORTS_PER_WORKER);
    const server = createServer();
    const bound = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (!bound) continue;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return port;
  }
  throw new Error('no free port in this worker\'s block');
}
