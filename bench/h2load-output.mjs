/** What h2load (nghttp2) printed, as numbers: used by tls.mjs, which drives it for HTTP/2, HTTPS/1.1 and handshakes. */
import { timesChildCpuMs } from './wrk-output.mjs';

const UNIT_MS = { us: 0.001, ms: 1, s: 1000, m: 60_000 };

/**
 * `text` is h2load's output, run under `sh -c 'h2load …; times'` so that `loadGenCpuMs` (h2load's own CPU) is known.
 * `rps` is the rate h2load printed (responses over the measured duration); `requests` the 2xx responses, the count
 * CPU per request is divided by. The negotiated TLS version, cipher, key exchange and ALPN protocol are those of the
 * first connection (h2load prints them once).
 */
export function parseH2load(text) {
  const finished = /finished in ([\d.]+)(us|ms|s|m), ([\d.]+) req\/s/.exec(text);
  const req = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(text);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(text);
  const timing = /time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)/.exec(text);
  const field = (name) => new RegExp(`^${name}: (.+)$`, 'm').exec(text)?.[1].trim();
  const ok = codes ? Number(codes[1]) : 0;
  return {
    seconds: finished ? (Number(finished[1]) * UNIT_MS[finished[2]]) / 1000 : NaN,
    rps: finished ? Number(finished[3]) : NaN,
    requests: ok,
    done: req ? Number(req[3]) : 0,
    // Requests h2load gave up on (a reset stream, a closed connection) and answers that were not 2xx.
    failed: req ? Number(req[5]) : 0,
    non2xx: codes ? Number(codes[2]) + Number(codes[3]) + Number(codes[4]) : 0,
    timeouts: req ? Number(req[7]) : 0,
    meanMs: timing ? Number(timing[5]) * UNIT_MS[timing[6]] : NaN,
    maxMs: timing ? Number(timing[3]) * UNIT_MS[timing[4]] : NaN,
    tls: { protocol: field('TLS Protocol'), cipher: field('Cipher'), key: field('Server Temp Key'), alpn: field('Application protocol') },
    loadGenCpuMs: timesChildCpuMs(text),
  };
}
