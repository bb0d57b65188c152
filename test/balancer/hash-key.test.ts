import { describe, expect, it } from 'vitest';

import {
  compileHashKey,
  cookieValue,
  HASH_KEY_PATTERN,
  pathOf,
  type HashKeySource,
} from '../../src/balancer/hash-key.js';

function req(over: Partial<HashKeySource> = {}): HashKeySource {
  return { headers: {}, url: '/', clientIp: '192.0.2.7', ...over };
}

describe('hash keys', () => {
  describe('header:NAME', () => {
    it('reads the header, whatever the case of the name in the spec', () => {
      const read = compileHashKey('header:X-User-Id');
      expect(read(req({ headers: { 'x-user-id': 'u42' } }))).toBe('u42');
    });

    it('is undefined when the header is missing or empty', () => {
      const read = compileHashKey('header:x-user-id');
      expect(read(req())).toBeUndefined();
      expect(read(req({ headers: { 'x-user-id': '' } }))).toBeUndefined();
    });

    it('joins a header Node keeps as an array', () => {
      expect(compileHashKey('header:set-cookie')(req({ headers: { 'set-cookie': ['a=1', 'b=2'] } }))).toBe('a=1, b=2');
      expect(compileHashKey('header:set-cookie')(req({ headers: { 'set-cookie': [] } }))).toBeUndefined();
    });
  });

  describe('cookie:NAME', () => {
    const read = compileHashKey('cookie:session');

    it('finds the cookie among others, trimming the spaces around pairs', () => {
      expect(read(req({ headers: { cookie: 'theme=dark;  session=abc123 ; lang=en' } }))).toBe('abc123');
      expect(read(req({ headers: { cookie: 'session=abc123' } }))).toBe('abc123');
    });

    it('splits at the first "=" only, so a value may contain "="', () => {
      expect(read(req({ headers: { cookie: 'session=YWJj==; x=1' } }))).toBe('YWJj==');
    });

    it('does not match a cookie whose name only contains or extends the one asked for', () => {
      expect(read(req({ headers: { cookie: 'mysession=1; session2=2; Session=3' } }))).toBeUndefined();
    });

    it('takes the first of two cookies with the name (the most specific, RFC 6265 §5.4)', () => {
      expect(read(req({ headers: { cookie: 'session=first; session=second' } }))).toBe('first');
    });

    it('unquotes a quoted value and leaves percent-escapes as they are', () => {
      expect(read(req({ headers: { cookie: 'session="q v"' } }))).toBe('q v');
      expect(read(req({ headers: { cookie: 'session=%E0%A4%A' } }))).toBe('%E0%A4%A');
    });

    it('is undefined without a Cookie header, without the cookie, or with an empty value', () => {
      expect(read(req())).toBeUndefined();
      expect(read(req({ headers: { cookie: 'other=1' } }))).toBeUndefined();
      expect(read(req({ headers: { cookie: 'session=; other=1' } }))).toBeUndefined();
      expect(read(req({ headers: { cookie: 'session' } }))).toBeUndefined();
      expect(read(req({ headers: { cookie: '' } }))).toBeUndefined();
    });

    it('skips pairs without "=" and empty pairs', () => {
      expect(cookieValue('flag; ;session=ok', 'session')).toBe('ok');
    });
  });

  describe('query:NAME', () => {
    const read = compileHashKey('query:tenant');

    it('reads and decodes the parameter', () => {
      expect(read(req({ url: '/a?x=1&tenant=acme%20corp&y=2' }))).toBe('acme corp');
      expect(read(req({ url: '/a?tenant=a+b' }))).toBe('a b');
      expect(read(req({ url: 'http://example.com/a?tenant=t1' }))).toBe('t1');
    });

    it('ignores the fragment and is undefined when the parameter is missing or empty', () => {
      expect(read(req({ url: '/a?x=1#tenant=no' }))).toBeUndefined();
      expect(read(req({ url: '/a' }))).toBeUndefined();
      expect(read(req({ url: '/a?tenant=' }))).toBeUndefined();
      expect(read(req({ url: '/a?tenant' }))).toBeUndefined();
    });

    it('does not throw on a malformed escape', () => {
      expect(read(req({ url: '/a?tenant=%E0%A4%A' }))).toBeDefined();
    });
  });

  describe('path', () => {
    const read = compileHashKey('path');

    it('is the path without the query', () => {
      expect(read(req({ url: '/users/42?tab=1' }))).toBe('/users/42');
      expect(read(req({ url: '/users/42' }))).toBe('/users/42');
      expect(read(req({ url: '/' }))).toBe('/');
    });

    it('drops the scheme and authority of an absolute-form target', () => {
      expect(pathOf('http://example.com/a/b?c=1')).toBe('/a/b');
      expect(pathOf('http://example.com')).toBe('/');
      expect(pathOf('http://example.com?x=/y')).toBe('/');
    });

    it('keeps the path as sent (no decoding), and the asterisk form as is', () => {
      expect(pathOf('/a%2Fb/../c')).toBe('/a%2Fb/../c');
      expect(pathOf('*')).toBe('*');
      expect(pathOf('/a#frag')).toBe('/a');
    });

    it('is undefined for an empty target', () => {
      expect(read(req({ url: '' }))).toBeUndefined();
      expect(read(req({ url: '?x=1' }))).toBeUndefined();
    });
  });

  describe('client-ip', () => {
    it('is the client address, or undefined when there is none', () => {
      const read = compileHashKey('client-ip');
      expect(read(req({ clientIp: '2001:db8::1' }))).toBe('2001:db8::1');
      expect(read(req({ clientIp: '' }))).toBeUndefined();
    });
  });

  describe('specs', () => {
    const good = [
      'header:x-user-id',
      'header:X_Custom.Header',
      'cookie:session',
      'cookie:__Host-id',
      'query:tenant',
      'query:a.b[c]',
      'client-ip',
      'path',
    ];
    const bad = [
      '',
      'header',
      'header:',
      'header:x user',
      'header:x:y',
      'cookie:a=b',
      'cookie:a;b',
      'query:a&b',
      'query:',
      'query:a b',
      'client_ip',
      'Path',
      'path:x',
      'url',
      ' path',
      'header:x\n',
    ];

    it.each(good)('accepts %j', (spec) => {
      expect(HASH_KEY_PATTERN.test(spec)).toBe(true);
      expect(() => compileHashKey(spec)).not.toThrow();
    });

    it.each(bad)('refuses %j with a message naming the accepted forms', (spec) => {
      expect(HASH_KEY_PATTERN.test(spec)).toBe(false);
      expect(() => compileHashKey(spec)).toThrow(
        /invalid hash key .*expected header:NAME, cookie:NAME, query:NAME, client-ip or path/,
      );
    });
  });
});
