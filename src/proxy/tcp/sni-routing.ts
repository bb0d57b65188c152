/**
 * TLS passthrough routed by SNI, one connection's decision: read the ClientHello off the client socket without
 * answering it (preread.ts, client-hello.ts), pick the route for its server name (sni-router.ts), and put every
 * byte read back on the socket, so the server chosen receives the ClientHello exactly as the client sent it and
 * the TLS handshake is between the two of them.
 *
 * The order of choice: the route whose pattern matches the name (an exact name before a wildcard), else the
 * listener's `upstream`, else the connection is closed. A ClientHello without a server name, or one too large to
 * read it from, goes to the listener's `upstream` too, as NGINX (`ssl_preread` leaves `$ssl_preread_server_name`
 * empty) and HAProxy (`req.ssl_sni` fails, `default_backend` applies) do. Bytes that are not TLS, and a client that
 * has not sent its whole ClientHello within `preread_timeout`, are closed: a passthrough listener has nothing to say
 * to them, and waiting longer only holds a connection open for a slowloris.
 */
import type { Socket } from 'node:net';
import { ClientHelloReader, type ClientHelloResult } from './client-hello.js';
import { preread } from './preread.js';
import type { SniRouter } from './sni-router.js';
import type { EndReason, SniResult } from './tcp-metrics.js';

export interface SniRouting<T> {
  readonly router: SniRouter<T>;
  /** The listener's `upstream`: where a name no route matches goes, or a ClientHello without one. */
  readonly fallback: T | undefined;
  /** `preread_timeout`: the longest wait for the whole ClientHello. */
  readonly timeoutMs: number;
}

export type SniDecision<T> =
  | { readonly kind: 'route'; readonly target: T; readonly result: SniResult; readonly name: string | undefined; readonly detail: string | undefined }
  /** Close the connection; `result` is undefined when the client left first (nothing was routed). */
  | { readonly kind: 'close'; readonly end: EndReason; readonly result: SniResult | undefined; readonly name: string | undefined; readonly detail: string };

/** Never rejects. On `route`, the socket is paused with every byte read put back; on `close`, the caller closes it. */
export async function routeBySni<T>(client: Socket, routing: SniRouting<T>): Promise<SniDecision<T>> {
  const reader = new ClientHelloReader();
  const read = await preread(client, (chunk): Exclude<ClientHelloResult, { status: 'incomplete' }> | undefined => {
    const result = reader.push(chunk);
    return result.status === 'incomplete' ? undefined : result;
  }, routing.timeoutMs);
  if (read.end === 'closed') return { kind: 'close', end: 'client-gone', result: undefined, name: undefined, detail: 'closed before a whole ClientHello' };
  if (read.end === 'timeout') {
    return { kind: 'close', end: 'preread-timeout', result: 'timeout', name: undefined, detail: `no whole ClientHello within ${routing.timeoutMs} ms (${read.bytes.length} bytes)` };
  }
  const hello = read.verdict;
  if (hello.status === 'not-tls') return { kind: 'close', end: 'not-tls', result: 'not_tls', name: undefined, detail: hello.reason };

  const name = hello.status === 'sni' ? hello.name : undefined;
  const matched = name === undefined ? undefined : routing.router.match(name);
  const result: SniResult = matched !== undefined ? 'matched' : name === undefined ? 'no_sni' : routing.fallback !== undefined ? 'default' : 'no_match';
  const target = matched ?? routing.fallback;
  const detail = hello.status === 'sni' ? undefined : hello.reason;
  if (target === undefined) {
    return { kind: 'close', end: 'no-route', result, name, detail: detail ?? `no route for server name ${name} and no default upstream` };
  }
  client.unshift(read.bytes);
  return { kind: 'route', target, result, name, detail };
}
