/** What wrk printed, as numbers: shared by run.js and workers.mjs, which both drive it (and `times` for tls.mjs). */

/**
 * `seconds`: the measured duration asked for, used when wrk printed no total. `loadGenCpuMs` is wrk's own CPU when
 * the command ran under the shell's `times` (workers.mjs does), else NaN.
 */
export function parseWrk(text, seconds) {
  const unit = (v, u) => Number(v) * ({ us: 0.001, ms: 1, s: 1000, m: 60_000 }[u] ?? 1);
  const pct = (p) => {
    const m = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(text);
    return m ? unit(m[1], m[2]) : NaN;
  };
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m)/.exec(text);
  const requests = total ? Number(total[1]) : 0;
  const elapsed = total ? unit(total[2], total[3]) / 1000 : seconds;
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const non = /Non-2xx or 3xx responses: (\d+)/.exec(text);
  const transfer = /Transfer\/sec:\s+([\d.]+)(B|KB|MB|GB)/.exec(text);
  const bytes = transfer ? Number(transfer[1]) * { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 }[transfer[2]] : 0;
  const loadGenCpuMs = timesChildCpuMs(text);
  return {
    requests,
    seconds: elapsed,
    rps: requests / elapsed,
    p50: pct(50),
    p99: pct(99),
    // wrk counts a server's close after `Connection: close` as a read "error" only when it comes before a response;
    // connect/write errors are real failures.
    errors: sock ? Number(sock[1]) + Number(sock[2]) + Number(sock[3]) : 0,
    timeouts: sock ? Number(sock[4]) : 0,
    non2xx: non ? Number(non[1]) : 0,
    bytesPerSec: bytes,
    loadGenCpuMs,
  };
}

/**
 * The CPU (user + system, ms) of the children of `sh -c 'COMMAND; times'`, i.e. the load generator's, from the last
 * line of the shell's `times` (its own user and system time, then its children's); NaN when there is none.
 */
export function timesChildCpuMs(text) {
  const times = [...text.matchAll(/(\d+)m([\d.]+)s\s+(\d+)m([\d.]+)s/g)];
  const child = times[times.length - 1];
  return child ? (Number(child[1]) * 60 + Number(child[2]) + Number(child[3]) * 60 + Number(child[4])) * 1000 : NaN;
}
