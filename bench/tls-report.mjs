/** The figures of bench/tls.mjs: medians of the rounds, ratios to NGINX, the table, and its RESULTS.md section. */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { FOREIGN_LIMIT } from './proc-cpu.mjs';

/**
 * One load's summary: per proxy (Ballast first, then NGINX) the median of its rounds, each column on its own, over
 * the rounds other work left alone during both proxies' runs (all of them when it disturbed every pair); and Ballast's figures over NGINX's, of
 * the medians and round by round (the two measured back to back). `perCore` is what one core fully busy with the
 * proxy would serve at the CPU per request measured (1,000,000 µs ÷ µs per request): the comparison "on one core"
 * that holds when a proxy's req/s is capped by the load generator's core rather than its own.
 */
export function summarise(load, pair, runs, command) {
  const quiet = (r) => !(r.foreignCores > FOREIGN_LIMIT);
  // Rounds are counted for both proxies or for neither, so that the ratios compare like with like.
  const runsOf = pair.map((p) => runs.get(p.key) ?? []);
  const n = Math.min(...runsOf.map((rs) => rs.length));
  const bothQuiet = [...Array(n).keys()].filter((i) => runsOf.every((rs) => quiet(rs[i])));
  const countedRounds = bothQuiet.length > 0 ? bothQuiet : [...Array(n).keys()];
  const rows = pair.map((p, k) => {
    const rs = runsOf[k];
    const counted = countedRounds.map((i) => rs[i]);
    const med = (k) => median(counted.map((r) => r[k]));
    return {
      key: p.key,
      label: p.label,
      resumed: p.resumed,
      rps: med('rps'),
      cpuUsPerReq: med('cpuUsPerReq'),
      perCore: 1e6 / med('cpuUsPerReq'),
      proxyCores: med('proxyCores'),
      loadGenCores: med('loadGenCores'),
      originCores: med('originCores'),
      loadCoreBusy: median(counted.map((r) => r.loadGenCores + r.originCores)),
      foreignCores: med('foreignCores'),
      meanMs: med('meanMs'),
      failed: rs.reduce((a, r) => a + r.failed + r.non2xx, 0),
      countedRounds: counted.length,
      disturbedRounds: rs.filter((r) => !quiet(r)).length,
      tls: rs[0]?.tls,
      rounds: rs.map((r) => ({ rps: Math.round(r.rps), requests: r.requests, cpuUsPerReq: round(r.cpuUsPerReq, 1), proxyCores: round(r.proxyCores, 3), loadGenCores: round(r.loadGenCores, 3), originCores: round(r.originCores, 3), otherCores: round(r.foreignCores, 3), disturbed: !quiet(r), meanMs: round(r.meanMs, 3), failed: r.failed + r.non2xx, ...(r.count === undefined ? {} : { count: r.count }) })),
    };
  });
  const [ballast, nginx, reference] = rows;
  const byRound = (f, other = nginx) => ballast.rounds.map((b, i) => (other.rounds[i] === undefined ? null : { ratio: round(f(b, other.rounds[i]), 3), disturbed: b.disturbed || other.rounds[i].disturbed })).filter((x) => x !== null);
  return {
    load: load.name,
    title: load.title,
    command,
    goal: load.goal,
    rows,
    ratio: {
      rps: ballast.rps / nginx.rps,
      cpuUsPerReq: ballast.cpuUsPerReq / nginx.cpuUsPerReq,
      perCore: ballast.perCore / nginx.perCore,
      rpsByRound: byRound((b, n) => b.rps / n.rps),
      perCoreByRound: byRound((b, n) => n.cpuUsPerReq / b.cpuUsPerReq),
    },
    // Ballast against the reference (the minimal proxy of the same design), when one was measured under this load.
    ...(reference === undefined ? {} : { reference: { label: reference.label, perCore: ballast.perCore / reference.perCore, perCoreByRound: byRound((b, r) => r.cpuUsPerReq / b.cpuUsPerReq, reference) } }),
  };
}

export function renderTable(summary) {
  const head = ['load', 'proxy', 'req/s', 'req/s ÷ NGINX', 'CPU µs/req', 'req/s per core', 'per core ÷ NGINX', 'proxy cores', 'h2load + origin cores', 'other cores', 'mean ms', 'failed', 'negotiated'];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_h, i) => (i < 2 || i === head.length - 1 ? ' --- ' : ' ---: ')).join('|')}|`];
  const rounds = (xs) => xs.map((x) => `${fmt(x.ratio, 2)}${x.disturbed ? '†' : ''}`).join(', ');
  for (const s of summary) {
    s.rows.forEach((r, i) => {
      const own = i === 0;
      // A reference row gets its own ratios to NGINX, plain: they are not Ballast's.
      const versus = (k) => (i >= 2 ? `${fmt(r[k] / s.rows[1][k], 2)}×` : '');
      const dagger = r.disturbedRounds > 0 ? ` (${r.disturbedRounds}†)` : '';
      const tls = r.tls === undefined ? '–' : `${r.tls.protocol ?? '?'} ${r.tls.cipher ?? '?'}, ${(r.tls.key ?? '?').replace(/ \d+ bits$/, '')}, ${r.tls.alpn ?? '?'}${s.load.startsWith('hs-') ? `, ${r.resumed ? 'resumed' : 'full handshake'}` : ''}`;
      lines.push(
        `| ${own ? s.load : ''} | ${r.label} | ${fmtInt(r.rps)} | ${own ? `**${fmt(s.ratio.rps, 2)}×** (${rounds(s.ratio.rpsByRound)})` : versus('rps')} | ${fmt(r.cpuUsPerReq, 1)} | ${fmtInt(r.perCore)} | ${own ? `**${fmt(s.ratio.perCore, 2)}×** (${rounds(s.ratio.perCoreByRound)})` : versus('perCore')} | ${fmt(r.proxyCores, 2)} | ${fmt(r.loadCoreBusy, 2)} | ${fmt(r.foreignCores, 2)}${dagger} | ${fmt(r.meanMs, 2)} | ${r.failed} | ${tls} |`,
      );
    });
  }
  const references = summary.filter((s) => s.reference !== undefined).map((s) => `${s.load}: Ballast ${fmt(s.reference.perCore, 2)}× the ${s.reference.label} per core (${rounds(s.reference.perCoreByRound)})`);
  const goals = summary.filter((s) => s.goal !== undefined).map((s) => `${s.load}: Ballast ${fmt(s.ratio.rps, 2)}× NGINX's req/s as measured, ${fmt(s.ratio.perCore, 2)}× per core (goal ≥ ${s.goal}×: ${s.ratio.rps >= s.goal ? 'met' : 'not met'} as measured, ${s.ratio.perCore >= s.goal ? 'met' : 'not met'} per core)`);
  return [
    lines.join('\n'),
    '',
    `Medians of the rounds in which other work disturbed neither proxy (all of them if it disturbed every pair), each column on its own; in brackets, Ballast over NGINX round by round (the two measured back to back; † a round other work disturbed). "CPU µs/req": user + system time of all the proxy's processes over the measured run, per 2xx answer. "req/s per core": 1,000,000 ÷ CPU µs/req, what one core fully busy with the proxy would serve: the fair "one core" comparison when a proxy's req/s is capped elsewhere (look at "h2load + origin cores": near 1.0 means the load generator's core was the limit, not the proxy's). "cores": CPU time over wall time ("other": processes outside the benchmark; † rounds where that exceeded ${FOREIGN_LIMIT}). "mean ms": h2load's mean time per request. "failed": requests that failed or were not answered 2xx, over all rounds.`,
    ...(references.length > 0 ? ['', `Against the reference, the same design with nothing of Ballast's own (round by round in brackets): ${references.join('; ')}.`] : []),
    ...(goals.length > 0 ? ['', `Goals (reported, not asserted): ${goals.join('; ')}.`] : []),
  ].join('\n');
}

/** The TLS section of bench/RESULTS.md. */
export function renderSection(report, table) {
  const { machine: m, versions: v, settings: s } = report;
  const env = Object.entries(process.env).filter(([k]) => k.startsWith('BENCH_')).map(([k, x]) => `${k}=${x} `).sort().join('');
  return [
    '## TLS termination: Ballast against NGINX (HTTP/2, HTTPS/1.1, handshakes)',
    '',
    `\`${env}node bench/tls.mjs\` on ${report.date.slice(0, 10)}:`,
    '',
    `- Machine: ${m.cpu} × ${m.cores}, ${m.memoryGiB} GiB, ${m.os}`,
    `- Ballast ${v.ballast} from the CLI on ${v.node}; NGINX ${v.nginx}; load from ${v.h2load} (${v.openssl})`,
    `- ${s.pinned ? `Pinned with taskset: the proxy under test on CPU ${s.pinned.proxy} (all its processes and threads), h2load and the origin on CPU ${s.pinned.loadAndOrigin}` : 'No CPU pinning'}. One Ballast process (\`workers: 1\`, access log off), NGINX \`worker_processes 1\`; the origin is one NGINX worker answering "hello" itself, the same for both, kept alive by both.`,
    `- TLS 1.3 only on both, one ECDSA P-256 certificate (openssl), each server's default suites and curves; h2load offers the TLS 1.3 suites in Node's default order, since Node picks by its own order and NGINX by the client's: both then negotiate the same suite (the "negotiated" column is what h2load reported). Resumption off (\`hs-full\`): NGINX \`ssl_session_tickets off\`, Ballast under an OPENSSL_CONF with \`Options = -SessionTicket\` (it has no setting of its own); a probe checked each server resumed, or did not, as meant before it was measured.`,
    `- ${s.rounds} rounds of ${s.duration}s per load and proxy (the two alternating in order), each after ${s.warmup}s of the same load (a ${s.clients * 50}-connection run for the handshake loads, which also sets their request count to about ${s.duration}s' worth); every proxy got ${s.prewarm}s of each load once after it started.`,
    '',
    'Loads (URL is the proxy):',
    '',
    ...report.loads.map((l) => `- \`${l.load}\` (${l.title}): \`${l.command}\``),
    '',
    table,
  ].join('\n');
}

/** Replace (or append) a section of bench/RESULTS.md between its two markers: the TLS one unless named otherwise. */
export function writeSection(file, section, name = 'tls', writer = 'bench/tls.mjs') {
  const begin = `<!-- ${name}: written by ${writer} -->`;
  const end = `<!-- /${name} -->`;
  const block = `${begin}\n${section}\n${end}`;
  const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const at = text.indexOf(begin);
  const until = text.indexOf(end);
  writeFileSync(file, at >= 0 && until > at ? text.slice(0, at) + block + text.slice(until + end.length) : `${text.trimEnd()}\n\n${block}\n`);
}

function median(xs) {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function round(x, digits) {
  const f = 10 ** digits;
  return Number.isFinite(x) ? Math.round(x * f) / f : null;
}

function fmt(x, digits) {
  return Number.isFinite(x) ? x.toFixed(digits) : '—';
}

function fmtInt(x) {
  return Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '—';
}
