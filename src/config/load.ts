/**
 * Loads a YAML (or JSON) config: parse with positions, interpolate `${VAR}`, validate against the schema, and report
 * every problem with its key path, line and column. A config that fails here is never half-applied.
 */
import { readFile } from 'node:fs/promises';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type Node } from 'yaml';
import type { core } from 'zod';
import { configSchema, type Config } from './schema.js';
import { closest, keysAt } from './suggest.js';

export interface ConfigError {
  /** Key path as users write it: `upstreams[0].balance`. Empty for the document itself. */
  readonly path: string;
  /** 0 (and column 0) when the error is about no place in the file: it could not be read. */
  readonly line: number;
  readonly column: number;
  readonly message: string;
}

export type LoadResult = { ok: true; config: Config } | { ok: false; errors: ConfigError[] };

export function formatConfigErrors(source: string, errors: readonly ConfigError[]): string {
  return errors.map((e) => `  ${source}${e.line > 0 ? `:${e.line}:${e.column} ` : ': '}${e.path ? `${e.path}: ` : ''}${e.message}`).join('\n');
}

/** `${NAME}` or `${NAME:-default}`; `$${` escapes a literal `${`. */
const ENV_REF = /\$(\$)?\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

export function parseConfig(text: string, env: NodeJS.ProcessEnv = process.env): LoadResult {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number | undefined): { line: number; column: number } => {
    const pos = lineCounter.linePos(offset ?? 0);
    return { line: pos.line, column: pos.col };
  };

  const errors: ConfigError[] = doc.errors.map((e) => ({ path: '', ...at(e.pos[0]), message: e.message.split('\n')[0]! }));
  if (errors.length > 0) return { ok: false, errors };

  // Interpolate in scalar values only, after parsing, so a variable can never inject YAML structure.
  visit(doc, {
    Scalar(_key, node) {
      if (typeof node.value !== 'string' || !node.value.includes('${')) return;
      node.value = node.value.replace(ENV_REF, (whole, escaped: string | undefined, name: string, fallback: string | undefined) => {
        if (escaped) return whole.slice(1);
        const value = env[name];
        if (value !== undefined && value !== '') return value;
        if (fallback !== undefined) return fallback;
        errors.push({ path: pathOfNode(doc, node), ...at(node.range?.[0]), message: `environment variable ${name} is not set` });
        return '';
      });
    },
  });
  if (errors.length > 0) return { ok: false, errors };

  for (const { node, message } of aliasErrors(doc)) errors.push({ path: pathOfNode(doc, node), ...at(node.range?.[0]), message });
  if (errors.length > 0) return { ok: false, errors };

  const converted = toJS(doc);
  if (!converted.ok) {
    const { node, message } = converted;
    return { ok: false, errors: [{ path: node ? pathOfNode(doc, node) : '', ...at(node?.range?.[0]), message }] };
  }
  const result = configSchema.safeParse(converted.value ?? {});
  if (result.success) return { ok: true, config: deepFreeze(result.data) };

  for (const issue of result.error.issues) {
    for (const { offset, ...e } of issueToErrors(doc, converted.value, issue)) errors.push({ ...e, ...at(offset) });
  }
  errors.sort((a, b) => a.line - b.line || a.column - b.column);
  return { ok: false, errors };
}

export async function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): Promise<LoadResult> {
  const read = await readConfigFile(file);
  return read.ok ? parseConfig(read.text, env) : read;
}

/** A config file's text, or the one error (line 0) that says why it could not be read. */
export async function readConfigFile(file: string): Promise<{ ok: true; text: string } | { ok: false; errors: ConfigError[] }> {
  try {
    return { ok: true, text: await readFile(file, 'utf8') };
  } catch (err) {
    return { ok: false, errors: [{ path: '', line: 0, column: 0, message: `cannot read the file: ${readFailure(err)}` }] };
  }
}

/** Why a file could not be read, without the path Node repeats: `no such file or directory`, not `ENOENT: …, open 'x'`. */
function readFailure(err: unknown): string {
  const { code, message } = err as NodeJS.ErrnoException;
  if (code === 'EISDIR') return 'it is a directory';
  return /^[A-Z]+: (.*?), \w+ '.*'$/s.exec(message)?.[1] ?? message;
}

type Segment = string | number;

/**
 * Aliases that `doc.toJS()` cannot resolve, all of them rather than the first it throws on (without a position): an
 * alias whose anchor is not defined before it, and one inside the node it refers to (which would build a cycle).
 * yaml resolves `*name` to the last `&name` before it in document order, which is the order `visit` walks.
 */
function aliasErrors(doc: Document): { node: Node; message: string }[] {
  const errors: { node: Node; message: string }[] = [];
  const anchored = new Map<string, Node>();
  visit(doc, {
    Node(_key, node, ancestors) {
      if (!isAlias(node)) {
        if (node.anchor) anchored.set(node.anchor, node);
        return;
      }
      const target = anchored.get(node.source);
      if (target === undefined) {
        errors.push({ node, message: `alias *${node.source} has no anchor: expected &${node.source} defined before it` });
      } else if (ancestors.includes(target)) {
        errors.push({ node, message: `alias *${node.source} refers to a node that contains it` });
      }
    },
  });
  return errors;
}

/**
 * `doc.toJS()`, with what it throws turned into an error at the node it was converting, since yaml's errors from this
 * stage carry no position. The one expected here is its guard against resource exhaustion ("billion laughs"): an anchor
 * expanded more than 100 times, counting the aliases nested in it.
 */
function toJS(doc: Document): { ok: true; value: unknown } | { ok: false; node: Node | undefined; message: string } {
  const converting: Node[] = [];
  visit(doc, {
    Node(_key, node) {
      // An own property on this document's nodes, shadowing the method yaml calls on each node it converts.
      const toJSON = node.toJSON.bind(node) as (arg?: unknown, ctx?: unknown) => unknown;
      Object.defineProperty(node, 'toJSON', {
        value: (arg?: unknown, ctx?: unknown): unknown => {
          converting.push(node);
          const value = toJSON(arg, ctx);
          converting.pop(); // left in place by a throw, so the innermost node converting is the one that failed
          return value;
        },
      });
    },
  });
  try {
    return { ok: true, value: doc.toJS() };
  } catch (err) {
    const node = converting.at(-1);
    let message = err instanceof Error ? err.message : String(err);
    if (message.startsWith('Excessive alias count')) message = 'too many aliases: an anchor may be expanded at most 100 times, counting the aliases inside it';
    return { ok: false, node, message: isAlias(node) ? `alias *${node.source}: ${message}` : message };
  }
}

/** Issues whose message does not quote the value, so the error adds it (custom messages quote it themselves). */
const SHOWS_VALUE: ReadonlySet<core.$ZodIssue['code']> = new Set(['invalid_value', 'invalid_type', 'invalid_union', 'invalid_format', 'too_small', 'too_big']);

function issueToErrors(doc: Document, input: unknown, issue: core.$ZodIssue): { path: string; offset: number | undefined; message: string }[] {
  const path = issue.path.filter((p): p is Segment => typeof p !== 'symbol');
  const { node, resolved } = nearestNode(doc, path);
  if (issue.code === 'unrecognized_keys') {
    const known = keysAt(configSchema, input, path);
    return issue.keys.map((key) => {
      const keyNode = isMap(node) ? node.items.find((p) => isScalar(p.key) && p.key.value === key)?.key : undefined;
      return {
        path: formatPath([...path, key]),
        offset: isScalar(keyNode) ? keyNode.range?.[0] : node?.range?.[0],
        message: `unknown key "${key}"${didYouMean(key, known)}`,
      };
    });
  }
  let message = issue.message;
  if (resolved && isScalar(node) && SHOWS_VALUE.has(issue.code)) {
    message += ` (got ${JSON.stringify(node.value)})`;
  } else if (!resolved && issue.code === 'invalid_type') {
    message = `missing required key: ${message}`;
  }
  if (resolved && isScalar(node) && typeof node.value === 'string') message += didYouMean(node.value, optionsOf(issue));
  return [{ path: formatPath(path), offset: node?.range?.[0], message }];
}

/** `; did you mean "weight"?`, or nothing when no candidate is close. */
function didYouMean(word: string, candidates: Iterable<string>): string {
  const guess = closest(word, candidates);
  return guess === undefined ? '' : `; did you mean "${guess}"?`;
}

/**
 * The values an issue says were allowed at its own path: an enum's (invalid_value), a discriminated union's
 * (`protocol: http or tcp`), and those of the branches of a union that were literals (`auto` of `workers`).
 */
function optionsOf(issue: core.$ZodIssue): string[] {
  const strings = (values: readonly unknown[]) => values.filter((v): v is string => typeof v === 'string');
  switch (issue.code) {
    case 'invalid_value':
      return strings(issue.values);
    case 'invalid_union': {
      const options = (issue as { options?: readonly unknown[] }).options;
      if (options !== undefined) return strings(options);
      return issue.errors.flat().filter((e) => e.path.length === 0).flatMap(optionsOf);
    }
    default:
      return [];
  }
}

/** The deepest node that exists along `path`, and whether the whole path resolved. */
function nearestNode(doc: Document, path: readonly Segment[]): { node: Node | undefined; resolved: boolean } {
  let node: unknown = doc.contents;
  for (let i = 0; i < path.length; i++) {
    const next: unknown = isMap(node) || isSeq(node) ? node.get(path[i], true) : undefined;
    if (next === undefined) return { node: node as Node, resolved: false };
    node = next;
  }
  return { node: node as Node, resolved: true };
}

function pathOfNode(doc: Document, target: Node): string {
  let found = '';
  visit(doc, {
    Node(_key, node, ancestors) {
      if (node !== target) return;
      const segments: Segment[] = [];
      for (let i = 0; i < ancestors.length; i++) {
        const a = ancestors[i];
        const child = ancestors[i + 1] ?? node;
        if (isMap(a)) {
          const pair = a.items.find((p) => p === child);
          if (pair && isScalar(pair.key)) segments.push(String(pair.key.value));
        } else if (isSeq(a)) {
          segments.push(a.items.indexOf(child as Node));
        }
      }
      found = formatPath(segments);
      return visit.BREAK;
    },
  });
  return found;
}

export function formatPath(path: readonly Segment[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? p : `.${p}`;
  return out;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
