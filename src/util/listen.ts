/** Bind a server and resolve with its address, or reject with the bind error (EADDRINUSE, EACCES). */
import type { AddressInfo, Server } from 'node:net';

export function listen(server: Server, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}
