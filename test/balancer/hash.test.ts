import { describe, expect, it } from 'vitest';

import { murmur3, murmur3Bytes, murmur3Words } from '../../src/balancer/hash.js';
import { mulberry32 } from './helpers.js';

/**
 * Published MurmurHash3_x86_32 vectors: the seed-0/1/0xffffffff cases from the SMHasher verification set and the
 * widely quoted seed 0x9747b28c set (as checked by the reference implementations and Python's `mmh3`).
 */
const VECTORS: [input: string, seed: number, expected: number][] = [
  ['', 0, 0x00000000],
  ['', 1, 0x514e28b7],
  ['', 0xffffffff, 0x81f16f39],
  ['\0\0\0\0', 0, 0x2362f9de],
  ['a', 0x9747b28c, 0x7fa09ea6],
  ['aa', 0x9747b28c, 0x5d211726],
  ['aaa', 0x9747b28c, 0x283e0130],
  ['aaaa', 0x9747b28c, 0x5a97808a],
  ['ab', 0x9747b28c, 0x74875592],
  ['abc', 0x9747b28c, 0xc84a62dd],
  ['abcd', 0x9747b28c, 0xf0478627],
  ['Hello, world!', 0x9747b28c, 0x24884cba],
  ['ππππππππ', 0x9747b28c, 0xd58063c1],
  ['The quick brown fox jumps over the lazy dog', 0x9747b28c, 0x2fa826cd],
  ['The quick brown fox jumps over the lazy dog', 0, 0x2e4ff723],
  ['test', 0, 0xba6bd213],
  ['foo', 0, 0xf6a5c420],
];

describe('murmur3 (x86, 32-bit)', () => {
  it.each(VECTORS)('hashes %j with seed %i to the published value', (input, seed, expected) => {
    expect(murmur3(input, seed)).toBe(expected);
    expect(murmur3Bytes(Buffer.from(input, 'utf8'), seed)).toBe(expected);
  });

  it('hashes a string as the UTF-8 bytes Node would send, for any code points and lone surrogates', () => {
    const rnd = mulberry32(2024);
    const pool = [0x41, 0x7f, 0x80, 0x7ff, 0x800, 0xfffd, 0xffff, 0xd800, 0xdbff, 0xdc00, 0xdfff, 0x1f600, 0x10ffff];
    for (let i = 0; i < 2_000; i++) {
      let s = '';
      const length = Math.floor(rnd() * 12);
      for (let j = 0; j < length; j++) {
        const cp = rnd() < 0.5 ? pool[Math.floor(rnd() * pool.length)]! : Math.floor(rnd() * 0x110000);
        // Lone surrogates too: fromCharCode, not fromCodePoint, for the surrogate range.
        s += cp >= 0xd800 && cp <= 0xdfff ? String.fromCharCode(cp) : String.fromCodePoint(cp);
      }
      const seed = Math.floor(rnd() * 2 ** 32);
      expect(murmur3(s, seed)).toBe(murmur3Bytes(Buffer.from(s, 'utf8'), seed));
    }
  });

  it('hashes three words as murmur3 of their 12 little-endian bytes', () => {
    const rnd = mulberry32(7);
    for (let i = 0; i < 200; i++) {
      const words = [0, 0, 0].map(() => Math.floor(rnd() * 2 ** 32));
      const bytes = Buffer.alloc(12);
      words.forEach((w, j) => bytes.writeUInt32LE(w, j * 4));
      expect(murmur3Words(words[0]!, words[1]!, words[2]!, 99)).toBe(murmur3Bytes(bytes, 99));
    }
  });

  it('returns unsigned 32-bit integers and spreads similar inputs', () => {
    const buckets = new Array<number>(16).fill(0);
    let outOfRange = 0;
    for (let i = 0; i < 16_000; i++) {
      const h = murmur3(`10.0.0.1:8080-${i}`);
      if (!Number.isInteger(h) || h < 0 || h >= 2 ** 32) outOfRange++;
      buckets[h >>> 28]!++;
    }
    expect(outOfRange).toBe(0);
    for (const b of buckets) expect(Math.abs(b - 1_000)).toBeLessThan(120);
  });
});
