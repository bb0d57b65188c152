/**
 * The socket an HTTP listener accepts on, and which protocol each connection it accepts is handed to.
 *
 * - Clear text, HTTP/1 only (the common case): the node:http server listens itself, and nothing stands between.
 * - TLS (#15): a tls.Server terminates, and the protocol the client chose by ALPN (RFC 7301) gets the connection:
 *   `h2` the HTTP/2 sessions (http2-front.ts), `http/1.1` or none the node:http server. SNI picks the certificate
 *   (tls/certificate-store.ts).
 * - Clear text with `http2.cleartext`: the first bytes say which. A connection that opens with the HTTP/2 preface
 *   (RFC 9113 §3.4, prior knowledge) is HTTP/2; anything else goes to node:http as it came.
 */
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import type { Server as HttpServer } from 'node:http';
import type { HttpListenerConfig, ListenerTlsConfig } from '../../config/schema.js';
import type { CertificateStore } from '../../tls/certificate-store.js';
import { createTlsTerminator, type TlsCounters } from '../../tls/terminator.js';
import type { Http2Front } from './http2-front.js';

/** The HTTP/2 connection preface's request line; a request method PRI means nothing in HTTP/1.1. */
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n');

export interface Acceptor {
  /** The server that listens. */
  readonly server: NetServer;
  /** The listener's certificates, when it terminates TLS. */
  readonly certificates: CertificateStore | undefined;
  /** A reload with the same shape (sameShape): new certificates and protocol floor for new handshakes. */
  update(config: HttpListenerConfig): void;
}

/** Whether a reload can keep a listener's accepting socket: TLS on or off, ALPN, mutual TLS and h2c unchanged. */
export function sameShape(a: HttpListenerConfig, b: HttpListenerConfig): boolean {
  const ta = a.tls;
  const tb = b.tls;
  if ((ta === undefined) !== (tb === undefined) || a.http2.cleartext !== b.http2.cleartext) return false;
  if (ta === undefined || tb === undefined) return true;
  return ta.alpn.join() === tb.alpn.join() && (ta.client_ca === undefined) === (tb.client_ca === undefined);
}

export function createAcceptor(config: HttpListenerConfig, http1: HttpServer, http2: Http2Front | undefined, counters: TlsCounters): Acceptor {
  const tls = config.tls;
  if (tls !== undefined) return tlsAcceptor(tls, http1, http2, counters);
  if (http2 !== undefined && config.http2.cleartext) return prefaceAcceptor(http1, http2);
  return { server: http1, certificates: undefined, update() {} };
}

function tlsAcceptor(tls: ListenerTlsConfig, http1: HttpServer, http2: Http2Front | undefined, counters: TlsCounters): Acceptor {
  const terminator = createTlsTerminator(
    tls,
    counters,
    (socket) => (socket.alpnProtocol === 'h2' ? 'h2' : 'http/1.1'),
    (socket, protocol, version) => {
      if (protocol === 'h2') http2!.accept(socket, version);
      else http1.emit('connection', socket);
    },
    { ALPNProtocols: http2 === undefined ? tls.alpn.filter((p) => p !== 'h2') : [...tls.alpn] },
  );
  return {
    server: terminator.server,
    certificates: terminator.certificates,
    update(config) {
      if (config.tls !== undefined) terminator.update(config.tls);
    },
  };
}

function prefaceAcceptor(http1: HttpServer, http2: Http2Front): Acceptor {
  const server = createNetServer({ noDelay: true, pauseOnConnect: false });
  server.on('connection', (socket: Socket) => {
    socket.on('error', () => socket.destroy());
    let head: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const n = Math.min(head.length, PREFACE.length);
      const h2 = head.subarray(0, n).equals(PREFACE.subarray(0, n));
      // Not yet enough bytes to tell: wait for more (node:http's headers_timeout does not run yet; the socket's
      // own timeout below does).
      if (h2 && n < PREFACE.length) return;
      socket.off('data', onData);
      socket.setTimeout(0);
      socket.pause();
      socket.unshift(head);
      // node:http2 reads what is buffered itself, then takes the socket's reads over; node:http waits for them.
      if (h2) http2.accept(socket, '');
      else {
        http1.emit('connection', socket);
        socket.resume();
      }
    };
    socket.on('data', onData);
    // A client that sends nothing is cut as node:http would cut it for a missing request head.
    socket.setTimeout(http1.headersTimeout, () => socket.destroy());
  });
  return { server, certificates: undefined, update() {} };
}
