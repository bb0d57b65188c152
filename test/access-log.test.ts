import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AccessLog } from '../src/access-log.js';
import { exchangeFields, jsonString } from '../src/proxy/http/access-record.js';
import type { Downstream } from '../src/proxy/http/downstream.js';
import { Tries } from '../src/proxy/http/tries.js';
import type { Host } from '../src/upstream/host.js';

/** A pino logger over a sink that keeps every chunk it is handed, as written. */
function capture(bindings: Record<string, unknown> = {}, maxWrite?: number) {
  const chunks: string[] = [];
  const sink = Object.assign(
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        chunks.push(chunk.toString());
        cb();
      },
    }),
    // sonic-boom's name for the largest write it makes; the cluster logger sets it to PIPE_BUF.
    maxWrite === undefined ? {} : { maxWrite },
  );
  const log = pino({ level: 'info', base: { service: 'ballast' } }, sink).child(bindings);
  const lines = () => chunks.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  return { log, chunks, lines };
}

const record = { listener: 'web', requestId: 'r-1', client: '127.0.0.1', method: 'GET', url: '/a "quoted" \\ path\n', status: 200, durationMs: 1.25, bytes: 5, detail: undefined };

describe('access log', () => {
  afterEach(() => vi.useRealTimers());

  it('writes the line pino would write for the same record, with kind: access', () => {
    const viaPino = capture({ worker: 2 });
    viaPino.log.child({ kind: 'access' }).info(record);
    const ours = capture({ worker: 2 });
    const access = AccessLog.of(ours.log)!;
    access.write(record);
    access.flush();
    const [expected] = viaPino.lines();
    const [got] = ours.lines();
    expect(Object.keys(got!)).toEqual(Object.keys(expected!));
    expect({ ...got, time: 0 }).toEqual({ ...expected, time: 0 });
    expect(got).toMatchObject({ level: 30, service: 'ballast', worker: 2, kind: 'access', url: record.url });
    expect(got).not.toHaveProperty('detail');
    expect(Math.abs((got!.time as number) - Date.now())).toBeLessThan(5000);
  });

  it('batches lines: handed over 50 ms after the first line of a batch, in one write', () => {
    vi.useFakeTimers();
    const { log, chunks, lines } = capture();
    const access = AccessLog.of(log)!;
    for (let i = 0; i < 10; i++) access.write({ ...record, requestId: `r-${i}` });
    vi.advanceTimersByTime(49);
    expect(chunks).toHaveLength(0);
    vi.advanceTimersByTime(1);
    expect(chunks).toHaveLength(1);
    expect(lines().map((l) => l.requestId)).toEqual(Array.from({ length: 10 }, (_, i) => `r-${i}`));
    vi.advanceTimersByTime(1000);
    expect(chunks).toHaveLength(1);
    access.write(record);
    vi.advanceTimersByTime(50);
    expect(chunks).toHaveLength(2);
  });

  it('hands over a full batch at once: 64 KiB, or the destination\'s maxWrite when smaller', () => {
    vi.useFakeTimers();
    const big = capture();
    const access = AccessLog.of(big.log)!;
    for (let i = 0; i < 400; i++) access.write({ ...record, requestId: `r-${i}` });
    expect(big.chunks.length).toBeGreaterThanOrEqual(1);
    for (const c of big.chunks) expect(Buffer.byteLength(c)).toBeLessThanOrEqual(64 * 1024);
    expect(Buffer.byteLength(big.chunks[0]!)).toBeGreaterThan(60 * 1024);
    vi.advanceTimersByTime(50);
    expect(big.lines()).toHaveLength(400);

    const piped = capture({}, 4096);
    const small = AccessLog.of(piped.log)!;
    for (let i = 0; i < 200; i++) small.write({ ...record, requestId: `r-${i}` });
    vi.advanceTimersByTime(50);
    expect(piped.chunks.length).toBeGreaterThan(10);
    for (const c of piped.chunks) {
      expect(Buffer.byteLength(c)).toBeLessThanOrEqual(4096);
      expect(c.endsWith('\n')).toBe(true);
    }
    expect(piped.lines().map((l) => l.requestId)).toEqual(Array.from({ length: 200 }, (_, i) => `r-${i}`));
  });

  it('writes a line longer than maxWrite whole and on its own, and counts bytes, not characters', () => {
    const { log, chunks, lines } = capture({}, 4096);
    const access = AccessLog.of(log)!;
    access.write({ url: '/short' });
    access.write({ url: '/' + 'x'.repeat(5000) });
    access.write({ url: '/é'.repeat(1500) }); // 3,000 characters, 4,500 bytes
    access.flush();
    expect(chunks.map((c) => c.split('\n').length - 1)).toEqual([1, 1, 1]);
    expect(lines().map((l) => (l.url as string).length)).toEqual([6, 5001, 3000]);
  });

  it('flush() writes what is queued at once, and only once', () => {
    vi.useFakeTimers();
    const { log, chunks, lines } = capture();
    const access = AccessLog.of(log)!;
    access.write(record);
    access.flush();
    expect(chunks).toHaveLength(1);
    expect(lines()[0]).toMatchObject({ requestId: 'r-1' });
    access.flush();
    vi.advanceTimersByTime(100);
    expect(chunks).toHaveLength(1);
  });

  it('serialises an exchange by hand exactly as JSON.stringify would, whatever the client put in it', () => {
    const hostile = ['plain', '', 'a "quoted" \\ path', 'tab\there\u0000\u001f\u007f', 'caf\u00e9 \u2028 \ud83d\ude00', '\ud800 lone surrogate', '</script>'];
    for (const [i, value] of hostile.entries()) expect(jsonString(value), `value ${i}`).toBe(JSON.stringify(value));
    const tries = new Tries();
    tries.add({ address: '127.0.0.2:8080' } as Host);
    tries.note({ kind: 'failed', reason: 'reset' } as never);
    tries.retried('reset');
    tries.add({ address: '127.0.0.3:8080' } as Host);
    for (const [i, value] of hostile.entries()) {
      const down = { clientIp: '::1', method: 'GET', url: `/${value}`, websocket: i % 2 === 0, httpVersion: i % 3 === 0 ? '2' : '1.1', tls: i % 2 === 0 ? 'TLSv1.3' : undefined, bytesSent: i * 1000 } as unknown as Downstream;
      const detail = i === 1 ? undefined : value;
      const expected = {
        listener: 'web',
        requestId: value,
        client: '::1',
        method: 'GET',
        url: `/${value}`,
        upgrade: down.websocket ? 'websocket' : undefined,
        protocol: down.httpVersion === '2' ? 'h2' : undefined,
        tls: down.tls,
        upstream: 'pool "x"',
        server: tries.server,
        attempts: tries.count,
        tries: tries.forLog,
        status: 502,
        durationMs: Math.round(1234.56789 * 1000) / 1000,
        bytes: i * 1000,
        detail,
      };
      const fields = exchangeFields('web', value, down, 'pool "x"', tries, 502, 1234.56789, detail);
      expect(`{${fields}}`, `value ${i}`).toBe(JSON.stringify(expected));
    }
  });
});
