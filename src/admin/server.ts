/**
 * The admin listener (loopback by default): the dashboard (`/`, dashboard/assets.ts), `/status`, `/metrics`,
 * `/healthz`, `/ready`, and the POST routes (`actions`: server-actions.ts, reload-action.ts).
 * Mutating endpoints require the configured bearer token; without a token they are refused outright unless the
 * listener is on loopback. Before either, `refusal` (request-guard.ts) turns away what a web page could send: a
 * mutation from another origin, and any request but /healthz and /ready under a Host name that could be rebound.
 * What /metrics and /status answer can be replaced (`metricsText`, `status`): the cluster
 * primary answers with the sum over its workers.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { timingSafeEqual } from 'node:crypto';
import type { Logger } from '../log.js';
import type { Metrics } from './metrics.js';
import { DASHBOARD_ASSETS, DASHBOARD_HEADERS, type Asset } from './dashboard/assets.js';
import { refusal } from './request-guard.js';
import { listenerStatus, statusDocument, type ListenerView, type StatusDocument } from './status.js';
import type { Upstream } from '../upstream/upstream.js';
import { listen } from '../util/listen.js';

export interface AdminDeps {
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly upstreams: () => Iterable<Upstream>;
  /** The proxy listeners, for /status; default: none known (`listeners: null`). */
  readonly listeners?: () => Iterable<ListenerView>;
  readonly ready: () => boolean;
  readonly token: string | undefined;
  /**
   * Host names answered besides IP literals and localhost (`admin.allowed_hosts`, lower-case); read per request, so
   * a reload changes them at once. Default: none.
   */
  readonly allowedHosts?: () => readonly string[];
  /** Handlers for POST routes, by path; each returns (or resolves with) a JSON-able result or throws an AdminError. */
  readonly actions?: ReadonlyMap<string, (params: URLSearchParams) => unknown>;
  /** The Prometheus text /metrics answers; default: `metrics.registry`. */
  readonly metricsText?: () => Promise<string>;
  /**
   * The document /status answers; default: `statusDocument(upstreams())` with this process's listeners, ejections and
   * last minute of traffic.
   */
  readonly status?: () => Promise<StatusDocument>;
}

export class AdminError extends Error {
  /** `details`: more fields for the JSON answer, beside `error` (a refused reload's `errors`, say). */
  constructor(
    readonly status: number,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export class AdminServer {
  readonly server: Server;
  readonly #deps: AdminDeps;

  constructor(deps: AdminDeps) {
    this.#deps = deps;
    this.server = createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        deps.log.error({ err }, 'admin request failed');
        if (!res.headersSent) send(res, 500, { error: 'internal error' });
        else res.destroy();
      });
    });
    this.server.on('clientError', (_err, socket) => socket.destroy());
    this.server.on('error', (err) => deps.log.error({ err }, 'admin listener error'));
  }

  listen(host: string, port: number): Promise<AddressInfo> {
    return listen(this.server, host, port);
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    const deps = this.#deps;
    const refused = refusal(req, url.pathname, deps.allowedHosts?.() ?? []);
    if (refused !== undefined) {
      // The headers that decided, never all of them: Authorization carries the token.
      deps.log.warn({
        method: req.method, path: url.pathname, host: req.headers.host, origin: req.headers.origin,
        sec_fetch_site: req.headers['sec-fetch-site'], client: req.socket.remoteAddress, reason: refused,
      }, 'admin: request refused');
      return send(res, 403, { error: refused });
    }
    if (req.method === 'GET' || req.method === 'HEAD') {
      switch (url.pathname) {
        case '/healthz':
          return send(res, 200, { status: 'ok' });
        case '/ready':
          return deps.ready() ? send(res, 200, { status: 'ready' }) : send(res, 503, { status: 'starting' });
        case '/status':
          return send(res, 200, deps.status === undefined ? await this.#status() : await deps.status());
        case '/metrics': {
          const text = deps.metricsText === undefined ? await deps.metrics.registry.metrics() : await deps.metricsText();
          res.writeHead(200, { 'content-type': deps.metrics.registry.contentType });
          res.end(text);
          return;
        }
      }
      const asset = DASHBOARD_ASSETS.get(url.pathname);
      if (asset !== undefined) return sendAsset(res, asset);
    }
    const action = deps.actions?.get(url.pathname);
    if (action !== undefined) {
      if (req.method !== 'POST') return send(res, 405, { error: 'use POST' }, { allow: 'POST' });
      if (!this.#authorized(req)) return send(res, 401, { error: 'a valid bearer token is required' }, { 'www-authenticate': 'Bearer' });
      try {
        return send(res, 200, await action(url.searchParams));
      } catch (err) {
        if (err instanceof AdminError) return send(res, err.status, { error: err.message, ...err.details });
        throw err;
      }
    }
    send(res, 404, { error: 'not found' });
  }

  async #status(): Promise<StatusDocument> {
    const { metrics, listeners } = this.#deps;
    return statusDocument(this.#deps.upstreams(), undefined, {
      traffic: metrics.traffic,
      ejections: await metrics.ejectionCounts(),
      ...(listeners !== undefined && { listeners: listenerStatus(listeners(), (name) => metrics.connections(name)) }),
    });
  }

  #authorized(req: IncomingMessage): boolean {
    const token = this.#deps.token;
    if (token === undefined) return true; // only reachable on loopback: the config refuses a tokenless public admin
    const given = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1] ?? '';
    const a = Buffer.from(given);
    const b = Buffer.from(token);
    return a.length === b.length && timingSafeEqual(a, b);
  }
}

function sendAsset(res: ServerResponse, asset: Asset): void {
  res.writeHead(200, { 'content-type': asset.type, 'content-length': asset.body.length, ...DASHBOARD_HEADERS });
  res.end(asset.body);
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = `${JSON.stringify(body, null, 2)}\n`;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}
