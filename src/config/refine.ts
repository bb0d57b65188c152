import type { HostPort } from './values.js';

/** What the config schemas share for refinements that read values which may not have parsed. */
export const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * For a refinement across keys: zod skips it once any key has failed, so a file with a misspelt key would show its
 * duplicate names or unknown upstreams only after a second run of `validate`. Run it whenever the value is an
 * object; the refinement then reads only values of the type it expects, since others may not have parsed.
 */
export const EVEN_WITH_ERRORS = { when: (payload: { value: unknown }) => isRecord(payload.value) };

/** A listen or server address as the schema reads it, or undefined while it is still text that failed to parse. */
export function hostPortOf(v: unknown): HostPort | undefined {
  return isRecord(v) && typeof v.host === 'string' && typeof v.port === 'number' ? { host: v.host, port: v.port } : undefined;
}
