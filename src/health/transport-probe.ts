/**
 * The http active probe of a server reached over TLS or HTTP/2 (transport.ts): `method path` on a one-off undici
 * Client built from the server's Transport, so the probe offers the same SNI, trusts the same CA, presents the same
 * client certificate and speaks the same protocol as the proxied traffic. As with the clear-text probe (http-probe.ts),
 * the verdict is taken on the response head and the connection is closed at once.
 */
import { Client } from 'undici';
import type { HealthCheckConfig } from '../config/schema.js';
import type { Transport } from '../upstream/transport.js';
import { ABORTED, failureOf, PASSED, TIMED_OUT, type ProbeResult, type ProbeTarget } from './probe.js';

export async function transportProbe(target: ProbeTarget & { transport: Transport }, config: HealthCheckConfig, signal: AbortSignal): Promise<ProbeResult> {
  if (signal.aborted) return ABORTED;
  const transport = target.transport;
  const client = new Client(transport.origin, {
    ...transport.clientOptions(),
    // One request, then the connection closes (HTTP/1.1); HTTP/2 has no Connection: close, the client is destroyed.
    pipelining: transport.http2 ? 1 : 0,
    headersTimeout: config.timeout,
    bodyTimeout: config.timeout,
  });
  client.on('connectionError', noop);
  const ended = new AbortController();
  let why: ProbeResult | undefined;
  const stop = (result: ProbeResult): void => {
    why ??= result;
    ended.abort();
  };
  const timer = setTimeout(stop, config.timeout, TIMED_OUT);
  timer.unref();
  const onAbort = (): void => stop(ABORTED);
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    const res = await client.request({
      path: config.path,
      method: config.method,
      headers: { host: config.host ?? target.address, 'user-agent': 'ballast-health-check' },
      servername: transport.dispatchServername,
      signal: ended.signal,
    } as Parameters<Client['request']>[0]);
    res.body.on('error', noop);
    res.body.destroy();
    const status = res.statusCode;
    const expected = config.expected_status.some(([lo, hi]) => status >= lo && status <= hi);
    return expected ? PASSED : { ok: false, reason: 'status', detail: `status ${status}` };
  } catch (err) {
    return why ?? failureOf(err as Error);
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', onAbort);
    client.destroy().catch(noop);
  }
}

function noop(): void {}
