/**
 * The value types a Ballast config is made of, as zod schemas: durations, sizes, percentages, numbers that may come
 * from `${VAR}`, addresses, status ranges, names and CIDR blocks. schema.ts composes them into the config contract.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { parseDuration, parsePercent, parseSize } from './units.js';

/**
 * A number or boolean that may also arrive as text, as a `${VAR}` gives it (values are interpolated as strings, so
 * `weight: ${W:-3}` or `workers: "${WORKERS:-2}"` would otherwise be refused as "received string"). Only the exact
 * forms YAML itself reads as numbers and booleans are taken; anything else reaches the schema as it was.
 */
export function fromText<T extends z.ZodType>(schema: T) {
  return z.preprocess((v) => {
    if (typeof v !== 'string') return v;
    const t = v.trim();
    if (/^-?\d+(?:\.\d+)?$/.test(t)) return Number(t);
    return t === 'true' ? true : t === 'false' ? false : v;
  }, schema);
}

export const duration = z.string({ error: 'expected a duration such as 250ms, 2s or 1m' }).transform((text, ctx) => {
  const ms = parseDuration(text);
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: `"${text}" is not a duration: expected e.g. 250ms, 2s, 1m, 1h` });
    return z.NEVER;
  }
  return ms;
});

/**
 * A duration where 0 has no "off" meaning: an interval, or a timeout that 0 would make fire at once. Keys where 0
 * means none or no limit (slow_start, retry backoff, drain and idle timeouts) take a plain `duration`.
 */
export const positiveDuration = duration.refine((ms) => ms > 0, 'must be longer than 0');

export const SIZE_EXPECTED = 'expected a size such as 64KiB or 1MiB';
export const size = z.union([z.number().int().nonnegative(SIZE_EXPECTED), z.string()], { error: SIZE_EXPECTED })
  .transform((v, ctx) => {
    const bytes = typeof v === 'number' ? v : parseSize(v);
    if (bytes === undefined) {
      ctx.addIssue({ code: 'custom', message: `"${String(v)}" is not a size: expected e.g. 512B, 64KiB, 1MiB` });
      return z.NEVER;
    }
    return bytes;
  });

export const PERCENT_RANGE = 'expected a percentage from 0% to 100%';

/** `50%` or a number from 0 to 100; read as a share in [0, 1]. */
export const percent = fromText(z.union([z.number().min(0, PERCENT_RANGE).max(100, PERCENT_RANGE), z.string()], { error: 'expected a percentage such as 50%' }))
  .transform((v, ctx) => {
    const share = typeof v === 'number' ? v / 100 : parsePercent(v);
    if (share === undefined) {
      ctx.addIssue({ code: 'custom', message: `"${String(v)}" is not a percentage: ${PERCENT_RANGE}, e.g. 50%` });
      return z.NEVER;
    }
    return share;
  });

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** `host:port`, `[v6]:port` or `:port` (all interfaces). */
export function parseHostPort(text: string): HostPort | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]*)):(\d{1,5})$/.exec(text.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  const host = m[1] ?? (m[2] === '' ? '0.0.0.0' : m[2]!);
  if (m[1] !== undefined && isIP(m[1]) !== 6) return undefined;
  return { host, port };
}

export const hostPort = (what: string, allowZeroPort: boolean, forms: string) =>
  z.string({ error: `expected ${what} as ${forms}` }).transform((text, ctx) => {
    const hp = parseHostPort(text);
    if (!hp || (!allowZeroPort && hp.port === 0)) {
      ctx.addIssue({ code: 'custom', message: `"${text}" is not ${what}: expected ${forms}, e.g. 127.0.0.1:8080` });
      return z.NEVER;
    }
    return hp;
  });

export const listenAddress = hostPort('a listen address', true, '"host:port", "[v6]:port" or ":port"');
export const serverAddress = hostPort('a server address', false, '"host:port" or "[v6]:port"');

/** A DNS resolver: an IP address, with `:port` (default 53); node:dns takes IP addresses only. */
export const resolverAddress = z.string({ error: 'expected a resolver address such as 10.96.0.10:53' }).transform((text, ctx) => {
  const t = text.trim();
  const hp = isIP(t) !== 0 ? { host: t, port: 53 } : parseHostPort(t);
  if (hp === undefined || isIP(hp.host) === 0 || hp.port === 0) {
    ctx.addIssue({ code: 'custom', message: `"${text}" is not a resolver address: expected an IP address with an optional port, e.g. 10.96.0.10:53` });
    return z.NEVER;
  }
  return hp;
});

/** `200`, `200-399`, or a comma list of both: `200-299, 304`. */
export const statusRanges = z.union([z.number().int(), z.string()], { error: 'expected a status list such as "200-399" or "200, 204"' }).transform((v, ctx) => {
  const ranges: [number, number][] = [];
  for (const part of String(v).split(',')) {
    const m = /^\s*(\d{3})(?:\s*-\s*(\d{3}))?\s*$/.exec(part);
    const lo = m ? Number(m[1]) : NaN;
    const hi = m?.[2] ? Number(m[2]) : lo;
    if (!m || lo < 100 || hi > 599 || hi < lo) {
      ctx.addIssue({ code: 'custom', message: `"${String(v)}" is not a status list: expected e.g. "200-399" or "200, 204"` });
      return z.NEVER;
    }
    ranges.push([lo, hi]);
  }
  return ranges;
});

export const name = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'expected a name of letters, digits, "_", "." or "-"');

export const cidr = z.string().refine((s) => {
  const [addr, bits, extra] = s.split('/');
  if (extra !== undefined || !addr) return false;
  const family = isIP(addr);
  if (family === 0) return false;
  if (bits === undefined) return true;
  const n = Number(bits);
  return /^\d+$/.test(bits) && n <= (family === 4 ? 32 : 128);
}, 'expected an IP address or CIDR block such as 10.0.0.0/8');
