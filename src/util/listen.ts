/**
 * Bind a server and resolve with its address, or reject with the bind error (EADDRINUSE, EACCES).
 *
 * Proxy listeners bind through `listenProxy`, which follows how this process was told to bind them. By default (a
 * single process, the admin listener, a cluster worker on a Node without SO_REUSEPORT) a server binds the usual
 * way; in a cluster worker that is the socket node:cluster's primary opened once and shares, which every worker
 * accepts from. A cluster worker on a Node with SO_REUSEPORT (22.12 and later) is switched to `reusePort`, and then
 * binds a socket of its own beside every other worker's on the same address: the kernel spreads new connections over
 * them, and each worker accepts its own (src/cluster/accept.ts says when and why).
 */
import type { AddressInfo, ListenOptions, Server } from 'node:net';

export interface BindOptions {
  /**
   * SO_REUSEPORT, with `exclusive` so that a cluster worker binds the socket itself instead of asking the primary for
   * a shared one. Node before 22.12 ignores the option (and a second bind then fails with EADDRINUSE).
   */
  readonly reusePort?: boolean;
}

export function listen(server: Server, host: string, port: number, options: BindOptions = {}): Promise<AddressInfo> {
  // `reusePort` is not in @types/node 20, which this package builds against.
  const listenOptions: ListenOptions & { reusePort?: boolean } = options.reusePort === true ? { host, port, reusePort: true, exclusive: true } : { host, port };
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(listenOptions, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

/** How this process binds its proxy listeners; a cluster worker sets it once, before it binds any. */
let proxyReusePort = false;

export function bindProxyListenersWithReusePort(on: boolean): void {
  proxyReusePort = on;
}

/**
 * Bind a proxy listener (http or tcp). A port of 0 is never bound with SO_REUSEPORT: each worker would get a port of
 * its own, so it takes the shared socket instead, one port for every worker as node:cluster has always given.
 */
export function listenProxy(server: Server, host: string, port: number): Promise<AddressInfo> {
  return listen(server, host, port, { reusePort: proxyReusePort && port !== 0 });
}
