/** The figures of bench/tls.mjs: medians of the rounds, ratios to NGINX, the table, and its RESULTS.md section. */
import { FOREIGN_LIMIT } from './proc-cpu.mjs';

/**
 * One load's summary: per proxy (Ballast first, then NGINX) the median of its rounds, each column on its own, and
 * Ballast's figures over NGINX's: of the medians, and round by round (the two measured back to back).
 */
export function summarise(load, pair, runs, command) {
  const rows = pair.map((p) => {
    const rs = runs.get(p.key) ?? [];
    const med = (k) => median(rs.map((r) => r[k]));
    return {
      key: p.key,
      label: p.label,
      resumed: p.resumed,
      rps: med('rps'),
      cpuUsPerReq: med('cpuUsPerReq'),
      proxyCores: med('proxyCores'),
      loadGenCores: med('loadGenCores'),
      originCores: med('originCores'),
      foreignCores: med('foreignCores'),
      meanMs: med('meanMs'),
      failed: rs.reduce((a, r) => a + r.failed + r.non2xx, 0),
      disturbedRounds: rs.filter((r) => r.foreignCores > FOREIGN_LIMIT).length,
      tls: rs[0]?.tls,
      rounds: rs.map((r) => ({ rps: Math.round(r.rps), requests: r.requests, cpuUsPerReq: round(r.cpuUsPerReq, 1), proxyCores: round(r.proxyCores, 3), loadGenCores: round(r.loadGenCores, 3), originCores: round(r.originCores, 3), otherCores: round(r.foreignCores, 3), meanMs: round(r.meanMs, 3), failed: r.failed + r.non2xx, ...(r.count === undefined ? {} : { count: r.count }) })),
    };
  });
  const [ballast, nginx] = rows;
  const paired = (k) => ballast.rounds.map((r, i) => round(r[k] / nginx.rounds[i]?.[k], 3)).filter(Number.isFinite);
  return {
    load: load.name,
    title: load.title,
    command,
    goal: load.goal,
    rows,
    ratio: { rps: ballast.rps / nginx.rps, cpuUsPerReq: ballast.cpuUsPerReq / nginx.cpuUsPerReq, rpsByRound: paired('rps'), cpuUsPerReqByRound: paired('cpuUsPerReq') },
  };
}

export function renderTable(summary) {
  const head = ['load', 'proxy', 'req/s', 'req/s ÷ NGINX', 'CPU µs/req', 'CPU/req ÷ NGINX', 'proxy cores', 'h2load cores', 'origin cores', 'other cores', 'mean ms', 'failed', 'negotiated'];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_h, i) => (i < 2 || i === head.length - 1 ? ' --- ' : ' ---: ')).join('|')}|`];
  for (const s of summary) {
    s.rows.forEach((r, i) => {
      const own = i === 0;
      const dagger = r.disturbedRounds > 0 ? ` (${r.disturbedRounds}†)` : '';
      const tls = r.tls === undefined ? '–' : `${r.tls.protocol ?? '?'} ${r.tls.cipher ?? '?'}, ${(r.tls.key ?? '?').replace(/ \d+ bits$/, '')}, ${r.tls.alpn ?? '?'}${s.load.startsWith('hs-') ? `, ${r.resumed ? 'resumed' : 'full handshake'}` : ''}`;
      lines.push(
        `| ${own ? s.load : ''} | ${r.label} | ${fmtInt(r.rps)} | ${own ? `**${fmt(s.ratio.rps, 2)}×** (${s.ratio.rpsByRound.map((x) => fmt(x, 2)).join(', ')})` : ''} | ${fmt(r.cpuUsPerReq, 1)} | ${own ? `${fmt(s.ratio.cpuUsPerReq, 2)}× (${s.ratio.cpuUsPerReqByRound.map((x) => fmt(x, 2)).join(', ')})` : ''} | ${fmt(r.proxyCores, 2)} | ${fmt(r.loadGenCores, 2)} | ${fmt(r.originCores, 2)} | ${fmt(r.foreignCores, 2)}${dagger} | ${fmt(r.meanMs, 2)} | ${r.failed} | ${tls} |`,
      );
    });
  }
  const goals = summary.filter((s) => s.goal !== undefined).map((s) => `${s.load}: Ballast ${fmt(s.ratio.rps, 2)}× NGINX's req/s (goal ≥ ${s.goal}×: ${s.ratio.rps >= s.goal ? 'met' : 'not met'})`);
  return [
    lines.join('\n'),
    '',
    `Medians of the rounds, each column on its own; in brackets, Ballast over NGINX round by round (the two measured back to back). "CPU µs/req": user + system time of all the proxy's processes over the measured run per 2xx answer; "cores": CPU time over wall time, per process group ("other": processes outside the benchmark; † rounds where that exceeded ${FOREIGN_LIMIT}). "mean ms": h2load's mean time per request. "failed": requests that failed or were not answered 2xx, over all rounds.`,
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
    `- TLS 1.3 only on both, one ECDSA P-256 certificate (openssl), each server's default suites and curves: the "negotiated" column is what h2load reported. Resumption off (\`hs-full\`): NGINX \`ssl_session_tickets off\`, Ballast under an OPENSSL_CONF with \`Options = -SessionTicket\` (it has no setting of its own); a probe checked each server resumed, or did not, as meant before it was measured.`,
    `- ${s.rounds} rounds of ${s.duration}s per load and proxy (the two alternating in order), each after ${s.warmup}s of the same load (a ${s.clients * 50}-connection run for the handshake loads, which also sets their request count to about ${s.duration}s' worth); every proxy got ${s.prewarm}s of each load once after it started.`,
    '',
    'Loads (URL is the proxy):',
    '',
    ...report.loads.map((l) => `- \`${l.load}\` (${l.title}): \`${l.command}\``),
    '',
    table,
  ].join('\n');
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
