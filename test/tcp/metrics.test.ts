// The layer-4 metrics record into cells that the scrape reads: what a connection records must come out of
// /metrics in the same series a labelled prom-client metric would have used, across reloads too.
import { describe, expect, it } from 'vitest';
import { Metrics } from '../../src/admin/metrics.js';
import { TcpListenerMetrics } from '../../src/proxy/tcp/tcp-metrics.js';
import { parseConfig } from '../../src/config/load.js';
import { Upstream } from '../../src/upstream/upstream.js';
import { CONNECT_FAILURE } from '../../src/upstream/outcome.js';

/** A TCP upstream whose leases count their attempts into `metrics`, as Ballast builds it. */
function tcpUpstream(metrics: Metrics): Upstream {
  const parsed = parseConfig(
    `listeners: [{ name: db, protocol: tcp, listen: "127.0.0.1:0", upstream: pool }]
upstreams: [{ name: pool, servers: [{ address: "127.0.0.1:5432" }, { address: "127.0.0.1:5433" }] }]`,
    {},
  );
  if (!parsed.ok) throw new Error('bad test config');
  return new Upstream(parsed.config.upstreams[0]!, { clock: () => 0, random: () => 0, metrics });
}

async function scrape(metrics: Metrics): Promise<string> {
  return metrics.registry.metrics();
}

describe('TCP listener metrics', () => {
  it('moves what connections recorded into the exposition at each scrape, without counting anything twice', async () => {
    const metrics = new Metrics({ processMetrics: false });
    const m = new TcpListenerMetrics(metrics, 'db');
    m.opened();
    m.opened();
    const upstream = tcpUpstream(metrics);
    const [ok, failing] = upstream.hosts as [typeof upstream.hosts[0], typeof upstream.hosts[0]];
    const connected = upstream.lease(undefined, [], { preferred: ok })!;
    connected.report({ kind: 'connected', latencyMs: 1 });
    connected.release();
    upstream.lease(undefined, [], { preferred: failing })!.release(CONNECT_FAILURE);
    m.connectFailed('pool', '127.0.0.1:5433');
    let text = await scrape(metrics);
    expect(text).toContain('ballast_tcp_connections_total{listener="db"} 2');
    expect(text).toContain('ballast_tcp_active_connections{listener="db"} 2');
    expect(text).toContain('ballast_active_connections{listener="db"} 2');
    expect(text).toContain('ballast_upstream_attempts_total{upstream="pool",server="127.0.0.1:5432",outcome="connected"} 1');
    expect(text).toContain('ballast_upstream_attempts_total{upstream="pool",server="127.0.0.1:5433",outcome="connect-failure"} 1');
    expect(text).toContain('ballast_tcp_connect_failures_total{upstream="pool",server="127.0.0.1:5433"} 1');

    m.closed('done', 100, 2000, 0.05);
    m.refused('listener-limit');
    text = await scrape(metrics);
    expect(text).toContain('ballast_tcp_connections_total{listener="db"} 2');
    expect(text).toContain('ballast_tcp_active_connections{listener="db"} 1');
    expect(text).toContain('ballast_active_connections{listener="db"} 1');
    expect(text).toContain('ballast_tcp_connections_closed_total{listener="db",end="done"} 1');
    expect(text).toContain('ballast_tcp_connections_closed_total{listener="db",end="listener-limit"} 1');
    expect(text).toContain('ballast_tcp_bytes_total{listener="db",direction="in"} 100');
    expect(text).toContain('ballast_tcp_bytes_total{listener="db",direction="out"} 2000');
    expect(text).toContain('ballast_tcp_connection_duration_seconds_bucket{listener="db",le="0.01"} 0');
    expect(text).toContain('ballast_tcp_connection_duration_seconds_bucket{listener="db",le="0.1"} 1');
    expect(text).toContain('ballast_tcp_connection_duration_seconds_count{listener="db"} 1');
    // A third scrape with nothing new in between reads the same totals.
    expect(await scrape(metrics)).toBe(text);
  });

  it('keeps one series per listener name when a reload builds the listener again', async () => {
    const metrics = new Metrics({ processMetrics: false });
    const before = new TcpListenerMetrics(metrics, 'db');
    before.opened();
    before.opened();
    const after = new TcpListenerMetrics(metrics, 'db');
    after.opened();
    // A connection opened before the reload closes after it: the count still comes down to what is open.
    before.closed('done', 1, 1, 0.2);
    const text = await scrape(metrics);
    expect(text.match(/^ballast_tcp_connections_total\{listener="db"\} (\d+)$/m)?.[1]).toBe('3');
    expect(text.match(/^ballast_tcp_active_connections\{listener="db"\} (\d+)$/m)?.[1]).toBe('2');
    expect(text.match(/^ballast_tcp_connection_duration_seconds_count\{listener="db"\} (\d+)$/m)?.[1]).toBe('1');
  });
});
