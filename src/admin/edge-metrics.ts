/**
 * Metrics of the TLS and HTTP/2 edge (#15): handshakes by TLS version and negotiated protocol, handshake failures by
 * reason, HTTP/2 sessions cut off for rapid reset, and when each served certificate expires. Every label is bounded:
 * listener names, certificate names from the config, and fixed sets of versions, protocols and reasons.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { TlsCounters } from '../tls/terminator.js';
import type { Http2Counters } from '../proxy/http/http2-front.js';
import type { CertificateStore } from '../tls/certificate-store.js';

export class EdgeMetrics {
  readonly #handshakes: Counter<'listener' | 'version' | 'protocol'>;
  readonly #handshakeErrors: Counter<'listener' | 'reason'>;
  readonly #rapidResets: Counter<'listener'>;
  /** The certificates each TLS listener serves now; a reload replaces a listener's entry. */
  readonly #certificates = new Map<string, CertificateStore>();

  constructor(registry: Registry) {
    const registers = [registry];
    const self = this;
    this.#handshakes = new Counter({
      name: 'ballast_tls_handshakes_total',
      help: 'TLS handshakes completed, by listener, TLS version and the protocol chosen by ALPN (h2 or http/1.1).',
      labelNames: ['listener', 'version', 'protocol'],
      registers,
    });
    this.#handshakeErrors = new Counter({
      name: 'ballast_tls_handshake_errors_total',
      help: 'TLS handshakes that failed, by listener and reason.',
      labelNames: ['listener', 'reason'],
      registers,
    });
    this.#rapidResets = new Counter({
      name: 'ballast_http2_rapid_reset_total',
      help: 'HTTP/2 sessions closed with GOAWAY because the client cancelled its streams as fast as it opened them (CVE-2023-44487).',
      labelNames: ['listener'],
      registers,
    });
    new Gauge({
      name: 'ballast_tls_certificate_expiry_seconds',
      help: 'When each served certificate expires (notAfter), in seconds since the epoch, by listener and the first name on it.',
      labelNames: ['listener', 'name'],
      registers,
      collect() {
        this.reset();
        for (const [listener, store] of self.#certificates) {
          for (const c of store.certificates) this.set({ listener, name: c.name }, c.expiresAt);
        }
      },
    });
  }

  tls(listener: string): TlsCounters {
    return {
      handshake: (version, protocol) => this.#handshakes.inc({ listener, version, protocol }),
      handshakeError: (reason) => this.#handshakeErrors.inc({ listener, reason }),
    };
  }

  http2(listener: string): Http2Counters {
    return { rapidReset: () => this.#rapidResets.inc({ listener }) };
  }

  trackCertificates(listener: string, store: CertificateStore): void {
    this.#certificates.set(listener, store);
  }

  /** A listener closed: its certificates are no longer served (unless a listener of the same name took over). */
  untrackCertificates(listener: string, store: CertificateStore): void {
    if (this.#certificates.get(listener) === store) this.#certificates.delete(listener);
  }
}
