/**
 * Which route a TLS server name (SNI) takes on a `tcp` listener with `routes`.
 *
 * Patterns are exact names or `*.` wildcards, matched without regard to case. A wildcard stands for exactly one
 * label, as in certificate matching (RFC 6125 §6.4.3): `*.example.com` matches `a.example.com`, but neither
 * `example.com` nor `a.b.example.com`. An exact name wins over a wildcard, whatever the order in the file; with
 * one-label wildcards at most one wildcard can match a name, so there is nothing else to break ties on. The config
 * refuses a pattern listed twice.
 *
 * Cost: two map lookups per connection, whatever the number of routes.
 */
export interface SniRoute<T> {
  /** `api.example.com` or `*.example.com`, lower case (the schema lowers it). */
  readonly pattern: string;
  readonly target: T;
}

export class SniRouter<T> {
  readonly #exact = new Map<string, T>();
  /** Keyed by what follows `*.`. */
  readonly #wildcard = new Map<string, T>();

  constructor(routes: readonly SniRoute<T>[]) {
    for (const { pattern, target } of routes) {
      const p = pattern.toLowerCase();
      const map = p.startsWith('*.') ? this.#wildcard : this.#exact;
      const key = p.startsWith('*.') ? p.slice(2) : p;
      // The first of two equal patterns wins (the schema refuses them anyway).
      if (!map.has(key)) map.set(key, target);
    }
  }

  /** The route's target for `name`, or undefined when no pattern matches. */
  match(name: string): T | undefined {
    const host = name.toLowerCase();
    const exact = this.#exact.get(host);
    if (exact !== undefined) return exact;
    const dot = host.indexOf('.');
    // A first label must not be empty: `.example.com` is no name `*.example.com` stands for.
    return dot > 0 ? this.#wildcard.get(host.slice(dot + 1)) : undefined;
  }
}
