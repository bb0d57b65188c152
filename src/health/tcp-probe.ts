/**
 * The tcp active probe: passes when a connection is established; then closes it at once. For a server reached over
 * TLS, established means the handshake completed with the traffic's TLS settings (certificate verified, SNI sent).
 */
import { connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { HealthCheckConfig } from '../config/schema.js';
import { ABORTED, failureOf, PASSED, TIMED_OUT, type ProbeResult, type ProbeTarget } from './probe.js';

export function tcpProbe(target: ProbeTarget, config: HealthCheckConfig, signal: AbortSignal): Promise<ProbeResult> {
  return new Promise<ProbeResult>((resolve) => {
    if (signal.aborted) {
      resolve(ABORTED);
      return;
    }
    let done = false;
    const tls = target.transport?.tlsOptions;
    const socket = tls === undefined ? connect({ host: target.host, port: target.port }) : tlsConnect({ ...tls, host: target.host, port: target.port });
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
    socket.once(tls === undefined ? 'connect' : 'secureConnect', () => finish(PASSED));
  });
}
