/**
 * The PROXY protocol, versions 1 (text) and 2 (binary), as HAProxy specifies it in doc/proxy-protocol.txt
 * (github.com/haproxy/haproxy; "§" below refers to its sections): a header a proxy puts before the first byte of a
 * relayed TCP connection, so the server behind it still learns the client's address and port.
 *
 * - Sending (`send_proxy_protocol: v1 | v2`): `encodeProxyHeader`, written to the upstream before any client byte.
 * - Accepting (`accept_proxy_protocol: true`): `readProxyHeader` takes the header off the client socket before
 *   anything else reads it. Both versions are accepted, told apart by their signatures (spec §2.2, end). The spec
 *   forbids guessing whether a header is present (§2), so on such a listener a connection without one is dropped,
 *   as is any header that does not match the spec exactly, an oversized one, or one that has not arrived whole
 *   within the timeout (spec §2: "at least 3 seconds to cover a TCP retransmit").
 *
 * Not implemented, and ignored when received: v2 TLVs (§2.2.1+: ALPN, authority, CRC32c, SSL, ...) are skipped
 * whole, so a CRC32c is not verified; AF_UNIX, UDP and UNSPEC address blocks fall back to the connection's own
 * endpoints, which §2.2 allows ("falls back to the UNSPEC mode").
 */
import type { Socket } from 'node:net';
import { preread } from './preread.js';
import { bytesToIpv4, bytesToIpv6, familyOf, ipv4ToBytes, ipv6ToBytes, unmapIpv4, type IpFamily } from '../../util/ip-address.js';

export type ProxyVersion = 'v1' | 'v2';

/** The original connection's endpoints, both of one family. */
export interface ProxyAddresses {
  readonly family: IpFamily;
  readonly sourceAddress: string;
  readonly sourcePort: number;
  readonly destinationAddress: string;
  readonly destinationPort: number;
}

export interface ProxyHeader {
  readonly version: 1 | 2;
  /**
   * The endpoints the sender relayed; undefined when it gave none (v1 `UNKNOWN`, v2 `LOCAL`, or a v2 family or
   * transport Ballast does not use): the connection's own endpoints apply then (spec §2.1 and §2.2).
   */
  readonly addresses: ProxyAddresses | undefined;
}

export type ProxyParseResult =
  | { readonly status: 'incomplete' }
  | { readonly status: 'invalid'; readonly reason: string }
  | { readonly status: 'complete'; readonly header: ProxyHeader; /** Bytes the header took; the payload follows. */ readonly length: number };

/** Spec §2.2: `\r\n\r\n\0\r\nQUIT\n`, then a byte whose high nibble is the version (2). */
export const V2_SIGNATURE: Buffer = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
/** Spec §2.1: the worst case, "PROXY UNKNOWN ffff:...:ffff ffff:...:ffff 65535 65535\r\n", is 107 bytes. */
export const V1_MAX_LENGTH = 107;
const V2_FIXED_LENGTH = 16;
/**
 * The largest v2 header accepted (16 fixed bytes + the address block + TLVs). The length field allows 64 KiB; the
 * largest address block is 216 bytes (AF_UNIX), and the TLVs cloud load balancers add (AWS NLB's VPC endpoint id,
 * GCP's PSC connection id, SSL details) are well under a kilobyte, so 4 KiB bounds memory per pending connection
 * without refusing a real sender.
 */
export const DEFAULT_MAX_HEADER_BYTES = 4096;
/** Spec §2 asks for at least 3 s; 5 s also covers a second SYN/ACK retransmission on a lossy path. */
export const DEFAULT_HEADER_TIMEOUT_MS = 5000;

const CMD_LOCAL = 0x0;
const CMD_PROXY = 0x1;
const AF_UNSPEC = 0x0;
const AF_INET = 0x1;
const AF_INET6 = 0x2;
const AF_UNIX = 0x3;
const PROTO_STREAM = 0x1;
const PROTO_DGRAM = 0x2;

/**
 * The endpoints to announce for a connection, or undefined when they are not both IP addresses. Spec §2.1: both
 * must be of one family, so when one side is IPv4 and the other IPv6 (a dual-stack listener) the IPv4 one is sent
 * IPv4-mapped; addresses a dual-stack socket reports as IPv4-mapped are sent as plain IPv4 when both are.
 */
export function proxyAddresses(sourceAddress: string, sourcePort: number, destinationAddress: string, destinationPort: number): ProxyAddresses | undefined {
  let src = unmapIpv4(sourceAddress);
  let dst = unmapIpv4(destinationAddress);
  const srcFamily = familyOf(src);
  const dstFamily = familyOf(dst);
  if (srcFamily === undefined || dstFamily === undefined) return undefined;
  if (srcFamily !== dstFamily) {
    if (srcFamily === 'IPv4') src = `::ffff:${src}`;
    else dst = `::ffff:${dst}`;
  }
  const family = srcFamily === dstFamily ? srcFamily : 'IPv6';
  return { family, sourceAddress: src, sourcePort, destinationAddress: dst, destinationPort };
}

export function encodeProxyHeader(version: ProxyVersion, addresses: ProxyAddresses | undefined): Buffer {
  return version === 'v1' ? encodeV1(addresses) : encodeV2(addresses);
}

/** Spec §2.1: `PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n`; `PROXY UNKNOWN\r\n` when the endpoints are unknown. */
export function encodeV1(addresses: ProxyAddresses | undefined): Buffer {
  if (addresses === undefined) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
  const proto = addresses.family === 'IPv4' ? 'TCP4' : 'TCP6';
  const a = addresses;
  return Buffer.from(`PROXY ${proto} ${a.sourceAddress} ${a.destinationAddress} ${a.sourcePort} ${a.destinationPort}\r\n`, 'latin1');
}

/**
 * Spec §2.2: signature, `\x21` (version 2, PROXY), `\x11` (TCP over IPv4) or `\x21` (TCP over IPv6), the address
 * block length, then source address, destination address, source port, destination port in network order.
 * Unknown endpoints are sent as PROXY with AF_UNSPEC and an empty block, as the spec advises for a sender that
 * cannot fill them; no TLVs are sent.
 */
export function encodeV2(addresses: ProxyAddresses | undefined): Buffer {
  if (addresses === undefined) {
    const out = Buffer.alloc(V2_FIXED_LENGTH);
    V2_SIGNATURE.copy(out, 0);
    out[12] = 0x20 | CMD_PROXY;
    out[13] = (AF_UNSPEC << 4) | 0x0;
    out.writeUInt16BE(0, 14);
    return out;
  }
  const v4 = addresses.family === 'IPv4';
  const addrLength = v4 ? 4 : 16;
  const blockLength = addrLength * 2 + 4;
  const out = Buffer.alloc(V2_FIXED_LENGTH + blockLength);
  V2_SIGNATURE.copy(out, 0);
  out[12] = 0x20 | CMD_PROXY;
  out[13] = ((v4 ? AF_INET : AF_INET6) << 4) | PROTO_STREAM;
  out.writeUInt16BE(blockLength, 14);
  const toBytes = v4 ? ipv4ToBytes : ipv6ToBytes;
  toBytes(addresses.sourceAddress).copy(out, 16);
  toBytes(addresses.destinationAddress).copy(out, 16 + addrLength);
  out.writeUInt16BE(addresses.sourcePort, 16 + addrLength * 2);
  out.writeUInt16BE(addresses.destinationPort, 18 + addrLength * 2);
  return out;
}

/**
 * Parse a header at the start of `data`: `incomplete` asks for more bytes, `invalid` means drop the connection,
 * `complete` gives the header and its length. Which version is decided by the first bytes (spec §2.2, end); bytes
 * that can no longer become either signature are invalid at once, so a client that speaks first is refused quickly.
 */
export function parseProxyHeader(data: Uint8Array, maxBytes: number = DEFAULT_MAX_HEADER_BYTES): ProxyParseResult {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (startsLike(buf, V2_SIGNATURE)) {
    return buf.length < V2_SIGNATURE.length ? INCOMPLETE : parseV2(buf, maxBytes);
  }
  if (startsLike(buf, V1_PREFIX)) {
    return buf.length < V1_PREFIX.length ? INCOMPLETE : parseV1(buf);
  }
  return invalid('not a PROXY protocol header');
}

const INCOMPLETE: ProxyParseResult = Object.freeze({ status: 'incomplete' });

function invalid(reason: string): ProxyParseResult {
  return { status: 'invalid', reason };
}

/** Whether `buf` matches `prefix` for as many bytes as both have. */
function startsLike(buf: Buffer, prefix: Buffer): boolean {
  const n = Math.min(buf.length, prefix.length);
  return buf.subarray(0, n).equals(prefix.subarray(0, n));
}

function parseV1(buf: Buffer): ProxyParseResult {
  // Spec §2.1: wait for CRLF within the first 107 bytes; a lone CR or LF does not end the line.
  const window = Math.min(buf.length, V1_MAX_LENGTH);
  let end = -1;
  for (let i = V1_PREFIX.length; i < window; i++) {
    const c = buf[i]!;
    if (c === 0x0a) return invalid('v1: LF without CR');
    if (c === 0x0d) {
      if (i + 1 >= buf.length) return INCOMPLETE;
      if (buf[i + 1] !== 0x0a) return invalid('v1: CR without LF');
      end = i;
      break;
    }
    if (c < 0x20 || c > 0x7e) return invalid('v1: not printable US-ASCII');
  }
  if (end < 0) return buf.length >= V1_MAX_LENGTH ? invalid('v1: no CRLF in the first 107 bytes') : INCOMPLETE;
  const length = end + 2;
  const fields = buf.toString('latin1', 0, end).split(' ');
  const proto = fields[1];
  if (proto === 'UNKNOWN') {
    // Spec §2.1: "the receiver must ignore anything presented before the CRLF is found".
    return { status: 'complete', header: { version: 1, addresses: undefined }, length };
  }
  if (proto !== 'TCP4' && proto !== 'TCP6') return invalid(`v1: unknown protocol ${JSON.stringify(proto ?? '')}`);
  if (fields.length !== 6) return invalid('v1: expected "PROXY TCPx src dst sport dport"');
  const [, , src, dst, sport, dport] = fields as [string, string, string, string, string, string];
  const family: IpFamily = proto === 'TCP4' ? 'IPv4' : 'IPv6';
  // Node's isIPv4 refuses leading zeros, which the spec forbids (octal confusion).
  if (familyOf(src) !== family || familyOf(dst) !== family) return invalid(`v1: addresses are not ${family}`);
  const sourcePort = parsePort(sport);
  const destinationPort = parsePort(dport);
  if (sourcePort === undefined || destinationPort === undefined) return invalid('v1: ports must be 0-65535 without leading zeros');
  return {
    status: 'complete',
    header: { version: 1, addresses: { family, sourceAddress: canonical(src, family), sourcePort, destinationAddress: canonical(dst, family), destinationPort } },
    length,
  };
}

function parsePort(text: string): number | undefined {
  if (!/^(?:0|[1-9][0-9]{0,4})$/.test(text)) return undefined;
  const n = Number(text);
  return n <= 65535 ? n : undefined;
}

/** One spelling per address, so an IPv6 source hashes and logs the same whichever form the sender chose. */
function canonical(address: string, family: IpFamily): string {
  return family === 'IPv4' ? address : bytesToIpv6(ipv6ToBytes(address));
}

function parseV2(buf: Buffer, maxBytes: number): ProxyParseResult {
  if (buf.length < V2_FIXED_LENGTH) {
    if (buf.length > 12 && buf[12]! >> 4 !== 2) return invalid('v2: version is not 2');
    return INCOMPLETE;
  }
  const verCmd = buf[12]!;
  const famProto = buf[13]!;
  const blockLength = buf.readUInt16BE(14);
  if (verCmd >> 4 !== 2) return invalid('v2: version is not 2');
  const command = verCmd & 0x0f;
  if (command !== CMD_LOCAL && command !== CMD_PROXY) return invalid(`v2: unassigned command ${command}`);
  const family = famProto >> 4;
  const transport = famProto & 0x0f;
  if (family > AF_UNIX) return invalid(`v2: unassigned address family ${family}`);
  if (transport > PROTO_DGRAM) return invalid(`v2: unassigned transport ${transport}`);
  const length = V2_FIXED_LENGTH + blockLength;
  if (length > maxBytes) return invalid(`v2: header of ${length} bytes is over the ${maxBytes}-byte limit`);
  if (buf.length < length) return INCOMPLETE;
  // LOCAL: "the receiver must use the real connection endpoints and discard the protocol block".
  if (command === CMD_LOCAL || transport !== PROTO_STREAM || (family !== AF_INET && family !== AF_INET6)) {
    return { status: 'complete', header: { version: 2, addresses: undefined }, length };
  }
  const addrLength = family === AF_INET ? 4 : 16;
  if (blockLength < addrLength * 2 + 4) return invalid(`v2: address block of ${blockLength} bytes is too short`);
  const toText = family === AF_INET ? bytesToIpv4 : bytesToIpv6;
  const block = buf.subarray(V2_FIXED_LENGTH, length);
  return {
    status: 'complete',
    header: {
      version: 2,
      addresses: {
        family: family === AF_INET ? 'IPv4' : 'IPv6',
        sourceAddress: toText(block.subarray(0, addrLength)),
        destinationAddress: toText(block.subarray(addrLength, addrLength * 2)),
        sourcePort: block.readUInt16BE(addrLength * 2),
        destinationPort: block.readUInt16BE(addrLength * 2 + 2),
      },
    },
    length,
  };
}

export type ProxyHeaderFailure = 'invalid' | 'timeout' | 'closed';

export class ProxyProtocolError extends Error {
  constructor(
    readonly failure: ProxyHeaderFailure,
    message: string,
  ) {
    super(message);
    this.name = 'ProxyProtocolError';
  }
}

/**
 * Take a PROXY header off the front of a socket that nothing else reads yet. Bytes after the header are pushed back
 * (`unshift`) and the socket is left paused, so whoever pipes it next sees the payload from its first byte.
 * Rejects with a ProxyProtocolError; the caller closes the connection.
 */
export async function readProxyHeader(socket: Socket, options: { timeoutMs: number; maxBytes?: number }): Promise<ProxyHeader> {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_HEADER_BYTES;
  let buffered: Buffer = Buffer.alloc(0);
  const read = await preread(socket, (chunk): Exclude<ProxyParseResult, { status: 'incomplete' }> | undefined => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    const result = parseProxyHeader(buffered, maxBytes);
    return result.status === 'incomplete' ? undefined : result;
  }, options.timeoutMs);
  if (read.end === 'timeout') throw new ProxyProtocolError('timeout', `no complete PROXY protocol header within ${options.timeoutMs} ms`);
  if (read.end === 'closed') throw new ProxyProtocolError('closed', 'connection closed before a complete PROXY protocol header');
  const result = read.verdict;
  if (result.status === 'invalid') throw new ProxyProtocolError('invalid', result.reason);
  // The bytes after the header are the payload: put back for whoever reads the socket next.
  if (result.length < read.bytes.length) socket.unshift(read.bytes.subarray(result.length));
  return result.header;
}
