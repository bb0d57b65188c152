/**
 * deploy/grafana/ballast.json queries only what Ballast exports: every metric name in its PromQL (panels and
 * variables, `_bucket`/`_sum`/`_count` of a histogram included) is in the /metrics exposition of a running Ballast
 * after some traffic, and every label it selects or groups by is one those series carry.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { get, simpleConfig, startBallast, type TestBallast } from './helpers/ballast.js';
import { startOrigin, type Origin } from './helpers/origin.js';

interface Panel {
  type: string;
  title: string;
  id: number;
  targets?: { expr: string }[];
  panels?: Panel[];
}
interface Dashboard {
  uid: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query?: string | { query: string } }[] };
}

const dashboard = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'deploy', 'grafana', 'ballast.json'), 'utf8')) as Dashboard;
/** Labels Prometheus adds at scrape time, and a histogram's bucket bound. */
const ADDED_LABELS = new Set(['instance', 'job']);

function expressions(): string[] {
  const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
  const exprs = panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
  for (const v of dashboard.templating.list) {
    if (v.type !== 'query' || v.query === undefined) continue;
    exprs.push(typeof v.query === 'string' ? v.query : v.query.query);
  }
  return exprs;
}

interface Exposition {
  /** Names declared by `# TYPE name type`. */
  types: Map<string, string>;
  /** Sample names, with the label names their samples carry. */
  samples: Map<string, Set<string>>;
}

function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const samples = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1]!, type[2]!);
    if (line === '' || line.startsWith('#')) continue;
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? /.exec(line);
    if (!sample) continue;
    const labels = samples.get(sample[1]!) ?? new Set<string>();
    for (const m of (sample[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) labels.add(m[1]!);
    samples.set(sample[1]!, labels);
  }
  return { types, samples };
}

/** Whether `name` is exported: a sample, a declared metric (a counter not yet incremented), or a histogram's series. */
function exported(name: string, exposition: Exposition): boolean {
  if (exposition.samples.has(name) || exposition.types.has(name)) return true;
  const suffix = /^(.*)_(bucket|sum|count)$/.exec(name);
  return suffix !== null && ['histogram', 'summary'].includes(exposition.types.get(suffix[1]!) ?? '') && (suffix[2] !== 'bucket' || exposition.types.get(suffix[1]!) === 'histogram');
}

describe('the Grafana dashboard', () => {
  let origin: Origin;
  let b: TestBallast;
  let exposition: Exposition;

  beforeAll(async () => {
    origin = await startOrigin('o');
    b = await startBallast(
      simpleConfig([origin.address], `    health_check: { interval: 1s }
    outlier_detection: { consecutive_failures: 5 }
    limits: { max_requests: 100 }`, `    client: { rate_limit: { rate: 1, per: 1m, burst: 3 } }`),
    );
    // Traffic: answered requests (2xx), then refused ones (429), so the request, attempt and rate-limit series exist.
    for (let i = 0; i < 6; i++) await get(b.url(`/r${i}`));
    const res = await get(`http://127.0.0.1:${b.adminPort}/metrics`);
    expect(res.status).toBe(200);
    exposition = parseExposition(res.body);
  });
  afterAll(async () => {
    await b?.stop();
    await origin?.close();
  });

  it('is a dashboard with a uid, a Prometheus data source variable and panels with queries', () => {
    expect(dashboard.uid).toBe('ballast');
    expect(dashboard.templating.list.find((v) => v.name === 'datasource')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(expressions().length).toBeGreaterThanOrEqual(15);
  });

  it('queries the metrics the issue asks for', () => {
    const all = expressions().join('\n');
    for (const name of [
      'ballast_requests_total', 'ballast_request_duration_seconds_bucket', 'ballast_upstream_attempts_total', 'ballast_retries_total',
      'ballast_retries_skipped_total', 'ballast_outlier_ejections_total', 'ballast_upstream_panic', 'ballast_circuit_overflows_total',
      'ballast_active_connections', 'ballast_rate_limited_total',
    ]) expect(all).toContain(name);
    expect(all).toContain('histogram_quantile(0.99');
  });

  it('queries only metric names Ballast exports', () => {
    const names = new Set(expressions().flatMap((e) => [...e.matchAll(/\b(ballast_[a-zA-Z0-9_]+)/g)].map((m) => m[1]!)));
    expect(names.size).toBeGreaterThanOrEqual(12);
    // The traffic above must have made samples of the histogram, or its _bucket series would be checked on faith.
    expect(exposition.samples.has('ballast_request_duration_seconds_bucket')).toBe(true);
    expect([...names].filter((n) => !exported(n, exposition))).toEqual([]);
  });

  it('selects and groups by labels those series carry', () => {
    const problems: string[] = [];
    for (const expr of expressions()) {
      const metrics = [...expr.matchAll(/\b(ballast_[a-zA-Z0-9_]+)(\{[^}]*\})?/g)];
      for (const [, name, selector] of metrics) {
        const labels = exposition.samples.get(name!);
        if (labels === undefined) continue; // declared, no samples yet: its labels cannot be checked here
        for (const [, label] of (selector ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)) {
          if (!labels.has(label!) && !ADDED_LABELS.has(label!)) problems.push(`${name}{${label}} in ${expr}`);
        }
        for (const [, list] of expr.matchAll(/\bby \(([^)]*)\)/g)) {
          for (const label of list!.split(',').map((l) => l.trim())) {
            if (!labels.has(label) && !ADDED_LABELS.has(label)) problems.push(`${name} by (${label}) in ${expr}`);
          }
        }
      }
      const variable = /^label_values\((?:ballast_[a-zA-Z0-9_]+)(?:\{[^}]*\})?, *([a-zA-Z_]+)\)$/.exec(expr);
      if (variable && !ADDED_LABELS.has(variable[1]!) && !metrics.some(([, name]) => exposition.samples.get(name!)?.has(variable[1]!))) problems.push(`variable label ${variable[1]} in ${expr}`);
    }
    expect(problems).toEqual([]);
  });
});
