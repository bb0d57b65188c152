/**
 * How Ballast talks to one server: clear text or TLS (`tls`), HTTP/1.1 or HTTP/2 (`protocol`). The proxied traffic
 * (the server's connection pool, host.ts) and the active health checks (health/) are built from the same Transport,
 * so a probe reaches a server exactly as a request does: same SNI, same CA, same client certificate, same protocol.
 *
 * - TLS: node:tls options (`ca`, `cert`, `key`, `rejectUnauthorized`, `servername`).
 * - HTTP/2 over TLS: ALPN h2, and nothing else: the traffic goes over node:http2 sessions (http2-pool.ts), which
 *   offer h2 alone; the probe's undici connector offers h2 and http/1.1, so it refuses a connection where the server
 *   chose http/1.1 (a server the traffic could not reach must not pass its health check).
 * - HTTP/2 in clear text: h2c with prior knowledge (RFC 9113 §3.3; undici `useH2c` for the probe): the connection
 *   starts with the HTTP/2 preface, no `Upgrade: h2c` round trip (RFC 9113 §3.1 deprecates it).
 *
 * SNI is fixed per server. undici would otherwise take it from each request's Host header (and close the connection
 * whenever it changes): a proxy forwards its clients' Host, which says nothing about the name the origin's
 * certificate holds. So every dispatch names the server's SNI (`servername`) and the connector sends the configured
 * one, or none for an IP address (RFC 6066 §3).
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import type { ConnectionOptions, TLSSocket } from 'node:tls';
import { buildConnector, type Pool } from 'undici';
import type { UpstreamConfig } from '../config/schema.js';
import type { HostPort } from '../config/values.js';

export class Transport {
  /** `http://host:port` or `https://host:port`, the origin of the server's pool. */
  readonly origin: string;
  readonly tls: boolean;
  readonly http2: boolean;
  /** SNI sent, and the name verified (undefined: none sent, the certificate is checked against the IP address). */
  readonly servername: string | undefined;
  /**
   * What undici keys a pooled connection by (the dispatch option `servername`): constant per server, so no request's
   * Host header makes undici reconnect. Not what goes on the wire: that is `servername`.
   */
  readonly dispatchServername: string;
  /** node:tls options; undefined in clear text. */
  readonly tlsOptions: Readonly<ConnectionOptions> | undefined;
  /** Equal for two servers reached the same way; a reload that changes it gives the server fresh connections and health. */
  readonly identity: string;
  readonly #connectTimeout: number;

  constructor(server: HostPort, upstream: UpstreamConfig) {
    const tls = upstream.tls;
    const address = server.host.includes(':') ? `[${server.host}]:${server.port}` : `${server.host}:${server.port}`;
    this.tls = tls !== undefined;
    this.http2 = upstream.protocol === 'http2';
    this.origin = `${this.tls ? 'https' : 'http'}://${address}`;
    this.servername = tls?.servername ?? (isIP(server.host) === 0 ? server.host : undefined);
    this.dispatchServername = this.servername ?? server.host;
    this.#connectTimeout = upstream.timeouts.connect;
    this.tlsOptions = tls === undefined ? undefined : Object.freeze({
      ...(tls.ca !== undefined && { ca: tls.ca.pem }),
      ...(tls.cert !== undefined && { cert: tls.cert.pem }),
      ...(tls.key !== undefined && { key: tls.key.pem }),
      ...(this.servername !== undefined && { servername: this.servername }),
      rejectUnauthorized: tls.verify,
    });
    const material = [upstream.protocol, this.origin, this.servername ?? '', tls?.verify ?? '', tls?.ca?.pem ?? '', tls?.cert?.pem ?? '', tls?.key?.pem ?? ''];
    this.identity = `${upstream.protocol} ${this.origin} ${createHash('sha256').update(material.join('\0')).digest('hex').slice(0, 16)}`;
  }

  /**
   * undici Client/Pool options for this server: `connect` (a connector over the TLS options, with the fixed SNI),
   * and the HTTP/2 switches. The caller adds its own (connections, timeouts, pipelining).
   */
  clientOptions(): Pool.Options {
    const connector = buildConnector({
      ...this.tlsOptions,
      timeout: this.#connectTimeout,
      ...(this.http2 && { allowH2: true }),
      ...(this.http2 && !this.tls && { useH2c: true }),
    } as buildConnector.BuildOptions);
    const servername = this.servername;
    const h2Only = this.http2 && this.tls;
    const options: Pool.Options & { useH2c?: boolean } = {
      // undici passes the servername it keyed the request by; the one on the wire is the configured one ('' makes
      // undici's connector send none for an IP address).
      connect: (opts, callback) => connector({ ...opts, servername: servername ?? '' }, h2Only ? (err, socket) => {
        if (err !== null || (socket as TLSSocket).alpnProtocol === 'h2') return callback(err, socket as never);
        socket.destroy();
        callback(Object.assign(new Error(`the server chose ${String((socket as TLSSocket).alpnProtocol || 'no protocol')} over h2 (ALPN)`), { code: 'ERR_SSL_NO_APPLICATION_PROTOCOL' }), null);
      } : callback),
      ...(this.http2 && { allowH2: true }),
      ...(this.http2 && !this.tls && { useH2c: true }),
    };
    return options;
  }
}
