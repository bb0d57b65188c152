#!/usr/bin/env node
/**
 * Summarise a V8 .cpuprofile (from `node --cpu-prof`): the top N functions by self time, with file:line, and the
 * same time grouped by where the code lives (Ballast's src/, each node_modules package, Node's internals, GC).
 * Locations in a compiled dist/*.js that has a source map beside it are mapped back to the .ts source.
 *
 *   node bench/profile-summary.mjs FILE.cpuprofile [--top 15] [--stacks writev,writeLatin1String]
 */
import { existsSync, readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const META = new Set(['(root)', '(program)', '(idle)', '(garbage collector)']);

/**
 * @param {{ nodes: any[], samples: number[], timeDeltas: number[], startTime: number, endTime: number }} profile
 * @param {{ root?: string }} [options] paths are shown relative to root
 */
export function summarizeProfile(profile, options = {}) {
  const root = options.root ?? process.cwd();
  const byId = new Map();
  const parent = new Map();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }

  // Sample i lasts until sample i+1 (timeDeltas[i+1]); the last one gets the mean.
  const { samples, timeDeltas } = profile;
  const totalUs = timeDeltas.reduce((a, b) => a + Math.max(0, b), 0);
  const meanUs = samples.length > 0 ? totalUs / samples.length : 0;
  const selfUs = new Map();
  for (let i = 0; i < samples.length; i++) {
    const dt = i + 1 < timeDeltas.length ? Math.max(0, timeDeltas[i + 1]) : meanUs;
    selfUs.set(samples[i], (selfUs.get(samples[i]) ?? 0) + dt);
  }

  const mapper = new SourceMapper(root);
  const fnKey = (n) => `${n.callFrame.functionName}\u0000${n.callFrame.url}\u0000${n.callFrame.lineNumber}\u0000${n.callFrame.columnNumber}`;
  const functions = new Map();
  const fnOf = (n) => {
    const key = fnKey(n);
    let f = functions.get(key);
    if (f === undefined) {
      const cf = n.callFrame;
      const name = cf.functionName || (cf.url ? '(anonymous)' : '(unknown)');
      f = { name, url: cf.url, location: mapper.locate(cf.url, cf.lineNumber, cf.columnNumber), group: groupOf(cf.url, name, root), selfUs: 0, totalUs: 0, lines: new Map() };
      functions.set(key, f);
    }
    return f;
  };

  // Self time per function, and hot lines inside it when V8 recorded position ticks.
  for (const n of profile.nodes) {
    const us = selfUs.get(n.id) ?? 0;
    const f = fnOf(n);
    f.selfUs += us;
    if (us > 0 && n.positionTicks?.length) {
      const ticks = n.positionTicks.reduce((a, t) => a + t.ticks, 0);
      for (const t of n.positionTicks) f.lines.set(t.line, (f.lines.get(t.line) ?? 0) + (us * t.ticks) / ticks);
    }
  }

  // Total (inclusive) time: each sample counts once for every distinct function on its stack.
  const stackCache = new Map();
  const stackOf = (id) => {
    let s = stackCache.get(id);
    if (s === undefined) {
      s = new Set();
      for (let cur = id; cur !== undefined; cur = parent.get(cur)) s.add(fnOf(byId.get(cur)));
      stackCache.set(id, s);
    }
    return s;
  };
  for (const [id, us] of selfUs) for (const f of stackOf(id)) f.totalUs += us;

  const all = [...functions.values()];
  const metaUs = (name) => all.filter((f) => f.name === name && f.location === '').reduce((a, f) => a + f.selfUs, 0);
  const idleUs = metaUs('(idle)');
  const busyUs = totalUs - idleUs;
  const groups = new Map();
  for (const f of all) if (f.name !== '(idle)' && f.selfUs > 0) groups.set(f.group, (groups.get(f.group) ?? 0) + f.selfUs);

  /** The heaviest call stacks (leaf first) that end in a function whose name is one of `names`. */
  const stacksFor = (names, limit = 5, depth = 30) => {
    const byStack = new Map();
    for (const [id, us] of selfUs) {
      const leaf = byId.get(id);
      if (!names.includes(leaf.callFrame.functionName)) continue;
      const frames = [];
      for (let cur = id; cur !== undefined && frames.length < depth; cur = parent.get(cur)) {
        const f = fnOf(byId.get(cur));
        if (f.name !== '(root)') frames.push(`${f.name} ${f.location}`);
      }
      const key = frames.join('\n');
      byStack.set(key, (byStack.get(key) ?? 0) + us);
    }
    return [...byStack.entries()].sort((a, b) => b[1] - a[1]).slice(0, limit).map(([stack, us]) => ({ ms: us / 1000, frames: stack.split('\n') }));
  };

  return {
    stacksFor,
    samples: samples.length,
    totalMs: totalUs / 1000,
    busyMs: busyUs / 1000,
    idleMs: idleUs / 1000,
    gcMs: metaUs('(garbage collector)') / 1000,
    programMs: metaUs('(program)') / 1000,
    functions: all
      .filter((f) => f.name !== '(idle)' && f.name !== '(root)' && f.selfUs > 0)
      .sort((a, b) => b.selfUs - a.selfUs)
      .map((f) => ({
        name: f.name,
        location: f.location,
        group: f.group,
        selfMs: f.selfUs / 1000,
        totalMs: f.totalUs / 1000,
        hotLines: [...f.lines.entries()].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([line, us]) => ({ line: mapper.line(f.url, line), ms: us / 1000 })),
      })),
    groups: [...groups.entries()].sort((a, b) => b[1] - a[1]).map(([group, us]) => ({ group, ms: us / 1000 })),
  };
}

/** Where a function's code lives, for the grouped view. */
function groupOf(url, name, root) {
  if (!url) return META.has(name) ? name : '(native / unknown)';
  if (url.startsWith('node:')) {
    const m = /^node:(?:internal\/)?([^/]+)/.exec(url);
    return `node:${m?.[1] ?? url.slice(5)}`;
  }
  const file = url.startsWith('file://') ? fileURLToPath(url) : url;
  const nm = file.lastIndexOf('node_modules/');
  if (nm !== -1) {
    const rest = file.slice(nm + 'node_modules/'.length).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  const rel = path.relative(root, file);
  if (rel.startsWith('dist/') || rel.startsWith('src/')) return `ballast ${path.dirname(rel).replace(/^(dist|src)\/?/, '') || '.'}`;
  return rel.startsWith('..') ? file : rel;
}

/** Maps dist/*.js positions back to the sources named by the .js.map beside them. */
class SourceMapper {
  #root;
  #maps = new Map();

  constructor(root) {
    this.#root = root;
  }

  locate(url, line0, col0) {
    if (!url) return '';
    if (url.startsWith('node:')) return `${url}:${line0 + 1}`;
    const file = url.startsWith('file://') ? fileURLToPath(url) : url;
    const rel = (p) => (path.isAbsolute(p) ? path.relative(this.#root, p) : p);
    const nm = file.lastIndexOf('node_modules/');
    const shown = nm !== -1 ? file.slice(nm + 'node_modules/'.length) : rel(file);
    const map = this.#map(file);
    if (map) {
      const entry = map.findEntry(line0, col0);
      if (entry && entry.originalSource) {
        const src = entry.originalSource.startsWith('file://') ? fileURLToPath(entry.originalSource) : path.resolve(path.dirname(file), entry.originalSource);
        return `${rel(src)}:${entry.originalLine + 1} (${shown}:${line0 + 1})`;
      }
    }
    return `${shown}:${line0 + 1}`;
  }

  /** A 1-based line of a script (V8 position ticks), as the source line when a source map knows it. */
  line(url, line1) {
    if (!url || url.startsWith('node:')) return line1;
    const file = url.startsWith('file://') ? fileURLToPath(url) : url;
    const map = this.#map(file);
    if (!map) return line1;
    const text = this.#lines(file)[line1 - 1] ?? '';
    const entry = map.findEntry(line1 - 1, text.length - text.trimStart().length);
    return entry && entry.originalSource && entry.generatedLine === line1 - 1 ? entry.originalLine + 1 : `js:${line1}`;
  }

  #text = new Map();
  #lines(file) {
    let lines = this.#text.get(file);
    if (lines === undefined) {
      try {
        lines = readFileSync(file, 'utf8').split('\n');
      } catch {
        lines = [];
      }
      this.#text.set(file, lines);
    }
    return lines;
  }

  #map(file) {
    if (this.#maps.has(file)) return this.#maps.get(file);
    let map = null;
    try {
      const mapFile = `${file}.map`;
      if (existsSync(mapFile) && !file.includes('node_modules/')) map = new SourceMap(JSON.parse(readFileSync(mapFile, 'utf8')));
    } catch {
      map = null;
    }
    this.#maps.set(file, map);
    return map;
  }
}

export function formatSummary(s, options = {}) {
  const top = options.top ?? 15;
  const pctBusy = (ms) => (s.busyMs > 0 ? ((100 * ms) / s.busyMs).toFixed(1) : '0.0');
  const out = [];
  out.push(`${s.samples} samples over ${s.totalMs.toFixed(0)} ms: busy ${s.busyMs.toFixed(0)} ms, idle ${s.idleMs.toFixed(0)} ms, GC ${s.gcMs.toFixed(0)} ms (${pctBusy(s.gcMs)}% of busy), (program) ${s.programMs.toFixed(0)} ms`);
  out.push('');
  out.push(`Top ${top} functions by self time (% of busy time):`);
  out.push(`${'#'.padStart(3)}  ${'self ms'.padStart(8)} ${'self%'.padStart(6)} ${'total%'.padStart(6)}  function  —  location`);
  s.functions.slice(0, top).forEach((f, i) => {
    const lines = f.hotLines.length > 1 ? `  [hot lines: ${f.hotLines.map((l) => `${l.line} ${pctBusy(l.ms)}%`).join(', ')}]` : '';
    out.push(`${String(i + 1).padStart(3)}  ${f.selfMs.toFixed(1).padStart(8)} ${pctBusy(f.selfMs).padStart(6)} ${pctBusy(f.totalMs).padStart(6)}  ${f.name}  —  ${f.location || '(vm)'}${lines}`);
  });
  const row = (f, i) => `${String(i + 1).padStart(3)}  ${f.selfMs.toFixed(1).padStart(8)} ${pctBusy(f.selfMs).padStart(6)} ${pctBusy(f.totalMs).padStart(6)}  ${f.name}  —  ${f.location}`;
  const js = s.functions.filter((f) => f.location !== '' && !f.location.startsWith('wasm:'));
  out.push('');
  out.push(`Top ${top} JavaScript functions by self time (native calls such as the socket writes above, GC and wasm left out):`);
  js.slice(0, top).forEach((f, i) => out.push(row(f, i)));
  const own = s.functions.filter((f) => f.group.startsWith('ballast')).sort((a, b) => b.totalMs - a.totalMs);
  if (own.length > 0) {
    out.push('');
    out.push(`Ballast's own functions by total time (self + callees; nested ones overlap):`);
    own.slice(0, top).forEach((f, i) => out.push(row(f, i)));
  }
  out.push('');
  out.push('Self time by where the code lives (% of busy time):');
  for (const g of s.groups.slice(0, options.groups ?? 20)) out.push(`  ${pctBusy(g.ms).padStart(5)}%  ${g.ms.toFixed(0).padStart(7)} ms  ${g.group}`);
  return out.join('\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const argv = process.argv.slice(2);
  const file = argv.find((a, i) => !a.startsWith('--') && !['--top', '--stacks'].includes(argv[i - 1]));
  const topIdx = argv.indexOf('--top');
  const top = topIdx !== -1 ? Number(argv[topIdx + 1]) : 15;
  const stacksIdx = argv.indexOf('--stacks');
  const stacksOf = stacksIdx !== -1 ? argv[stacksIdx + 1].split(',') : undefined;
  if (!file) {
    process.stderr.write('usage: node bench/profile-summary.mjs FILE.cpuprofile [--top N] [--stacks NAME,NAME]\n');
    process.exit(2);
  }
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const summary = summarizeProfile(profile, { root });
  process.stdout.write(`${formatSummary(summary, { top })}\n`);
  if (stacksOf) {
    process.stdout.write(`\nHeaviest stacks ending in ${stacksOf.join(' or ')} (leaf first):\n`);
    for (const st of summary.stacksFor(stacksOf)) process.stdout.write(`\n  ${st.ms.toFixed(1)} ms\n${st.frames.map((f) => `    ${f}`).join('\n')}\n`);
  }
}
