/**
 * How the workers get their connections: each accepts its own, as NGINX and HAProxy workers do. The primary never
 * accepts a client connection and never passes one on.
 *
 * node:cluster's default on Linux (SCHED_RR) has the primary accept every connection and send its handle to a worker
 * over IPC: a second process woken, a message and a file descriptor passed per connection, which doubled the CPU a
 * new connection costs with two workers (issue #18), and a connection in transit to a worker killed with -9 was
 * neither answered nor closed. Two ways replace it, picked once by the primary at start (`acceptMode`):
 *
 * - `reuseport`: every worker binds a socket of its own on the listener's address with SO_REUSEPORT, and the kernel
 *   hashes each new connection (its addresses and ports) to one of them. Node has the option from 22.12 and 23.1;
 *   whether this Node honours it is tried, not inferred from the version (Node 20 ignores an unknown listen option,
 *   so a second bind of the same port fails there). A worker killed with -9 takes the connections queued on its
 *   socket with it: their clients see a reset, never a hang, and the kernel sends new ones to the others at once.
 * - `shared`: `cluster.schedulingPolicy = SCHED_NONE`. The primary binds each address once and gives every worker the
 *   socket; each worker accepts from it, and whichever is woken first takes a connection (less even than a hash).
 *   The primary holds the socket and never reads from it, so connections queued when a worker dies wait for another.
 *
 * A listener on port 0 always takes the shared socket (util/listen.ts): with SO_REUSEPORT each worker would be given
 * a port of its own. And because SO_REUSEPORT lets any process of the same user share a port, a second Ballast
 * started on the same address would quietly take half the connections instead of failing as a single process does:
 * so before any worker binds a new address, the primary binds it once without the option (`ensureFree`), and a port
 * held by anyone else is refused, at start as at a reload. The admin listener is the primary's and binds plainly.
 */
import cluster from 'node:cluster';
import { createServer, type Server } from 'node:net';
import type { Config, ListenerConfig } from '../config/schema.js';
import { listen } from '../util/listen.js';

export type AcceptMode = 'reuseport' | 'shared';

/** `reuseport` if two sockets bound with SO_REUSEPORT can share a port here, else `shared`. */
export async function acceptMode(): Promise<AcceptMode> {
  const a = createServer();
  const b = createServer();
  try {
    const { port } = await listen(a, '127.0.0.1', 0, { reusePort: true });
    await listen(b, '127.0.0.1', port, { reusePort: true });
    return 'reuseport';
  } catch {
    return 'shared';
  } finally {
    await Promise.all([a, b].map(close));
  }
}

/**
 * In the primary, before the first fork: a worker's plain `listen` gets the socket the primary bound, and accepts
 * from it itself (SCHED_NONE), never a connection the primary accepted (SCHED_RR). Needed in both modes: in
 * `reuseport` the listeners on port 0 still share a socket.
 */
export function workersAcceptThemselves(): void {
  cluster.schedulingPolicy = cluster.SCHED_NONE;
}

/**
 * Bind every address given at once, without SO_REUSEPORT, then let them go: rejects with the first bind error
 * (EADDRINUSE when another process holds one). Port 0 is skipped (any free port will do).
 */
export async function ensureFree(listeners: readonly ListenerConfig[]): Promise<void> {
  const servers: Server[] = [];
  try {
    for (const l of listeners) {
      if (l.listen.port === 0) continue;
      const server = createServer();
      servers.push(server);
      await listen(server, l.listen.host, l.listen.port);
    }
  } finally {
    await Promise.all(servers.map(close));
  }
}

/**
 * The listeners a reload from `previous` to `next` binds on an address no listener of `previous` holds: the ones to
 * check with `ensureFree`. As Ballast.reload decides, a listener that keeps its name, protocol and address keeps its
 * socket, and one that takes the address another gives up binds it once that one is closed.
 */
export function newAddresses(previous: Config, next: Config): ListenerConfig[] {
  const address = (l: ListenerConfig) => `${l.listen.host}:${l.listen.port}`;
  const held = new Set(previous.listeners.map(address));
  return next.listeners.filter((l) => !held.has(address(l)));
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (server.listening) server.close(() => resolve());
    else resolve();
  });
}
