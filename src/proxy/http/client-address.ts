/** The client's IP as a plain address: IPv4-mapped IPv6 (`::ffff:10.0.0.1`, RFC 4291 §2.5.5.2) shown as IPv4. */
export function clientAddress(remote: string | undefined): string {
  if (remote === undefined) return '';
  return remote.startsWith('::ffff:') && remote.includes('.') ? remote.slice(7) : remote;
}
