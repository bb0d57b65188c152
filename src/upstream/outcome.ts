/**
 * What the data path reports after each attempt to a server, through one sink (Envoy `putResult`): the lease's
 * `release` (lease.ts). Local-origin failures (the connection never carried a response) stay apart from upstream
 * 5xx answers, so outlier detection can count gateway failures separately from consecutive 5xx.
 *
 * `connected` is layer 4's success: a TCP connection opened, with the only latency layer 4 has (the connect time).
 * Failures after a TCP connection opened are not reported: a reset mid-stream is as often the client's protocol as
 * the server's health.
 */
export type Outcome =
  | { readonly kind: 'connect-failure' }
  | { readonly kind: 'timeout' }
  | { readonly kind: 'reset' }
  | { readonly kind: 'connected'; readonly latencyMs: number }
  | { readonly kind: 'response'; readonly status: number; readonly latencyMs: number };

export const CONNECT_FAILURE: Outcome = Object.freeze({ kind: 'connect-failure' });
export const TIMEOUT: Outcome = Object.freeze({ kind: 'timeout' });
export const RESET: Outcome = Object.freeze({ kind: 'reset' });

/**
 * The label value for `ballast_upstream_attempts_total{outcome}`: bounded, never a raw status. An attempt given up
 * because the client left says nothing of the server and has no Outcome: it is `cancelled`.
 */
export function outcomeLabel(o: Outcome | undefined): string {
  if (o === undefined) return 'cancelled';
  if (o.kind !== 'response') return o.kind;
  return o.status >= 500 ? '5xx' : o.status >= 400 ? '4xx' : o.status >= 300 ? '3xx' : o.status >= 200 ? '2xx' : '1xx';
}
