/**
 * The server name a TLS client asks for, read from its ClientHello without terminating TLS: what TLS passthrough
 * with SNI routing needs (NGINX `ssl_preread`, HAProxy `req.ssl_sni`). Bytes are only looked at; the caller replays
 * them unchanged to the server it picks.
 *
 * What is parsed, and where it is specified:
 * - The record layer (RFC 8446 §5.1): `type(1) = 22 handshake, legacy_record_version(2) = 3.x, length(2), fragment`.
 *   A fragment is at most 2^14 bytes and a handshake fragment is never empty; one handshake message may be split
 *   over several records, and a record over several TCP segments, so bytes are fed in as they come (`push`).
 * - The handshake header (RFC 8446 §4): `msg_type(1) = 1 client_hello, length(3)`.
 * - The ClientHello (RFC 8446 §4.1.2, the same layout as TLS 1.0-1.2, RFC 5246 §7.4.1.2): version(2), random(32),
 *   session_id<0..32>, cipher_suites<2..2^16-2>, compression_methods<1..2^8-1>, then extensions<8..2^16-1>, which a
 *   TLS 1.0 client may leave out.
 * - The server_name extension (RFC 6066 §3, type 0): ServerNameList<1..2^16-1> of `name_type(1), HostName<1..2^16-1>`,
 *   at most one name per type; a host name is ASCII, without a trailing dot.
 * - An SSLv2-compatible ClientHello (RFC 5246 Appendix E.2; first byte with its high bit set) is recognised, and has
 *   no extensions, hence no server name.
 *
 * Cost: each byte is copied a bounded number of times whatever the segmentation (bytes wait until the record they
 * complete is whole), and at most `maxBytes` are ever held, so a client sending one byte at a time cannot make the
 * parse quadratic or the buffer grow.
 */

export type ClientHelloResult =
  /** Not decided yet: feed more bytes. */
  | { readonly status: 'incomplete' }
  /** The bytes are not a well-formed TLS ClientHello. */
  | { readonly status: 'not-tls'; readonly reason: string }
  /** A TLS ClientHello larger than `maxBytes`: the name, if any, was not read. */
  | { readonly status: 'too-large'; readonly reason: string }
  /** A well-formed ClientHello without a server name. */
  | { readonly status: 'no-sni'; readonly reason: string }
  /** The server name, in lower case. */
  | { readonly status: 'sni'; readonly name: string };

/**
 * The most bytes read before deciding: NGINX's `preread_buffer_size` and HAProxy's `tune.bufsize` default, both 16k.
 * A ClientHello is a few hundred bytes, about 1.8 KB with a post-quantum key share, a few KB with session tickets.
 */
export const DEFAULT_MAX_CLIENT_HELLO_BYTES = 16 * 1024;

const CONTENT_HANDSHAKE = 22;
const HANDSHAKE_CLIENT_HELLO = 1;
const RECORD_HEADER = 5;
/** msg_length(2), msg_type(1), version major(1): what tells an SSLv2-compatible hello apart. */
const SSLV2_HEADER = 4;
const HANDSHAKE_HEADER = 4;
/** RFC 8446 §5.1: "The length MUST NOT exceed 2^14 bytes." */
const MAX_FRAGMENT = 1 << 14;
const EXT_SERVER_NAME = 0;
const NAME_TYPE_HOST_NAME = 0;
/** A DNS name (RFC 1035 §2.3.4: at most 253 characters written out), with `_` as seen in the wild. */
const HOST_NAME = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

const INCOMPLETE: ClientHelloResult = Object.freeze({ status: 'incomplete' });

/** Reads one connection's first bytes, in the pieces they arrive in, until it can say what they are. */
export class ClientHelloReader {
  readonly #maxBytes: number;
  /** Bytes received but not yet taken as part of a whole record. */
  #pending: Buffer[] = [];
  #pendingLength = 0;
  /** How many pending bytes the next step needs; fewer wait without being copied. */
  #need = 1;
  /** Bytes of the whole records taken so far. */
  #taken = 0;
  /** The handshake bytes those records carried. */
  #handshake: Buffer[] = [];
  #handshakeLength = 0;
  /** The ClientHello's body length, once its handshake header is in. */
  #helloLength: number | undefined;
  #result: ClientHelloResult | undefined;

  constructor(maxBytes: number = DEFAULT_MAX_CLIENT_HELLO_BYTES) {
    this.#maxBytes = maxBytes;
  }

  /** Feed the next bytes; once decided, the same result is returned whatever follows. */
  push(chunk: Uint8Array): ClientHelloResult {
    if (this.#result !== undefined) return this.#result;
    if (chunk.length === 0) return INCOMPLETE;
    this.#pending.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.#pendingLength += chunk.length;
    if (this.#pendingLength < this.#need) return this.#overLimit() ?? INCOMPLETE;
    const result = this.#takeRecords() ?? this.#overLimit();
    if (result === undefined) return INCOMPLETE;
    this.#result = result;
    this.#pending = [];
    this.#handshake = [];
    return result;
  }

  #overLimit(): ClientHelloResult | undefined {
    if (this.#taken + this.#pendingLength <= this.#maxBytes) return undefined;
    this.#result = tooLarge(`no whole ClientHello within ${this.#maxBytes} bytes`);
    return this.#result;
  }

  /** Take every whole record out of the pending bytes; a result once one is known. */
  #takeRecords(): ClientHelloResult | undefined {
    const buf = this.#pending.length === 1 ? this.#pending[0]! : Buffer.concat(this.#pending, this.#pendingLength);
    let offset = 0;
    this.#need = 1;
    while (offset < buf.length) {
      const available = buf.length - offset;
      if (this.#taken === 0 && offset === 0 && (buf[0]! & 0x80) !== 0) {
        const sslv2 = sslv2Hello(buf);
        if (sslv2 !== undefined) return sslv2;
        this.#need = SSLV2_HEADER;
        break;
      }
      // Checked byte by byte, so a client speaking another protocol is told apart from its first bytes.
      if (buf[offset] !== CONTENT_HANDSHAKE) return notTls(this.#taken === 0 && offset === 0 ? 'the first byte is not a TLS handshake record' : `a record of type ${buf[offset]} before the ClientHello was whole`);
      if (available >= 2 && buf[offset + 1] !== 3) return notTls(`record version ${buf[offset + 1]}.x is not TLS`);
      if (available < RECORD_HEADER) {
        this.#need = RECORD_HEADER;
        break;
      }
      const length = buf.readUInt16BE(offset + 3);
      if (length === 0) return notTls('an empty handshake record (RFC 8446 §5.1)');
      if (length > MAX_FRAGMENT) return notTls(`a record of ${length} bytes, over 2^14 (RFC 8446 §5.1)`);
      if (this.#taken + RECORD_HEADER + length > this.#maxBytes) return tooLarge(`a ClientHello record past ${this.#maxBytes} bytes`);
      if (available < RECORD_HEADER + length) {
        this.#need = RECORD_HEADER + length;
        break;
      }
      this.#handshake.push(buf.subarray(offset + RECORD_HEADER, offset + RECORD_HEADER + length));
      this.#handshakeLength += length;
      offset += RECORD_HEADER + length;
      this.#taken += RECORD_HEADER + length;
      const result = this.#examineHandshake();
      if (result !== undefined) return result;
    }
    this.#pending = offset < buf.length ? [buf.subarray(offset)] : [];
    this.#pendingLength = buf.length - offset;
    return undefined;
  }

  /** The handshake bytes so far in one buffer: the record's own when one record holds them (the usual case). */
  #handshakeBytes(): Buffer {
    if (this.#handshake.length > 1) this.#handshake = [Buffer.concat(this.#handshake, this.#handshakeLength)];
    return this.#handshake[0]!;
  }

  #examineHandshake(): ClientHelloResult | undefined {
    if (this.#helloLength === undefined) {
      if (this.#handshakeLength < HANDSHAKE_HEADER) return undefined;
      const head = this.#handshakeBytes();
      if (head[0] !== HANDSHAKE_CLIENT_HELLO) return notTls(`the first handshake message is of type ${head[0]}, not a ClientHello`);
      this.#helloLength = head.readUIntBE(1, 3);
      // At least one record header comes with it.
      if (RECORD_HEADER + HANDSHAKE_HEADER + this.#helloLength > this.#maxBytes) return tooLarge(`a ClientHello of ${this.#helloLength} bytes, over the ${this.#maxBytes}-byte limit`);
    }
    if (this.#handshakeLength < HANDSHAKE_HEADER + this.#helloLength) return undefined;
    const all = this.#handshakeBytes();
    // Bytes after the ClientHello (a client does not send any before the server answers) are not looked at.
    return parseClientHelloBody(all.subarray(HANDSHAKE_HEADER, HANDSHAKE_HEADER + this.#helloLength));
  }
}

/** The whole decision over bytes already in hand: a convenience for tests and one-shot callers. */
export function parseClientHello(data: Uint8Array, maxBytes?: number): ClientHelloResult {
  return new ClientHelloReader(maxBytes).push(data);
}

function notTls(reason: string): ClientHelloResult {
  return { status: 'not-tls', reason };
}

function tooLarge(reason: string): ClientHelloResult {
  return { status: 'too-large', reason };
}

/**
 * RFC 5246 Appendix E.2: `msg_length(2, high bit set), msg_type(1) = 1, version(2)`. Old clients sent it to reach
 * SSL 2.0 servers; it has no room for extensions.
 */
function sslv2Hello(buf: Buffer): ClientHelloResult | undefined {
  if (buf.length >= 3 && buf[2] !== HANDSHAKE_CLIENT_HELLO) return notTls('an SSLv2 record that is not a CLIENT-HELLO');
  if (buf.length >= 4 && buf[3] !== 2 && buf[3] !== 3) return notTls('an SSLv2 record of an unknown version');
  if (buf.length < SSLV2_HEADER) return undefined;
  return { status: 'no-sni', reason: 'an SSLv2-compatible ClientHello, which has no extensions (RFC 5246 Appendix E.2)' };
}

/** A bounds-checked reader over the ClientHello body: every length read is checked against what is left. */
class Cursor {
  #offset = 0;
  constructor(readonly buf: Buffer) {}

  get left(): number {
    return this.buf.length - this.#offset;
  }

  /** The next `n` bytes, or undefined when fewer are left. */
  take(n: number): Buffer | undefined {
    if (n > this.left) return undefined;
    const out = this.buf.subarray(this.#offset, this.#offset + n);
    this.#offset += n;
    return out;
  }

  /** A two-byte number, or undefined when fewer bytes are left. */
  uint16(): number | undefined {
    if (this.left < 2) return undefined;
    const n = this.buf.readUInt16BE(this.#offset);
    this.#offset += 2;
    return n;
  }

  /** Step over `n` bytes; false when fewer are left. Unlike `take`, makes no Buffer (most extensions are skipped). */
  skip(n: number): boolean {
    if (n > this.left) return false;
    this.#offset += n;
    return true;
  }

  /** A vector with a `size`-byte length prefix, or undefined when it runs past the end. */
  vector(size: 1 | 2): Buffer | undefined {
    if (this.left < size) return undefined;
    const length = this.buf.readUIntBE(this.#offset, size);
    this.#offset += size;
    return this.take(length);
  }
}

function parseClientHelloBody(body: Buffer): ClientHelloResult {
  const c = new Cursor(body);
  const version = c.take(2);
  if (version === undefined || version[0] !== 3) return notTls('a ClientHello whose version is not TLS');
  if (!c.skip(32)) return notTls('a ClientHello cut short in its random');
  const sessionId = c.vector(1);
  if (sessionId === undefined || sessionId.length > 32) return notTls('a ClientHello with a bad session id');
  const suites = c.vector(2);
  if (suites === undefined || suites.length < 2 || suites.length % 2 !== 0) return notTls('a ClientHello with bad cipher suites');
  const compression = c.vector(1);
  if (compression === undefined || compression.length < 1) return notTls('a ClientHello with bad compression methods');
  if (c.left === 0) return { status: 'no-sni', reason: 'a ClientHello without extensions' };
  const extensions = c.vector(2);
  if (extensions === undefined || c.left !== 0) return notTls('a ClientHello whose extensions do not fill it exactly');
  const e = new Cursor(extensions);
  let name: string | undefined;
  while (e.left > 0) {
    const type = e.uint16();
    const length = e.uint16();
    if (type === undefined || length === undefined) return notTls('an extension cut short');
    if (type !== EXT_SERVER_NAME) {
      if (!e.skip(length)) return notTls('an extension cut short');
      continue;
    }
    const data = e.take(length);
    if (data === undefined) return notTls('an extension cut short');
    // RFC 8446 §4.2: "There MUST NOT be more than one extension of the same type in a given extension block."
    if (name !== undefined) return notTls('two server_name extensions');
    const parsed = parseServerName(data);
    if (typeof parsed !== 'string') return parsed;
    name = parsed;
  }
  return name === undefined ? { status: 'no-sni', reason: 'a ClientHello without a server_name extension' } : { status: 'sni', name };
}

/** RFC 6066 §3: the host_name entry of a ServerNameList, in lower case; a malformed list is not TLS. */
function parseServerName(data: Buffer): string | ClientHelloResult {
  const d = new Cursor(data);
  const list = d.vector(2);
  if (list === undefined || list.length === 0 || d.left !== 0) return notTls('a malformed server_name extension');
  const l = new Cursor(list);
  let host: string | undefined;
  while (l.left > 0) {
    const type = l.take(1);
    const name = l.vector(2);
    if (type === undefined || name === undefined || name.length === 0) return notTls('a malformed server name entry');
    if (type[0] !== NAME_TYPE_HOST_NAME) continue;
    // "The ServerNameList MUST NOT contain more than one name of the same name_type."
    if (host !== undefined) return notTls('two host names in server_name');
    host = name.toString('latin1').toLowerCase();
    if (!HOST_NAME.test(host)) return notTls('a server name that is not a host name');
  }
  return host ?? { status: 'no-sni', reason: 'a server_name extension without a host name' };
}
