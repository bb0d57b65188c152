/**
 * CPU accounting from Linux /proc, shared by the benchmark drivers (run.js, workers.mjs, tls.mjs): what a process
 * under test spent, and whether anything outside the benchmark competed for the cores during a run (other work on a
 * shared machine makes a run meaningless). Without /proc the figures are NaN and the quiet wait returns at once.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';

export const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100;
export const HAVE_PROC = existsSync('/proc/stat');

/** A run during which processes outside the benchmark used more than this many cores is marked †. */
export const FOREIGN_LIMIT = 0.15;

/** Parent pid, and utime + stime (all threads) in clock ticks and in ms, from /proc/PID/stat; undefined when gone. */
export function procStat(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(f[11]) + Number(f[12]);
    return { ppid: Number(f[1]), ticks, ms: (ticks * 1000) / CLK_TCK };
  } catch {
    return undefined;
  }
}

/** utime + stime of a process in clock ticks; 0 when it is gone. */
export function ticksOf(pid) {
  return procStat(pid)?.ticks ?? 0;
}

/** CPU ms of a process and its direct children (NGINX's worker, for instance). */
export function treeCpuMs(pid) {
  if (!HAVE_PROC || pid === undefined) return NaN;
  let ms = procStat(pid)?.ms ?? 0;
  for (const d of readdirSync('/proc')) {
    if (d.charCodeAt(0) < 48 || d.charCodeAt(0) > 57) continue;
    const st = procStat(d);
    if (st !== undefined && st.ppid === pid) ms += st.ms;
  }
  return ms;
}

/** `pid` and all its descendants (cluster workers, NGINX's workers), from /proc/PID/task/PID/children. */
export function processTree(pid) {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    try {
      const children = readFileSync(`/proc/${out[i]}/task/${out[i]}/children`, 'utf8').trim();
      if (children) out.push(...children.split(/\s+/).map(Number));
    } catch {
      // gone
    }
  }
  return out;
}

/** user + nice + system of all CPUs, in ms: process time (interrupt, softirq and steal time are not any process's). */
export function systemBusyMs() {
  if (!HAVE_PROC) return NaN;
  const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).slice(1, 9).map(Number);
  return ((f[0] + f[1] + f[2]) * 1000) / CLK_TCK;
}

/** This process's own CPU, in ms. */
export function selfCpuMs() {
  const self = process.cpuUsage();
  return (self.user + self.system) / 1000;
}

/**
 * Waits (up to `seconds`) until processes outside this benchmark use less than `limit` cores over a second. `oursMs`
 * is the CPU of the benchmark's own processes (this one included), in ms; `log` says when it waits and how it ended.
 */
export async function waitForQuiet({ seconds, oursMs, limit = FOREIGN_LIMIT, log = () => {} }) {
  if (seconds <= 0 || !HAVE_PROC) return;
  const until = Date.now() + seconds * 1000;
  let waited = false;
  for (;;) {
    const s0 = systemBusyMs();
    const o0 = oursMs();
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, 1000));
    const foreign = (systemBusyMs() - s0 - (oursMs() - o0)) / (performance.now() - t0);
    if (foreign < limit) {
      if (waited) log('  (machine quiet again)');
      return;
    }
    if (Date.now() > until) {
      log(`  (still ${foreign.toFixed(2)} cores of other work after ${seconds}s: measuring anyway)`);
      return;
    }
    if (!waited) log(`  (other work is using ${foreign.toFixed(2)} cores: waiting up to ${seconds}s for quiet)`);
    waited = true;
  }
}
