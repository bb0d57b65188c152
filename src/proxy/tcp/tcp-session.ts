/**
 * One client connection on a TCP listener, from accept to close:
 * (PROXY header in) → (with routes: the upstream the ClientHello's SNI chooses, sni-routing.ts) → pick and connect a
 * server, failing over (upstream-dialer.ts) → (PROXY header out) → relay both ways (relay.ts) under an idle timeout →
 * release the server, record metrics and one access-log line.
 *
 * Until a server is connected the client socket is not read, except for the PROXY header (taken off) and the
 * ClientHello (put back once read, to be relayed unchanged): what the client sends early waits in its receive buffer (bounded by the kernel and the
 * socket's high-water mark), and is relayed first once the upstream is there.
 */
import type { Socket } from 'node:net';
import type { TcpListenerConfig } from '../../config/schema.js';
import type { AccessLog } from '../../access-log.js';
import type { Logger } from '../../log.js';
import type { Lease } from '../../upstream/lease.js';
import type { Upstream } from '../../upstream/upstream.js';
import type { RetryPolicy } from '../retry-policy.js';
import { ConnectCancel } from './connect.js';
import { unmapIpv4 } from '../../util/ip-address.js';
import { encodeProxyHeader, proxyAddresses, ProxyProtocolError, readProxyHeader } from './proxy-protocol.js';
import { relay, UpstreamReads, type RelayEnd } from './relay.js';
import { routeBySni, type SniRouting } from './sni-routing.js';
import type { EndReason, TcpListenerMetrics } from './tcp-metrics.js';
import { dialUpstream, type DialAttempt } from './upstream-dialer.js';

/** An upstream a TCP listener relays to, with what connecting to it needs. */
export interface TcpTarget {
  readonly upstream: Upstream;
  /** Failover on connect failure (`connect_attempts`). */
  readonly policy: RetryPolicy;
  /** The upstream hashes on the client IP (consistent-hash or maglev with `hash_key: client-ip`). */
  readonly hashClientIp: boolean;
}

/** What every session of one listener shares. */
export interface TcpSessionContext {
  readonly listener: string;
  readonly config: TcpListenerConfig;
  /** The listener's `upstream`; with routes, the default one, which may be absent. */
  readonly upstream: TcpTarget | undefined;
  /** With routes: TLS passthrough routed by SNI. */
  readonly sni: SniRouting<TcpTarget> | undefined;
  readonly metrics: TcpListenerMetrics;
  readonly log: Logger;
  readonly accessLog: AccessLog | undefined;
  readonly proxyHeaderTimeoutMs: number;
}

const RELAY_ENDS: { readonly [end in RelayEnd]: EndReason } = {
  done: 'done',
  'client-error': 'client-error',
  'upstream-error': 'upstream-error',
  // Only the session destroys sockets without an error, and it records why before doing so.
  destroyed: 'shutdown',
};

export class TcpSession {
  readonly #ctx: TcpSessionContext;
  readonly #client: Socket;
  readonly #onDone: (session: TcpSession) => void;
  readonly #cancel = new ConnectCancel();
  readonly #startedAt = performance.now();
  #upstreamSocket: Socket | undefined;
  #lease: Lease | undefined;
  #attempts: readonly DialAttempt[] = [];
  /** Where this connection goes: the listener's upstream, or the one its SNI chose. */
  #target: TcpTarget | undefined;
  /** The server name of its ClientHello, when the listener routes by SNI. */
  #sni: string | undefined;
  #clientIp: string;
  #clientPort: number;
  /** Why the session itself ended the connection (idle timeout, shutdown); wins over what the sockets saw. */
  #endedBy: EndReason | undefined;
  #clientClosed = false;
  #finished = false;

  constructor(ctx: TcpSessionContext, client: Socket, onDone: (session: TcpSession) => void) {
    this.#ctx = ctx;
    this.#client = client;
    this.#onDone = onDone;
    this.#target = ctx.upstream;
    this.#clientIp = unmapIpv4(client.remoteAddress ?? '');
    this.#clientPort = client.remotePort ?? 0;
  }

  start(): void {
    const client = this.#client;
    // Errors before the relay starts end up as a close, handled below; the relay adds its own listener.
    client.on('error', noop);
    client.once('close', this.#onEarlyClose);
    this.#ctx.metrics.opened();
    this.#run().catch((err: unknown) => {
      // Nothing above should throw; if it does, the connection must not leak.
      this.#ctx.log.error({ listener: this.#ctx.listener, err }, 'tcp session failed');
      this.destroy('shutdown');
      this.#finish('shutdown', 'internal-error');
    });
  }

  /** End the connection now (drain deadline, or an internal failure). */
  destroy(reason: EndReason): void {
    this.#endedBy ??= reason;
    this.#cancel.cancel();
    this.#client.destroy();
    this.#upstreamSocket?.destroy();
  }

  readonly #onEarlyClose = (): void => {
    this.#clientClosed = true;
    this.#cancel.cancel();
  };

  async #run(): Promise<void> {
    const ctx = this.#ctx;
    const client = this.#client;
    /** The address the client connected to, when a PROXY header in said otherwise. */
    let destination: { address: string; port: number } | undefined;

    if (ctx.config.accept_proxy_protocol) {
      try {
        const header = await readProxyHeader(client, { timeoutMs: ctx.proxyHeaderTimeoutMs });
        if (header.addresses !== undefined) {
          this.#clientIp = header.addresses.sourceAddress;
          this.#clientPort = header.addresses.sourcePort;
          destination = { address: header.addresses.destinationAddress, port: header.addresses.destinationPort };
        }
      } catch (err) {
        client.destroy();
        const detail = err instanceof ProxyProtocolError ? `${err.failure}: ${err.message}` : String(err);
        // A peer that connects and leaves without a word (a TCP health check of the load balancer in front) is
        // not a protocol violation.
        this.#finish(err instanceof ProxyProtocolError && err.failure === 'closed' ? 'client-gone' : 'proxy-protocol', detail);
        return;
      }
    }
    if (this.#clientClosed || this.#endedBy !== undefined) {
      this.#finish('client-gone');
      return;
    }

    // After the PROXY header, which comes first on the wire (spec §2: before any other byte).
    let detail: string | undefined;
    if (ctx.sni !== undefined) {
      const decision = await routeBySni(client, ctx.sni);
      this.#sni = decision.name;
      if (decision.result !== undefined) ctx.metrics.routedBySni(decision.result);
      if (decision.kind === 'close') {
        client.destroy();
        this.#finish(decision.end, decision.detail);
        return;
      }
      this.#target = decision.target;
      detail = decision.detail;
      if (this.#clientClosed || this.#endedBy !== undefined) {
        this.#finish('client-gone');
        return;
      }
    }
    const target = this.#target;
    if (target === undefined) {
      // Not reached: the schema asks for an upstream or routes, and routes decide above. Kept for the type's sake.
      client.destroy();
      this.#finish('no-route');
      return;
    }

    const upstream = target.upstream;
    const reads = new UpstreamReads();
    const result = await dialUpstream(upstream, {
      key: target.hashClientIp && this.#clientIp !== '' ? this.#clientIp : undefined,
      policy: target.policy,
      cancel: this.#cancel,
      onConnectFailure: (host) => ctx.metrics.connectFailed(upstream.name, host.address),
      onread: reads.onread,
    });
    this.#attempts = result.attempts;
    if (!result.ok) {
      // Refuse by closing: a raw TCP client has no error message to read, and a FIN is what HAProxy sends too.
      client.destroy();
      this.#finish(result.reason === 'aborted' ? 'client-gone' : result.reason, detail);
      return;
    }
    const socket = result.socket;
    if (this.#clientClosed || this.#endedBy !== undefined) {
      socket.destroy();
      result.lease.release();
      this.#finish('client-gone');
      return;
    }
    this.#lease = result.lease;
    this.#upstreamSocket = socket;
    client.off('close', this.#onEarlyClose);

    const mode = ctx.config.send_proxy_protocol;
    if (mode !== undefined) {
      // Written before the relay starts, so it precedes the client's first byte (spec §2: "at once").
      // Read only here: getsockname is a system call, and most listeners never need it.
      destination ??= { address: client.localAddress ?? '', port: client.localPort ?? 0 };
      try {
        socket.write(encodeProxyHeader(mode, proxyAddresses(this.#clientIp, this.#clientPort, destination.address, destination.port)));
      } catch (err) {
        // An address the header cannot carry: close both sides and give the server's lease back.
        socket.destroy();
        client.destroy();
        result.lease.release();
        this.#finish('proxy-protocol', (err as Error).message);
        return;
      }
    }
    if (ctx.config.idle_timeout > 0) {
      // Any read from or write to the client resets this timer, and every relayed byte is one or the other, so it
      // measures inactivity in both directions.
      client.setTimeout(ctx.config.idle_timeout, () => this.destroy('idle-timeout'));
    }
    relay(
      client,
      socket,
      (r) => {
        result.lease.release();
        this.#finish(RELAY_ENDS[r.end], r.code ?? detail);
      },
      reads,
    );
  }

  #finish(seen: EndReason, detail?: string): void {
    if (this.#finished) return;
    this.#finished = true;
    const end = this.#endedBy ?? seen;
    const ctx = this.#ctx;
    const client = this.#client;
    const seconds = (performance.now() - this.#startedAt) / 1000;
    const bytesIn = client.bytesRead;
    const bytesOut = client.bytesWritten;
    ctx.metrics.closed(end, bytesIn, bytesOut, seconds);
    if (ctx.accessLog !== undefined) {
      ctx.accessLog.write({
        protocol: 'tcp',
        listener: ctx.listener,
        client: this.#clientIp,
        clientPort: this.#clientPort,
        upstream: this.#target?.upstream.name,
        server: this.#lease?.host.address,
        sni: this.#sni,
        attempts: this.#attempts,
        bytesIn,
        bytesOut,
        durationMs: Math.round(seconds * 1e6) / 1000,
        end,
        ...(detail !== undefined && { detail }),
      });
    }
    this.#onDone(this);
  }
}

function noop(): void {}
