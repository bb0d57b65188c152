/**
 * IP addresses between their text form (what sockets report) and their bytes in network order (what the PROXY
 * protocol v2 carries). Node has no public API for either direction, and the codec needs both.
 *
 * Text out is canonical: IPv4 dotted decimal without leading zeros, IPv6 per RFC 5952 §4 (lower case, no leading
 * zeros in a group, the longest run of two or more zero groups, the first on a tie, as "::"), and an IPv4-mapped
 * IPv6 address as "::ffff:a.b.c.d" (RFC 5952 §5), as inet_ntop and so Node's `remoteAddress` show it.
 */
import { isIPv4, isIPv6 } from 'node:net';

export type IpFamily = 'IPv4' | 'IPv6';

/** `::ffff:10.0.0.1` (RFC 4291 §2.5.5.2), as a dual-stack listener reports an IPv4 peer, shown as `10.0.0.1`. */
export function unmapIpv4(address: string): string {
  return address.startsWith('::ffff:') && isIPv4(address.slice(7)) ? address.slice(7) : address;
}

/** The family of a literal address, or undefined when it is not one (a zone id `%eth0` is not accepted). */
export function familyOf(address: string): IpFamily | undefined {
  if (isIPv4(address)) return 'IPv4';
  if (isIPv6(address) && !address.includes('%')) return 'IPv6';
  return undefined;
}

export function ipv4ToBytes(address: string): Buffer {
  if (!isIPv4(address)) throw new TypeError(`not an IPv4 address: ${address}`);
  return Buffer.from(address.split('.').map(Number));
}

export function ipv6ToBytes(address: string): Buffer {
  if (familyOf(address) !== 'IPv6') throw new TypeError(`not an IPv6 address: ${address}`);
  const groups = (part: string): number[] => {
    if (part === '') return [];
    const out: number[] = [];
    for (const g of part.split(':')) {
      if (g.includes('.')) {
        // An embedded IPv4 tail (RFC 4291 §2.2, form 3) counts as two 16-bit groups.
        const b = ipv4ToBytes(g);
        out.push((b[0]! << 8) | b[1]!, (b[2]! << 8) | b[3]!);
      } else {
        out.push(parseInt(g, 16));
      }
    }
    return out;
  };
  const gap = address.indexOf('::');
  const head = groups(gap < 0 ? address : address.slice(0, gap));
  const tail = gap < 0 ? [] : groups(address.slice(gap + 2));
  const all = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  const bytes = Buffer.alloc(16);
  all.forEach((g, i) => bytes.writeUInt16BE(g, i * 2));
  return bytes;
}

export function bytesToIpv4(bytes: Uint8Array): string {
  if (bytes.length !== 4) throw new RangeError('an IPv4 address is 4 bytes');
  return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
}

export function bytesToIpv6(bytes: Uint8Array): string {
  if (bytes.length !== 16) throw new RangeError('an IPv6 address is 16 bytes');
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${bytesToIpv4(bytes.subarray(12))}`;
  }
  // RFC 5952 §4.2.3: compress the longest run of zero groups (two or more), the first one when runs tie.
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}
