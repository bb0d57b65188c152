#!/usr/bin/env node
/**
 * Pick micro-benchmark: how many picks per second each balancing strategy makes, for 3, 100 and 1,000 hosts,
 * taking the first candidate ("first") and walking three candidates, as a request with two retries would ("walk 3").
 * Hashing strategies get a key from a rotating set of 4,096 (the others none), and are measured again with bounded
 * loads (balanceFactor 1.25), which sums the pool's in-flight counters on each pick. Each cell runs for about --ms
 * milliseconds (default 200) after a short warm-up. It also prints how long building the picker took.
 *
 *   npm run build && node bench/picks.mjs [--ms 200]
 *
 * Imports the compiled output (dist/), so it measures what production runs.
 */

import { BALANCE_NAMES, PeakEwma, strategyFor } from '../dist/balancer/index.js';

const msArg = process.argv.indexOf('--ms');
const CELL_MS = msArg > 0 ? Number(process.argv[msArg + 1]) : 200;
const SIZES = [3, 100, 1_000];
const KEYS = Array.from({ length: 4096 }, (_, i) => `user-${i * 7919}`);
const HASHING = new Set(['consistent-hash', 'maglev']);

/** mulberry32: a fixed seed, so runs are comparable. */
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const clock = () => performance.now();

/** Hosts as the upstream would have them: mixed weights, some load, and a latency history for peak-ewma. */
function makeHosts(n) {
  const rnd = mulberry32(n);
  return Array.from({ length: n }, (_, i) => {
    const latency = new PeakEwma({ decayMs: 10_000, clock });
    latency.observe(5 + rnd() * 20);
    const weight = 1 + (i % 4);
    return {
      address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:8080`,
      weight,
      effectiveWeight: weight,
      inflight: Math.floor(rnd() * 8),
      latency,
    };
  });
}

let sink = 0;

/** Operations per second of `op`, run in batches until `ms` have passed. */
function rate(op, ms) {
  const warmUntil = performance.now() + ms / 2;
  while (performance.now() < warmUntil) for (let i = 0; i < 100; i++) op(i);
  let count = 0;
  const start = performance.now();
  let now = start;
  while (now - start < ms) {
    for (let i = 0; i < 1_000; i++) op(count + i);
    count += 1_000;
    now = performance.now();
  }
  return (count * 1_000) / (now - start);
}

function firstCandidate(picker, key) {
  for (const host of picker.candidates(key)) {
    sink ^= host.inflight;
    return;
  }
}

function walk3(picker, key) {
  let k = 0;
  for (const host of picker.candidates(key)) {
    sink ^= host.inflight;
    if (++k === 3) return;
  }
}

const fmt = (x) => (x >= 1e6 ? `${(x / 1e6).toFixed(2)} M` : `${(x / 1e3).toFixed(0)} k`).padStart(9);

console.log(`node ${process.version}, ${CELL_MS} ms per cell; picks per second`);
const header = ['hosts'.padStart(6), 'first'.padStart(11), 'walk 3'.padStart(11), 'build'.padStart(11)];
console.log(`${'strategy'.padEnd(26)}${header.join('')}`);
const rows = BALANCE_NAMES.map((name) => ({ name, label: name, options: {} }));
for (const name of HASHING) rows.push({ name, label: `${name} (bounded)`, options: { balanceFactor: 1.25 } });
for (const { name, label, options } of rows) {
  for (const n of SIZES) {
    const hosts = makeHosts(n);
    const t0 = performance.now();
    const picker = strategyFor(name).build(hosts, { random: mulberry32(42), clock }, options);
    const buildMs = performance.now() - t0;
    const keyed = HASHING.has(name);
    const first = rate((i) => firstCandidate(picker, keyed ? KEYS[i & 4095] : undefined), CELL_MS);
    const walk = rate((i) => walk3(picker, keyed ? KEYS[i & 4095] : undefined), CELL_MS);
    const build = `${buildMs.toFixed(1)} ms`.padStart(11);
    console.log(`${label.padEnd(26)}${String(n).padStart(6)}  ${fmt(first)}  ${fmt(walk)}${build}`);
  }
}
if (sink === 0.5) console.log(sink); // keep the work observable so it is not optimised away
