import { unmapIpv4 } from './ip-address.js';

/** The client's IP as a plain address: IPv4-mapped IPv6 (`::ffff:10.0.0.1`) shown as IPv4; '' when the socket is gone. */
export function clientAddress(remote: string | undefined): string {
  return remote === undefined ? '' : unmapIpv4(remote);
}
