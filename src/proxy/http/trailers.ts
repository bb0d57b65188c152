/**
 * Response trailers (RFC 9110 §6.5), as undici hands them to a dispatch handler's `onComplete`: raw name/value pairs
 * from an HTTP/1.1 chunked body, a headers object from an HTTP/2 stream. gRPC carries its status in them
 * (`grpc-status`, `grpc-message`), so they are kept for a downstream that can send trailers.
 */
import { HOP_BY_HOP } from './headers.js';

/**
 * Fields that never belong in trailers a proxy passes on: connection management (hop-by-hop), message framing and
 * routing (RFC 9110 §6.5.1), HTTP/2 pseudo-fields.
 */
function dropped(name: string): boolean {
  return HOP_BY_HOP.has(name) || name === 'content-length' || name === 'host' || name.startsWith(':');
}

/** The trailers as lower-case names to values (repeated fields joined with `, `); undefined when there are none. */
export function trailerFields(raw: readonly (Buffer | string)[] | Record<string, string | string[] | undefined> | null | undefined): Record<string, string> | undefined {
  if (raw === null || raw === undefined) return undefined;
  let out: Record<string, string> | undefined;
  const add = (name: string, value: string): void => {
    const lower = name.toLowerCase();
    if (dropped(lower)) return;
    out ??= {};
    out[lower] = out[lower] === undefined ? value : `${out[lower]}, ${value}`;
  };
  if (Array.isArray(raw)) {
    for (let i = 0; i + 1 < raw.length; i += 2) add(text(raw[i]!), text(raw[i + 1]!));
    return out;
  }
  for (const [name, value] of Object.entries(raw)) {
    if (value === undefined) continue;
    add(name, Array.isArray(value) ? value.join(', ') : String(value));
  }
  return out;
}

function text(v: Buffer | string): string {
  return typeof v === 'string' ? v : v.toString('latin1');
}
