/**
 * Replicas must agree on key → server without talking to each other (design.md, "Scaling out"). This runs the
 * balancer in two other Node processes, with different V8 string-hash seeds and the server list in a different
 * order, and checks that they map keys exactly as this process does.
 *
 * Node 20 cannot import TypeScript, and the test must not depend on a prior build, so it transpiles
 * src/balancer/*.ts with the TypeScript compiler into a temporary directory (a different compiler from the one
 * vitest runs this file through, which is a check in itself) and has each child import that.
 */

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { murmur3, stickyCookieValue, strategyFor } from '../../src/balancer/index.js';
import { makeHost, mulberry32, take, userKeys } from './helpers.js';

const SOURCE = fileURLToPath(new URL('../../src/balancer/', import.meta.url));
const ADDRESSES = Array.from({ length: 10 }, (_, i) => `10.1.${i}.${(i * 37) % 251}:${8000 + i}`);
const WEIGHTS = [1, 2, 1, 3, 1, 1, 2, 1, 1, 4];
const KEYS = [...userKeys(2_000), 'ünïcödé', '🙂', '', 'a'.repeat(300)];

interface Mappings {
  hashes: number[];
  ring: string[];
  maglev: string[];
  walks: string[][];
  sticky: string[];
}

/** The same computation, in this process. The child's version is the string CHILD below, kept in step with it. */
function mappingsHere(): Mappings {
  const hosts = ADDRESSES.map((a, i) => makeHost(a, WEIGHTS[i]));
  const deps = { random: mulberry32(1), clock: () => 0 };
  const ring = strategyFor('consistent-hash').build(hosts, deps);
  const mag = strategyFor('maglev').build(hosts, deps);
  const firstOf = (p: typeof ring, k: string): string => take(p.candidates(k), 1)[0]!.address;
  return {
    hashes: KEYS.map((k) => murmur3(k)),
    ring: KEYS.map((k) => firstOf(ring, k)),
    maglev: KEYS.map((k) => firstOf(mag, k)),
    walks: KEYS.slice(0, 50).flatMap((k) => [ring, mag].map((p) => take(p.candidates(k)).map((h) => h.address))),
    sticky: ADDRESSES.map((a) => stickyCookieValue(a)),
  };
}

const CHILD = `
const { murmur3, stickyCookieValue, strategyFor } = await import(process.env.BALANCER_URL);
const { ADDRESSES, WEIGHTS, KEYS } = JSON.parse(process.env.BALANCER_INPUT);
// The server list in reverse: layouts must depend on addresses, not on configuration order.
const hosts = ADDRESSES.map((address, i) => ({
  address, weight: WEIGHTS[i], effectiveWeight: WEIGHTS[i], inflight: 0, latency: { estimate: () => 0 },
})).reverse();
const deps = { random: () => 0.5, clock: () => 0 };
const ring = strategyFor('consistent-hash').build(hosts, deps);
const mag = strategyFor('maglev').build(hosts, deps);
const firstOf = (p, k) => p.candidates(k)[Symbol.iterator]().next().value.address;
process.stdout.write(JSON.stringify({
  hashes: KEYS.map((k) => murmur3(k)),
  ring: KEYS.map((k) => firstOf(ring, k)),
  maglev: KEYS.map((k) => firstOf(mag, k)),
  walks: KEYS.slice(0, 50).flatMap((k) => [ring, mag].map((p) => [...p.candidates(k)].map((h) => h.address))),
  sticky: ADDRESSES.map((a) => stickyCookieValue(a)),
  pid: process.pid,
}));
`;

let compiled: string;

beforeAll(() => {
  compiled = mkdtempSync(join(tmpdir(), 'ballast-balancer-'));
  writeFileSync(join(compiled, 'package.json'), '{"type":"module"}');
  for (const file of readdirSync(SOURCE)) {
    if (!file.endsWith('.ts')) continue;
    const out = ts.transpileModule(readFileSync(join(SOURCE, file), 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true },
    });
    writeFileSync(join(compiled, file.replace(/\.ts$/, '.js')), out.outputText);
  }
});

afterAll(() => {
  rmSync(compiled, { recursive: true, force: true });
});

function runChild(hashSeed: number): Mappings & { pid: number } {
  const stdout = execFileSync(process.execPath, [`--hash-seed=${hashSeed}`, '--input-type=module', '-e', CHILD], {
    env: {
      ...process.env,
      BALANCER_URL: pathToFileURL(join(compiled, 'index.js')).href,
      BALANCER_INPUT: JSON.stringify({ ADDRESSES, WEIGHTS, KEYS }),
    },
    encoding: 'utf8',
    timeout: 15_000,
  });
  return JSON.parse(stdout) as Mappings & { pid: number };
}

describe('mappings across processes', () => {
  it('are identical in two child processes and in this one', () => {
    const here = mappingsHere();
    const a = runChild(1);
    const b = runChild(987_654_321);
    expect(new Set([a.pid, b.pid, process.pid]).size).toBe(3);
    for (const child of [a, b]) {
      expect(child.hashes).toEqual(here.hashes);
      expect(child.ring).toEqual(here.ring);
      expect(child.maglev).toEqual(here.maglev);
      expect(child.walks).toEqual(here.walks);
      expect(child.sticky).toEqual(here.sticky);
    }
    // Not vacuous: the keys really are spread over the servers.
    expect(new Set(here.ring).size).toBe(ADDRESSES.length);
    expect(new Set(here.maglev).size).toBe(ADDRESSES.length);
  });
});
