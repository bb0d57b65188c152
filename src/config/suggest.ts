/**
 * "Did you mean" for a misspelt key or value: the closest candidate by edit distance, if it is close enough.
 *
 * Distance is the optimal-string-alignment variant of Damerau-Levenshtein (an insertion, a deletion, a substitution
 * or a swap of two neighbours each cost 1), so `wieght` is one step from `weight`. A candidate is offered when it is
 * at most a third of the longer word away (at least 1), as rustc and cargo do; a candidate equal once case, `_` and
 * `-` are ignored (`healthCheck`, `Round_Robin`) always is. Cost: O(n·m) per candidate, for words of a few letters.
 */
import type { core } from 'zod';

/** Edit distance with adjacent swaps (optimal string alignment). */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[] = new Array<number>(rows * cols);
  for (let i = 0; i < rows; i++) d[i * cols] = i;
  for (let j = 0; j < cols; j++) d[j] = j;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[(i - 1) * cols + j]! + 1, d[i * cols + j - 1]! + 1, d[(i - 1) * cols + j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[(i - 2) * cols + j - 2]! + 1);
      d[i * cols + j] = best;
    }
  }
  return d[rows * cols - 1]!;
}

const normalise = (s: string): string => s.toLowerCase().replace(/[-_\s]/g, '');

/** The candidate closest to `word`, or undefined when none is close enough to be what was meant. */
export function closest(word: string, candidates: Iterable<string>): string | undefined {
  const wanted = normalise(word);
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    if (candidate === word) continue;
    if (normalise(candidate) === wanted) return candidate;
    const distance = editDistance(word.toLowerCase(), candidate.toLowerCase());
    const limit = Math.max(1, Math.floor(Math.max(word.length, candidate.length) / 3));
    if (distance <= limit && distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/** The parts of a zod schema's definition the walk below reads (zod 4's `_zod.def`). */
interface SchemaDef {
  readonly type: string;
  readonly shape?: Record<string, core.$ZodType>;
  readonly element?: core.$ZodType;
  readonly innerType?: core.$ZodType;
  readonly in?: core.$ZodType;
  readonly out?: core.$ZodType;
  readonly options?: readonly core.$ZodType[];
  readonly discriminator?: string;
  readonly values?: readonly unknown[];
  readonly transform?: (value: unknown, payload: unknown) => unknown;
}

const defOf = (schema: core.$ZodType): SchemaDef => schema._zod.def as unknown as SchemaDef;
const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * The keys an object at `path` may have, read from the schema, for the "did you mean" of an unknown key. `value` is
 * the document (after YAML parsing) along the same path: it picks the branch of a discriminated union (a `tcp`
 * listener's keys, not an `http` one's), after any preprocessing step has been applied to it as the parse would.
 */
export function keysAt(schema: core.$ZodType, value: unknown, path: readonly (string | number)[]): Set<string> {
  const keys = new Set<string>();
  for (const shape of shapesAt(schema, value, path, 0)) for (const k of Object.keys(shape)) keys.add(k);
  return keys;
}

function shapesAt(schema: core.$ZodType, value: unknown, path: readonly (string | number)[], depth: number): Record<string, core.$ZodType>[] {
  if (depth > 64) return [];
  const def = defOf(schema);
  const next = (s: core.$ZodType | undefined, v: unknown, p: readonly (string | number)[]) => (s === undefined ? [] : shapesAt(s, v, p, depth + 1));
  switch (def.type) {
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
    case 'readonly':
    case 'catch':
      return next(def.innerType, value, path);
    case 'pipe': {
      // z.preprocess(fn, schema) is a pipe from a transform: run it, as the parse does, and go on with its output.
      const from = def.in === undefined ? undefined : defOf(def.in);
      if (from?.type !== 'transform') return next(def.in, value, path);
      let transformed = value;
      try {
        transformed = from.transform?.(value, { value, issues: [], addIssue: () => {} }) ?? value;
      } catch {
        // The step refuses this value; the branch is then chosen on the value as written.
      }
      return next(def.out, transformed, path);
    }
    case 'union': {
      const options = def.options ?? [];
      const key = def.discriminator;
      const wanted = key !== undefined && isRecord(value) ? value[key] : undefined;
      const matching = wanted === undefined ? options : options.filter((o) => literalsAt(o, key!).includes(wanted));
      return (matching.length > 0 ? matching : options).flatMap((o) => next(o, value, path));
    }
    case 'array': {
      const [index, ...rest] = path;
      if (typeof index !== 'number') return [];
      return next(def.element, Array.isArray(value) ? (value as unknown[])[index] : undefined, rest);
    }
    case 'object': {
      const shape = def.shape ?? {};
      if (path.length === 0) return [shape];
      const [key, ...rest] = path;
      if (typeof key !== 'string' || !Object.hasOwn(shape, key)) return [];
      return next(shape[key], isRecord(value) ? value[key] : undefined, rest);
    }
    default:
      return [];
  }
}

/** The literal values an object option of a discriminated union takes under `key`. */
function literalsAt(option: core.$ZodType, key: string): readonly unknown[] {
  let schema: core.$ZodType | undefined = option;
  for (let i = 0; schema !== undefined && i < 16; i++) {
    const def = defOf(schema);
    if (def.type === 'object') {
      const field = def.shape?.[key];
      return field === undefined ? [] : (defOf(field).values ?? []);
    }
    schema = def.innerType ?? (def.type === 'pipe' ? def.in : undefined);
  }
  return [];
}
