/** Header hygiene (RFC 9110 §7.6.1) and framing checks (RFC 9112 §3, §6), as pure functions. */
import { describe, expect, it } from 'vitest';
import type { IncomingMessage } from 'node:http';
import { connectionTokens, forwardRequestHeaders, forwardResponseHeaders, HOP_BY_HOP, type ForwardedContext } from '../src/proxy/http/headers.js';
import { framingProblem, hasRequestBody } from '../src/proxy/http/framing.js';

const UNTRUSTED: ForwardedContext = { clientIp: '198.51.100.7', trusted: false, httpVersion: '1.1' };
const TRUSTED: ForwardedContext = { ...UNTRUSTED, trusted: true };

/** The forwarded headers as [name, value] pairs, and the values of one field (case-insensitive). */
function pairs(flat: readonly string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
  return out;
}
function values(flat: readonly string[], name: string): string[] {
  return pairs(flat).filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);
}
const buffers = (flat: readonly string[]): Buffer[] => flat.map((s) => Buffer.from(s, 'latin1'));

describe('connectionTokens', () => {
  it('is undefined without a Connection field, or when it names nothing to strip', () => {
    expect(connectionTokens(['Host', 'a.example'])).toBeUndefined();
    expect(connectionTokens(['Connection', 'close'])).toBeUndefined();
    expect(connectionTokens(['Connection', 'Keep-Alive'])).toBeUndefined();
    expect(connectionTokens(['Connection', ' , ,'])).toBeUndefined();
  });

  it('lower-cases and trims every token of every Connection field, whatever the field name case', () => {
    const raw = ['CONNECTION', 'keep-alive, X-Secret ,Upgrade', 'Host', 'a', 'connection', 'x-other,,close'];
    expect(connectionTokens(raw)).toEqual(['x-secret', 'upgrade', 'x-other']);
  });

  it('reads raw Buffer headers as the upstream response gives them', () => {
    expect(connectionTokens(buffers(['Connection', 'x-internal', 'X-Internal', 'v']))).toEqual(['x-internal']);
  });

  it('does not mistake a field whose name merely has ten letters', () => {
    expect(connectionTokens(['Connexion', 'x-secret'])).toBeUndefined();
  });
});

describe('forwardRequestHeaders', () => {
  it('drops every hop-by-hop field, in any case, and Expect', () => {
    const raw = [
      'Host', 'a.example',
      'Connection', 'keep-alive',
      'Keep-Alive', 'timeout=5',
      'Proxy-Connection', 'keep-alive',
      'TE', 'trailers',
      'Trailer', 'X-Checksum',
      'Transfer-Encoding', 'chunked',
      'Upgrade', 'h2c',
      'Proxy-Authorization', 'Basic YTpi',
      'Proxy-Authenticate', 'Basic',
      'HTTP2-Settings', 'AAMAAABkAARAAAAAAAIAAAAA',
      'Expect', '100-continue',
      'Accept', '*/*',
    ];
    const { headers } = forwardRequestHeaders(raw, UNTRUSTED);
    const names = pairs(headers).map(([n]) => n.toLowerCase());
    for (const hop of HOP_BY_HOP) expect(names).not.toContain(hop);
    expect(names).not.toContain('expect');
    expect(values(headers, 'accept')).toEqual(['*/*']);
    expect(values(headers, 'host')).toEqual(['a.example']);
  });

  it('drops every field the Connection fields name, and keeps the rest in order with their case', () => {
    const raw = ['Host', 'a.example', 'Connection', 'X-Secret', 'connection', 'x-other', 'X-Secret', '1', 'x-secret', '2', 'X-Other', '3', 'X-Kept', 'yes', 'Cookie', 'a=1', 'Cookie', 'b=2'];
    const { headers } = forwardRequestHeaders(raw, UNTRUSTED);
    expect(pairs(headers).slice(0, 4)).toEqual([['Host', 'a.example'], ['X-Kept', 'yes'], ['Cookie', 'a=1'], ['Cookie', 'b=2']]);
    expect(values(headers, 'x-secret')).toEqual([]);
    expect(values(headers, 'x-other')).toEqual([]);
  });

  it('adds its own fields after the removal, so Connection cannot strip them', () => {
    const raw = ['Host', 'a.example', 'Connection', 'x-forwarded-for, x-forwarded-proto, x-forwarded-host, via, x-request-id'];
    const { headers, requestId, host } = forwardRequestHeaders(raw, UNTRUSTED);
    expect(pairs(headers).slice(1)).toEqual([
      ['x-forwarded-for', '198.51.100.7'],
      ['x-forwarded-proto', 'http'],
      ['x-forwarded-host', 'a.example'],
      ['via', '1.1 ballast'],
      ['x-request-id', requestId],
    ]);
    expect(requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(host).toBe('a.example');
  });

  it('never lets Connection nominate Host away', () => {
    const { headers, host } = forwardRequestHeaders(['Host', 'a.example', 'Connection', 'host'], UNTRUSTED);
    expect(values(headers, 'host')).toEqual(['a.example']);
    expect(values(headers, 'x-forwarded-host')).toEqual(['a.example']);
    expect(host).toBe('a.example');
  });

  it('replaces every inbound X-Forwarded-* from an untrusted peer', () => {
    const raw = [
      'Host', 'a.example',
      'X-Forwarded-For', '6.6.6.6',
      'x-forwarded-for', '7.7.7.7',
      'X-FORWARDED-PROTO', 'https',
      'X-Forwarded-Host', 'evil.example',
      'X-Forwarded-Port', '443',
      'X-Forwarded-Prefix', '/admin',
    ];
    const { headers } = forwardRequestHeaders(raw, UNTRUSTED);
    expect(values(headers, 'x-forwarded-for')).toEqual(['198.51.100.7']);
    expect(values(headers, 'x-forwarded-proto')).toEqual(['http']);
    expect(values(headers, 'x-forwarded-host')).toEqual(['a.example']);
    expect(values(headers, 'x-forwarded-port')).toEqual([]);
    expect(values(headers, 'x-forwarded-prefix')).toEqual([]);
  });

  it('keeps and appends to the chain of a trusted peer', () => {
    const raw = [
      'Host', 'a.example',
      'X-Forwarded-For', '203.0.113.1',
      'X-Forwarded-For', '203.0.113.2, 10.0.0.3',
      'X-Forwarded-Proto', 'https',
      'X-Forwarded-Host', 'public.example',
      'X-Forwarded-Port', '443',
    ];
    const { headers } = forwardRequestHeaders(raw, TRUSTED);
    expect(values(headers, 'x-forwarded-for')).toEqual(['203.0.113.1, 203.0.113.2, 10.0.0.3, 198.51.100.7']);
    expect(values(headers, 'x-forwarded-proto')).toEqual(['https']);
    expect(values(headers, 'x-forwarded-host')).toEqual(['public.example']);
    expect(values(headers, 'x-forwarded-port')).toEqual(['443']);
  });

  it('lets even a trusted peer nominate its own X-Forwarded-For as hop-by-hop', () => {
    const raw = ['Host', 'a.example', 'Connection', 'X-Forwarded-For', 'X-Forwarded-For', '203.0.113.1'];
    expect(values(forwardRequestHeaders(raw, TRUSTED).headers, 'x-forwarded-for')).toEqual(['198.51.100.7']);
  });

  it('appends to Via with the client\'s HTTP version, as one field', () => {
    const raw = ['Host', 'a.example', 'Via', '1.1 edge', 'via', '1.0 cache'];
    expect(values(forwardRequestHeaders(raw, { ...UNTRUSTED, httpVersion: '1.0' }).headers, 'via')).toEqual(['1.1 edge, 1.0 cache, 1.0 ballast']);
  });

  it('keeps the first non-empty inbound X-Request-Id, once, and makes one up otherwise', () => {
    const kept = forwardRequestHeaders(['Host', 'a', 'X-Request-Id', '', 'X-Request-Id', 'req-1', 'x-request-id', 'req-2'], UNTRUSTED);
    expect(kept.requestId).toBe('req-1');
    expect(values(kept.headers, 'x-request-id')).toEqual(['req-1']);
    const a = forwardRequestHeaders(['Host', 'a'], UNTRUSTED).requestId;
    const b = forwardRequestHeaders(['Host', 'a'], UNTRUSTED).requestId;
    expect(a).not.toBe(b);
  });

  it('forwards an empty X-Forwarded-Host when the client sent no Host (HTTP/1.0)', () => {
    const { headers, host } = forwardRequestHeaders(['Accept', '*/*'], UNTRUSTED);
    expect(host).toBe('');
    expect(values(headers, 'x-forwarded-host')).toEqual(['']);
  });
});

describe('forwardResponseHeaders', () => {
  it('drops hop-by-hop and Connection-named fields and keeps the rest, duplicates and order included', () => {
    const raw = buffers([
      'Content-Type', 'text/plain',
      'Connection', 'keep-alive, X-Internal',
      'Keep-Alive', 'timeout=5',
      'Transfer-Encoding', 'chunked',
      'Trailer', 'X-Checksum',
      'Upgrade', 'h2c',
      'Proxy-Authenticate', 'Basic',
      'X-Internal', 'secret',
      'Set-Cookie', 'a=1',
      'Set-Cookie', 'b=2',
      'Content-Length', '5',
    ]);
    expect(pairs(forwardResponseHeaders(raw)!)).toEqual([
      ['Content-Type', 'text/plain'],
      ['Set-Cookie', 'a=1'],
      ['Set-Cookie', 'b=2'],
      ['Content-Length', '5'],
    ]);
  });

  it('passes bytes above 0x7f through unchanged (latin1 both ways)', () => {
    const raw = [Buffer.from('X-Name'), Buffer.from([0x63, 0x61, 0x66, 0xe9])];
    const out = forwardResponseHeaders(raw)!;
    expect(Buffer.from(out[1]!, 'latin1')).toEqual(raw[1]);
  });

  it('refuses a response with a transfer coding other than chunked (it would reach the client undecoded)', () => {
    for (const te of ['gzip, chunked', 'chunked, gzip', 'gzip', 'identity', '']) {
      expect(forwardResponseHeaders(buffers(['Content-Type', 'text/plain', 'Transfer-Encoding', te])), te).toBeUndefined();
    }
    for (const te of ['chunked', 'Chunked', ' chunked ']) {
      expect(forwardResponseHeaders(buffers(['Transfer-Encoding', te, 'X-A', '1'])), te).toEqual(['X-A', '1']);
    }
  });

  it('does not strip the X-Forwarded-* or Via an origin sends back', () => {
    const raw = buffers(['Via', '1.1 origin', 'X-Request-Id', 'r1']);
    expect(forwardResponseHeaders(raw)).toEqual(['Via', '1.1 origin', 'X-Request-Id', 'r1']);
  });
});

interface FakeRequest {
  raw?: string[];
  version?: string;
  url?: string;
  method?: string;
  socket?: object | null;
}

/** Just what framingProblem and hasRequestBody read of an IncomingMessage; a fresh socket unless one is given. */
function req({ raw = ['Host', 'a.example'], version = '1.1', url = '/', method = 'GET', socket = {} }: FakeRequest = {}): IncomingMessage {
  const [major, minor] = version.split('.').map(Number) as [number, number];
  const headers: Record<string, string> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    headers[name] = headers[name] === undefined ? raw[i + 1]! : `${headers[name]}, ${raw[i + 1]!}`;
  }
  return { rawHeaders: raw, headers, httpVersionMajor: major, httpVersionMinor: minor, httpVersion: version, url, method, socket } as unknown as IncomingMessage;
}

describe('framingProblem', () => {
  const accepted: [string, FakeRequest, boolean?][] = [
    ['a plain GET', {}],
    ['a Host with a port', { raw: ['Host', 'a.example:8080'] }],
    ['an IPv6 literal Host', { raw: ['Host', '[2001:db8::1]:8443'] }],
    ['an empty Host on HTTP/1.0', { raw: ['Host', ''], version: '1.0' }],
    ['OPTIONS * (answered by Ballast itself)', { url: '*', method: 'OPTIONS' }],
    ['HTTP/1.0 without Host', { raw: [], version: '1.0' }],
    ['one Transfer-Encoding: chunked', { raw: ['Host', 'a', 'Transfer-Encoding', 'chunked'], method: 'POST' }],
    ['chunked in upper case', { raw: ['Host', 'a', 'transfer-encoding', 'Chunked'], method: 'POST' }],
    ['one decimal Content-Length', { raw: ['Host', 'a', 'Content-Length', '42'], method: 'POST' }],
    ['an upgrade with Content-Length: 0', { raw: ['Host', 'a', 'Upgrade', 'websocket', 'Content-Length', '0'] }, true],
    ['a query in the origin-form target', { url: '/a?b=c' }],
    ['999 header fields', { raw: ['Host', 'a', ...Array.from({ length: 998 }, (_, i) => [`x-${i}`, '1']).flat()] }],
  ];
  it.each(accepted)('accepts %s', (_name, fake, upgrade = false) => {
    expect(framingProblem(req(fake), upgrade)).toBeUndefined();
  });

  const refused: [string, FakeRequest, string, boolean?][] = [
    ['HTTP/0.9', { raw: [], version: '0.9' }, 'unsupported HTTP version'],
    ['HTTP/2.0', { version: '2.0' }, 'unsupported HTTP version'],
    ['a duplicate Host', { raw: ['Host', 'a', 'host', 'a'] }, 'duplicate Host header'],
    ['Host: a, b', { raw: ['Host', 'a.example, b.example'] }, 'invalid Host header'],
    ['a Host with userinfo', { raw: ['Host', 'user@a.example'] }, 'invalid Host header'],
    ['a Host with a path', { raw: ['Host', 'a.example/x'] }, 'invalid Host header'],
    ['a Host with a space', { raw: ['Host', 'a example'] }, 'invalid Host header'],
    ['a missing Host on HTTP/1.1', { raw: [] }, 'missing Host header'],
    ['Transfer-Encoding on HTTP/1.0', { raw: ['Transfer-Encoding', 'chunked'], version: '1.0' }, 'Transfer-Encoding in an HTTP/1.0 request'],
    ['Transfer-Encoding: , chunked', { raw: ['Host', 'a', 'Transfer-Encoding', ', chunked'] }, 'unsupported Transfer-Encoding'],
    ['Transfer-Encoding: gzip, chunked', { raw: ['Host', 'a', 'Transfer-Encoding', 'gzip, chunked'] }, 'unsupported Transfer-Encoding'],
    ['an empty Transfer-Encoding', { raw: ['Host', 'a', 'Transfer-Encoding', ''] }, 'unsupported Transfer-Encoding'],
    ['two Transfer-Encoding fields', { raw: ['Host', 'a', 'Transfer-Encoding', 'chunked', 'Transfer-Encoding', 'chunked'] }, 'unsupported Transfer-Encoding'],
    ['Transfer-Encoding with Content-Length', { raw: ['Host', 'a', 'Transfer-Encoding', 'chunked', 'Content-Length', '5'] }, 'both Transfer-Encoding and Content-Length'],
    ['a duplicate Content-Length', { raw: ['Host', 'a', 'Content-Length', '5', 'content-length', '5'] }, 'duplicate Content-Length header'],
    ['Content-Length: 1e3', { raw: ['Host', 'a', 'Content-Length', '1e3'] }, 'invalid Content-Length'],
    ['a 16-digit Content-Length', { raw: ['Host', 'a', 'Content-Length', '1234567890123456'] }, 'invalid Content-Length'],
    ['an upgrade with a Content-Length body', { raw: ['Host', 'a', 'Content-Length', '5'] }, 'Upgrade request with a body', true],
    ['an upgrade with a chunked body', { raw: ['Host', 'a', 'Transfer-Encoding', 'chunked'] }, 'Upgrade request with a body', true],
    ['an absolute-form target', { url: 'http://evil.example/' }, 'request target not in origin-form'],
    ['an authority-form target', { url: 'a.example:443', method: 'CONNECT' }, 'request target not in origin-form'],
    ['an empty Host on HTTP/1.1 (RFC 9110 §4.2.1: an http URI has no empty host)', { raw: ['Host', ''] }, 'empty Host header'],
    ['GET * (the asterisk-form is for OPTIONS only)', { url: '*', method: 'GET' }, 'asterisk-form request target other than OPTIONS'],
    ['OPTIONS * as an upgrade', { url: '*', method: 'OPTIONS', raw: ['Host', 'a', 'Upgrade', 'websocket'] }, 'asterisk-form request target other than OPTIONS', true],
    ['1000 header fields (Node may have dropped more)', { raw: ['Host', 'a', ...Array.from({ length: 999 }, (_, i) => [`x-${i}`, '1']).flat()] }, 'too many header fields'],
  ];
  it.each(refused)('refuses %s', (_name, fake, reason, upgrade = false) => {
    expect(framingProblem(req(fake), upgrade)).toBe(reason);
  });

  it('follows the server\'s own maxHeadersCount', () => {
    const raw = ['Host', 'a', ...Array.from({ length: 9 }, (_, i) => [`x-${i}`, '1']).flat()];
    expect(framingProblem(req({ raw, socket: { server: { maxHeadersCount: 10 } } }), false)).toBe('too many header fields');
    expect(framingProblem(req({ raw, socket: { server: { maxHeadersCount: 11 } } }), false)).toBeUndefined();
    const many = ['Host', 'a', ...Array.from({ length: 1500 }, (_, i) => [`x-${i}`, '1']).flat()];
    expect(framingProblem(req({ raw: many, socket: { server: { maxHeadersCount: 0 } } }), false)).toBeUndefined();
  });

  it('refuses every later request on a connection where one was refused (RFC 9112 §9.6)', () => {
    const socket = {};
    expect(framingProblem(req({ socket }), false)).toBeUndefined();
    expect(framingProblem(req({ socket, raw: ['Host', 'a', 'Host', 'b'] }), false)).toBe('duplicate Host header');
    expect(framingProblem(req({ socket }), false)).toBe('request after a refused request on this connection');
    expect(framingProblem(req({ socket }), true)).toBe('request after a refused request on this connection');
    expect(framingProblem(req(), false)).toBeUndefined();
  });

  it('works without a socket', () => {
    expect(framingProblem(req({ socket: null }), false)).toBeUndefined();
    expect(framingProblem(req({ socket: null, raw: [] }), false)).toBe('missing Host header');
  });
});

describe('hasRequestBody', () => {
  it.each([
    [[], false],
    [['Content-Length', '0'], false],
    [['Content-Length', '1'], true],
    [['Transfer-Encoding', 'chunked'], true],
  ] as [string[], boolean][])('%j → %s', (raw, body) => {
    expect(hasRequestBody(req({ raw: ['Host', 'a', ...raw] }))).toBe(body);
  });
});
