/**
 * The http active probe: `method path` with the configured Host header on a fresh connection (`agent: false`,
 * `Connection: close`), passing when the status is in `expected_status`. The verdict is taken on the response head;
 * the body is not awaited, so an endless health page cannot hold the probe open.
 */
import { request } from 'node:http';
import type { HealthCheckConfig } from '../config/schema.js';
import { ABORTED, failureOf, PASSED, TIMED_OUT, type ProbeResult, type ProbeTarget } from './probe.js';
import { transportProbe } from './transport-probe.js';

export function httpProbe(target: ProbeTarget, config: HealthCheckConfig, signal: AbortSignal): Promise<ProbeResult> {
  const transport = target.transport;
  // Over TLS or HTTP/2, the probe goes the way the traffic does (transport-probe.ts).
  if (transport !== undefined && (transport.tls || transport.http2)) return transportProbe({ ...target, transport }, config, signal);
  return new Promise<ProbeResult>((resolve) => {
    if (signal.aborted) {
      resolve(ABORTED);
      return;
    }
    let done = false;
    let req: ReturnType<typeof request>;
    try {
      req = request({
        host: target.host,
        port: target.port,
        method: config.method,
        path: config.path,
        agent: false,
        headers: { host: config.host ?? target.address, 'user-agent': 'ballast-health-check', connection: 'close' },
      });
    } catch (err) {
      // node:http refuses some values synchronously (a path with spaces, a bad header): a failed probe, not a crash.
      resolve(failureOf(err as Error));
      return;
    }
    const finish = (result: ProbeResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      // Ends the exchange and its socket whatever state it is in; later errors land in the listener below.
      req.destroy();
      resolve(result);
    };
    const onAbort = (): void => finish(ABORTED);
    const timer = setTimeout(() => finish(TIMED_OUT), config.timeout);
    timer.unref();
    signal.addEventListener('abort', onAbort, { once: true });
    // Stays attached after the verdict: a destroyed request may still emit an error, which must not go unhandled.
    req.on('error', (err) => finish(failureOf(err)));
    req.on('response', (res) => {
      res.on('error', () => {});
      res.resume();
      const status = res.statusCode ?? 0;
      const expected = config.expected_status.some(([lo, hi]) => status >= lo && status <= hi);
      finish(expected ? PASSED : { ok: false, reason: 'status', detail: `status ${status}` });
    });
    req.end();
  });
}
