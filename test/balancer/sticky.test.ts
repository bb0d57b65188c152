import { describe, expect, it } from 'vitest';

import { StickyTable, stickyCookieValue } from '../../src/balancer/sticky.js';
import { makeHost, makeHosts } from './helpers.js';

describe('sticky sessions', () => {
  it('names a server by a short hex hash that does not reveal its address', () => {
    const value = stickyCookieValue('10.0.0.1:8080');
    expect(value).toMatch(/^[0-9a-f]{16}$/);
    expect(value).not.toContain('10.0.0.1');
    expect(value).not.toContain('8080');
    // Fixed across processes and versions: the first 16 hex digits of SHA-256("10.0.0.1:8080").
    expect(value).toBe('120e9814c44c7e73');
  });

  it('is deterministic and distinct per address', () => {
    const values = new Set(Array.from({ length: 1_000 }, (_, i) => stickyCookieValue(`10.0.${i >> 8}.${i & 255}:80`)));
    expect(values.size).toBe(1_000);
    expect(stickyCookieValue('10.0.0.1:8080')).toBe(stickyCookieValue('10.0.0.1:8080'));
  });

  it('changes with a secret, so values cannot be checked against guessed addresses', () => {
    const plain = stickyCookieValue('10.0.0.1:8080');
    const keyed = stickyCookieValue('10.0.0.1:8080', 's3cret');
    expect(keyed).toMatch(/^[0-9a-f]{16}$/);
    expect(keyed).not.toBe(plain);
    expect(stickyCookieValue('10.0.0.1:8080', 'other')).not.toBe(keyed);
    expect(stickyCookieValue('10.0.0.1:8080', '')).toBe(plain);
  });

  it('finds the host a value names, and nothing for a missing, stale or forged value', () => {
    const hosts = makeHosts([1, 1, 1]);
    const table = new StickyTable(hosts);
    for (const h of hosts) {
      expect(table.find(stickyCookieValue(h.address))).toBe(h);
      expect(table.valueFor(h)).toBe(stickyCookieValue(h.address));
    }
    expect(table.find(undefined)).toBeUndefined();
    expect(table.find(stickyCookieValue('10.9.9.9:8080'))).toBeUndefined();
    expect(table.find('10.0.0.1:8080')).toBeUndefined();
    expect(table.valueFor(makeHost('10.0.0.1:8080'))).toBeUndefined();
  });

  it('uses the secret it was built with', () => {
    const [h] = makeHosts([1]);
    const table = new StickyTable([h!], 'k');
    expect(table.find(stickyCookieValue(h!.address))).toBeUndefined();
    expect(table.find(stickyCookieValue(h!.address, 'k'))).toBe(h);
  });
});
