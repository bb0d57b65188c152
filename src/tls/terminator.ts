/**
 * A tls.Server that terminates TLS for a listener, http or tcp alike: the certificates chosen by SNI
 * (certificate-store.ts), mutual TLS when `client_ca` is set, the handshake bounded by `handshake_timeout`, every
 * handshake counted by version and protocol and every failure by reason (handshake-errors.ts), never logged one by one.
 * `update` gives new handshakes a reload's certificates; connections already open keep theirs.
 */
import { createServer, type Server, type TLSSocket, type TlsOptions } from 'node:tls';
import type { ListenerTlsBase } from '../config/schema.js';
import { CertificateStore } from './certificate-store.js';
import { handshakeErrorReason, type HandshakeErrorReason } from './handshake-errors.js';

export interface TlsCounters {
  handshake(version: string, protocol: string): void;
  handshakeError(reason: HandshakeErrorReason): void;
}

export interface TlsTerminator {
  readonly server: Server;
  readonly certificates: CertificateStore;
  update(tls: ListenerTlsBase): void;
}

/** The default context: what a client that names no server gets, and the protocol floor of every handshake. */
function defaultContext(tls: ListenerTlsBase): TlsOptions {
  return { ...CertificateStore.commonOptions(tls), cert: tls.certificates[0]!.cert.pem, key: tls.certificates[0]!.key.pem };
}

/**
 * `protocolOf` names what a completed handshake carries (`h2`, `http/1.1`, `tcp`), for the counter; `onSecure` gets
 * the connection with it and its TLS version. `options` adds the server options of the caller (ALPN, half-open).
 */
export function createTlsTerminator(
  tls: ListenerTlsBase,
  counters: TlsCounters,
  protocolOf: (socket: TLSSocket) => string,
  onSecure: (socket: TLSSocket, protocol: string, version: string) => void,
  options: TlsOptions = {},
): TlsTerminator {
  const certificates = new CertificateStore(tls);
  const server = createServer({
    ...defaultContext(tls),
    SNICallback: certificates.sniCallback,
    requestCert: tls.client_ca !== undefined,
    rejectUnauthorized: true,
    handshakeTimeout: tls.handshake_timeout,
    noDelay: true,
    ...options,
  });
  server.on('secureConnection', (socket: TLSSocket) => {
    const protocol = protocolOf(socket);
    const version = socket.getProtocol() ?? 'unknown';
    counters.handshake(version, protocol);
    onSecure(socket, protocol, version);
  });
  server.on('tlsClientError', (err: Error, socket: TLSSocket) => {
    counters.handshakeError(handshakeErrorReason(err));
    socket.destroy();
  });
  return {
    server,
    certificates,
    update(next) {
      certificates.update(next);
      server.setSecureContext(defaultContext(next));
    },
  };
}
