/** The tcp active probe: passes when a connection is established; then closes it at once. */
import { connect } from 'node:net';
import type { HealthCheckConfig } from '../config/schema.js';
import { ABORTED, failureOf, PASSED, TIMED_OUT, type ProbeResult, type ProbeTarget } from './probe.js';

export function tcpProbe(target: ProbeTarget, config: HealthCheckConfig, signal: AbortSignal): Promise<ProbeResult> {
  return new Promise<ProbeResult>((resolve) => {
    if (signal.aborted) {
      resolve(ABORTED);
      return;
    }
    let done = false;
    const socket = connect({ host: target.host, port: target.port });
    const finish = (result: ProbeResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve(result);
    };
    const onAbort = (): void => finish(ABORTED);
    const timer = setTimeout(() => finish(TIMED_OUT), config.timeout);
    timer.unref();
    signal.addEventListener('abort', onAbort, { once: true });
    socket.on('error', (err) => finish(failureOf(err)));
    socket.once('connect', () => finish(PASSED));
  });
}
