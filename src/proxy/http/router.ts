/**
 * Routes: first match wins; a route without `match` is the catch-all. Hosts match exactly or as `*.suffix`
 * (one or more labels), case-insensitively, with the port ignored unless the pattern names one.
 */
import type { HttpListenerConfig, RetryConfig } from '../../config/schema.js';
import type { Upstream } from '../../upstream/upstream.js';

export interface Route {
  readonly upstream: Upstream;
  readonly retry: RetryConfig;
  /** Index in the listener's routes, for logs. */
  readonly index: number;
  readonly host: string | undefined;
  readonly pathPrefix: string | undefined;
  /** The route's own client limits, overriding the listener's. */
  readonly client: HttpListenerConfig['routes'][number]['client'];
}

export class Router {
  readonly routes: readonly Route[];

  constructor(listener: HttpListenerConfig, upstreams: ReadonlyMap<string, Upstream>) {
    this.routes = listener.routes.map((r, index) => {
      const upstream = upstreams.get(r.upstream);
      if (!upstream) throw new Error(`route ${index} of listener ${listener.name}: no upstream "${r.upstream}"`);
      return {
        upstream,
        retry: r.retry ?? upstream.config.retry,
        index,
        host: r.match?.host?.toLowerCase(),
        pathPrefix: r.match?.path_prefix,
        client: r.client,
      };
    });
  }

  match(hostHeader: string, url: string): Route | undefined {
    let host: string | undefined;
    for (const route of this.routes) {
      if (route.host !== undefined) {
        host ??= hostHeader.toLowerCase();
        if (!hostMatches(route.host, host)) continue;
      }
      if (route.pathPrefix !== undefined && !url.startsWith(route.pathPrefix)) continue;
      return route;
    }
    return undefined;
  }
}

function hostMatches(pattern: string, host: string): boolean {
  const withPort = pattern.includes(':');
  const h = withPort ? host : stripPort(host);
  if (pattern.startsWith('*.')) return h.length > pattern.length - 1 && h.endsWith(pattern.slice(1));
  return h === pattern;
}

function stripPort(host: string): string {
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    return end === -1 ? host : host.slice(0, end + 1);
  }
  const colon = host.lastIndexOf(':');
  return colon === -1 ? host : host.slice(0, colon);
}
