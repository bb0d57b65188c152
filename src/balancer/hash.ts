/**
 * MurmurHash3, x86 32-bit variant (Austin Appleby, SMHasher `MurmurHash3.cpp`, `MurmurHash3_x86_32`), over the UTF-8
 * bytes of a string.
 *
 * Cost: O(length of the input), no allocation: the string is encoded to UTF-8 on the fly, one code unit at a time,
 * instead of through a TextEncoder buffer.
 *
 * Why this hash: the hashing strategies need the same address and the same key to land on the same server in every
 * Ballast replica and across restarts, so the hash must be a fixed, published function with no per-process seed
 * (unlike V8's string hash). Murmur3 mixes short, similar inputs ("10.0.0.1:8080-17") well, which FNV-1a does not
 * without a finaliser, and its output is checked against the published test vectors in test/balancer/hash.test.ts.
 */

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

// Streaming state for `murmur3`. Module-level rather than a closure so hashing a key allocates nothing; JavaScript
// runs one call to completion at a time, so the state is never shared between two calls in progress.
let h = 0;
let pending = 0;
let pendingBits = 0;
let byteCount = 0;

function mixBlock(hash: number, block: number): number {
  let k = Math.imul(block, C1);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, C2);
  hash ^= k;
  hash = (hash << 13) | (hash >>> 19);
  return (Math.imul(hash, 5) + 0xe6546b64) | 0;
}

function finish(hash: number, tail: number, tailBits: number, length: number): number {
  if (tailBits > 0) {
    let k = Math.imul(tail, C1);
    k = (k << 15) | (k >>> 17);
    hash ^= Math.imul(k, C2);
  }
  hash ^= length;
  // fmix32: the avalanche step, so that neighbouring inputs spread over the whole 32-bit range.
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return hash >>> 0;
}

function addByte(byte: number): void {
  pending |= byte << pendingBits;
  pendingBits += 8;
  byteCount++;
  if (pendingBits === 32) {
    h = mixBlock(h, pending);
    pending = 0;
    pendingBits = 0;
  }
}

/** Murmur3 (x86, 32-bit) of the UTF-8 encoding of `input`, as an unsigned 32-bit integer. */
export function murmur3(input: string, seed = 0): number {
  h = seed | 0;
  pending = 0;
  pendingBits = 0;
  byteCount = 0;
  const length = input.length;
  for (let i = 0; i < length; i++) {
    const c = input.charCodeAt(i);
    if (c < 0x80) {
      addByte(c);
    } else if (c < 0x800) {
      addByte(0xc0 | (c >> 6));
      addByte(0x80 | (c & 0x3f));
    } else if (c >= 0xd800 && c <= 0xdbff && i + 1 < length) {
      const low = input.charCodeAt(i + 1);
      if (low >= 0xdc00 && low <= 0xdfff) {
        const cp = 0x10000 + ((c - 0xd800) << 10) + (low - 0xdc00);
        addByte(0xf0 | (cp >> 18));
        addByte(0x80 | ((cp >> 12) & 0x3f));
        addByte(0x80 | ((cp >> 6) & 0x3f));
        addByte(0x80 | (cp & 0x3f));
        i++;
      } else {
        addReplacement();
      }
    } else if (c >= 0xd800 && c <= 0xdfff) {
      addReplacement();
    } else {
      addByte(0xe0 | (c >> 12));
      addByte(0x80 | ((c >> 6) & 0x3f));
      addByte(0x80 | (c & 0x3f));
    }
  }
  return finish(h, pending, pendingBits, byteCount);
}

// A lone surrogate has no UTF-8 form; encode it as U+FFFD, as TextEncoder and Buffer.from(string) do, so the hash
// of any string equals the hash of the bytes Node would put on the wire for it.
function addReplacement(): void {
  addByte(0xef);
  addByte(0xbf);
  addByte(0xbd);
}

/**
 * Murmur3 (x86, 32-bit) of three 32-bit words, as the 12 bytes of their little-endian encoding: equal to
 * `murmur3Bytes` of those bytes. The ring derives its virtual-node points with it from a 64-bit address hash and
 * the node number, ten times faster than hashing the string "address-17" for each of a million points.
 */
export function murmur3Words(a: number, b: number, c: number, seed = 0): number {
  let hash = mixBlock(seed | 0, a | 0);
  hash = mixBlock(hash, b | 0);
  hash = mixBlock(hash, c | 0);
  return finish(hash, 0, 0, 12);
}

/** Murmur3 (x86, 32-bit) of raw bytes: the reference form the published test vectors are written against. */
export function murmur3Bytes(bytes: Uint8Array, seed = 0): number {
  let hash = seed | 0;
  const blocks = bytes.length & ~3;
  for (let i = 0; i < blocks; i += 4) {
    const block = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
    hash = mixBlock(hash, block);
  }
  let tail = 0;
  for (let i = blocks; i < bytes.length; i++) tail |= bytes[i]! << ((i - blocks) * 8);
  return finish(hash, tail, (bytes.length - blocks) * 8, bytes.length);
}
