/**
 * A TLS listener's certificates: one secure context per configured certificate, and the choice among them by the
 * name a client asks for in its ClientHello (SNI, RFC 6066 §3). Names are the certificate's own DNS subject
 * alternative names (its CN when it has none), matched as a client would verify them (RFC 6125 §6.4.3): exact first,
 * then a `*.` wildcard standing for one label. A client that names nothing, or a name no certificate covers, gets
 * the first certificate, as NGINX's default server does.
 *
 * Replaced whole on reload (`update`): handshakes from then on get the new contexts; a connection keeps the one it
 * was made with.
 */
import { X509Certificate } from 'node:crypto';
import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';
import type { ListenerTlsBase } from '../config/schema.js';

export interface ServedCertificate {
  /** The first name on the certificate, which labels its expiry metric. */
  readonly name: string;
  readonly names: readonly string[];
  /** notAfter, in seconds since the epoch. */
  readonly expiresAt: number;
  readonly context: SecureContext;
}

export class CertificateStore {
  #certificates: readonly ServedCertificate[] = [];
  #exact = new Map<string, SecureContext>();
  #wildcard = new Map<string, SecureContext>();

  constructor(tls: ListenerTlsBase) {
    this.update(tls);
  }

  /** The secure-context options every certificate shares: the protocol floor and the client CA of mutual TLS. */
  static commonOptions(tls: ListenerTlsBase): SecureContextOptions {
    return { minVersion: tls.min_version, ...(tls.client_ca === undefined ? {} : { ca: tls.client_ca.pem }) };
  }

  update(tls: ListenerTlsBase): void {
    const common = CertificateStore.commonOptions(tls);
    const certificates = tls.certificates.map((pair): ServedCertificate => {
      const x509 = new X509Certificate(pair.cert.pem);
      const names = namesOf(x509);
      return {
        name: names[0] ?? pair.cert.path,
        names,
        expiresAt: Math.floor(Date.parse(x509.validTo) / 1000),
        context: createSecureContext({ ...common, cert: pair.cert.pem, key: pair.key.pem }),
      };
    });
    const exact = new Map<string, SecureContext>();
    const wildcard = new Map<string, SecureContext>();
    // The first certificate that names a host wins it, in the order of the config.
    for (const c of certificates) {
      for (const n of c.names) {
        if (n.startsWith('*.')) {
          if (!wildcard.has(n.slice(2))) wildcard.set(n.slice(2), c.context);
        } else if (!exact.has(n)) exact.set(n, c.context);
      }
    }
    this.#certificates = certificates;
    this.#exact = exact;
    this.#wildcard = wildcard;
  }

  get certificates(): readonly ServedCertificate[] {
    return this.#certificates;
  }

  /** The default certificate's context: for a client that sends no name. */
  get defaultContext(): SecureContext {
    return this.#certificates[0]!.context;
  }

  /** The context for the name a client asked for. */
  select(servername: string): SecureContext {
    const name = servername.toLowerCase();
    const exact = this.#exact.get(name);
    if (exact !== undefined) return exact;
    const dot = name.indexOf('.');
    return (dot > 0 ? this.#wildcard.get(name.slice(dot + 1)) : undefined) ?? this.defaultContext;
  }

  /** The SNI callback of a tls.Server: never fails, an unknown name gets the default certificate. */
  readonly sniCallback = (servername: string, done: (err: Error | null, ctx?: SecureContext) => void): void => {
    done(null, this.select(servername));
  };
}

/** The DNS names a certificate is for, lower-case: its subject alternative names, else its CN (RFC 6125 §6.4.4). */
function namesOf(x509: X509Certificate): string[] {
  const san = x509.subjectAltName;
  if (san !== undefined) {
    const names = san.split(', ').filter((e) => e.startsWith('DNS:')).map((e) => e.slice(4).toLowerCase());
    if (names.length > 0) return names;
  }
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(x509.subject)?.[1];
  return cn === undefined ? [] : [cn.toLowerCase()];
}
