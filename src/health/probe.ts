/**
 * One active probe of one server: the contract the http and tcp probes share.
 *
 * A probe never throws and never rejects: every way it can end is a ProbeResult. It uses its own connection, never
 * the data path's pool, so a probe neither waits behind proxied requests nor keeps a broken pooled socket alive, and
 * it closes that connection when it is done. It is bounded by `timeout` from the start of the connect.
 */
import { isTlsHandshakeError } from '../util/tls-errors.js';
import type { Transport } from '../upstream/transport.js';

/** Why a probe failed; bounded, so it can be a metric label. */
export type ProbeFailure = 'status' | 'timeout' | 'connect' | 'error';

export type ProbeResult = { readonly ok: true } | { readonly ok: false; readonly reason: ProbeFailure; readonly detail: string };

export interface ProbeTarget {
  readonly host: string;
  readonly port: number;
  /** "host:port" as configured, the default Host header of an http probe. */
  readonly address: string;
  /** How traffic reaches the server (TLS, HTTP/2): probes go the same way. Absent: clear-text HTTP/1.1. */
  readonly transport?: Transport;
}

export type Probe = (target: ProbeTarget, signal: AbortSignal) => Promise<ProbeResult>;

/** Errors that mean nothing listens there (or the route to it is gone), as opposed to a broken exchange. */
const CONNECT_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ENOTFOUND', 'EAI_AGAIN']);

export function failureOf(err: Error & { code?: string }): ProbeResult {
  const code = err.code ?? err.name;
  return { ok: false, reason: CONNECT_CODES.has(code) || isTlsHandshakeError(err) ? 'connect' : 'error', detail: code === err.message ? code : `${code}: ${err.message}` };
}

export const TIMED_OUT: ProbeResult = Object.freeze({ ok: false, reason: 'timeout', detail: 'no answer within the timeout' });
export const ABORTED: ProbeResult = Object.freeze({ ok: false, reason: 'error', detail: 'probe stopped' });
export const PASSED: ProbeResult = Object.freeze({ ok: true });
