/**
 * Loads a YAML (or JSON) config: parse with positions, interpolate `${VAR}`, validate against the schema, and report
 * every problem with its key path, line and column. A config that fails here is never half-applied.
 */
import { readFile } from 'node:fs/promises';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type Node } from 'yaml';
import type { core } from 'zod';
import { configSchema, type Config } from './schema.js';

export interface ConfigError {
  /** Key path as users write it: `upstreams[0].balance`. Empty for the document itself. */
  readonly path: string;
  readonly line: number;
  readonly column: number;
  readonly message: string;
}

export type LoadResult = { ok: true; config: Config } | { ok: false; errors: ConfigError[] };

export function formatConfigErrors(source: string, errors: readonly ConfigError[]): string {
  return errors.map((e) => `  ${source}:${e.line}:${e.column} ${e.path ? `${e.path}: ` : ''}${e.message}`).join('\n');
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

  const raw: unknown = doc.toJS() ?? {};
  const result = configSchema.safeParse(raw);
  if (result.success) return { ok: true, config: deepFreeze(result.data) };

  for (const issue of result.error.issues) {
    for (const e of issueToErrors(doc, issue)) errors.push({ ...e, ...at(e.offset) });
  }
  errors.sort((a, b) => a.line - b.line || a.column - b.column);
  return { ok: false, errors };
}

export async function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): Promise<LoadResult> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    return { ok: false, errors: [{ path: '', line: 0, column: 0, message: `cannot read file: ${(err as Error).message}` }] };
  }
  return parseConfig(text, env);
}

type Segment = string | number;

function issueToErrors(doc: Document, issue: core.$ZodIssue): { path: string; offset: number | undefined; message: string }[] {
  const path = issue.path.filter((p): p is Segment => typeof p !== 'symbol');
  const { node, resolved } = nearestNode(doc, path);
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => {
      const keyNode = isMap(node) ? node.items.find((p) => isScalar(p.key) && p.key.value === key)?.key : undefined;
      return {
        path: formatPath([...path, key]),
        offset: isScalar(keyNode) ? keyNode.range?.[0] : node?.range?.[0],
        message: `unknown key "${key}"`,
      };
    });
  }
  let message = issue.message;
  if (resolved && isScalar(node) && (issue.code === 'invalid_value' || issue.code === 'invalid_type' || issue.code === 'invalid_union')) {
    message += ` (got ${JSON.stringify(node.value)})`;
  } else if (!resolved && issue.code === 'invalid_type') {
    message = `missing required key: ${message}`;
  }
  return [{ path: formatPath(path), offset: node?.range?.[0], message }];
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
    Scalar(_key, node, ancestors) {
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
