/**
 * The config's JSON Schema, for editors (yaml-language-server, JetBrains): completion and checks of keys and values
 * as you type. Generated from the zod schema (schema.ts), so it cannot drift from what Ballast accepts; `ballast schema`
 * prints it and `npm run schema` writes schema/ballast.schema.json, which a test keeps up to date.
 *
 * It describes the file as written (zod's `io: 'input'`): durations, sizes and addresses are strings, as in YAML.
 * What it cannot say, Ballast still checks at start-up: a duration's or address's form, references between keys
 * (a route's upstream exists), duplicates. Two adjustments make it accept every file Ballast accepts:
 * - `${VAR}` is interpolated before validation, so any value with a constraint (a number, a boolean, an enum, a
 *   pattern) may also be a `${VAR}` reference;
 * - an http listener may leave out `protocol`, which defaults to http (a preprocessing step zod cannot express).
 * Draft-07, the draft editors support most widely.
 */
import { z } from 'zod';
import { configSchema } from './schema.js';

type JsonSchema = Record<string, unknown>;

const ENV_REF = '#/definitions/env_ref';

/** Formats of draft-07 that validators know; zod's own (`starts_with`) are dropped, their `pattern` stays. */
const STANDARD_FORMATS = new Set(['date-time', 'date', 'time', 'email', 'hostname', 'ipv4', 'ipv6', 'uri', 'uri-reference', 'regex']);

export function configJsonSchema(): JsonSchema {
  const generated = z.toJSONSchema(configSchema, { io: 'input', target: 'draft-7', unrepresentable: 'any' }) as JsonSchema;
  const { $schema, ...rest } = generated;
  const body = adjust(rest) as JsonSchema;
  return {
    $schema,
    title: 'Ballast configuration',
    description: 'A Ballast config file (YAML or JSON). Keys, defaults and meaning: README.md, Configuration.',
    ...body,
    definitions: {
      ...(body.definitions as JsonSchema | undefined),
      env_ref: {
        type: 'string',
        pattern: '\\$\\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\\}',
        description: '${VAR} or ${VAR:-default}: the value is read from the environment when Ballast loads the file',
      },
    },
  };
}

/** The schema text as shipped in schema/ballast.schema.json and printed by `ballast schema`. */
export function configJsonSchemaText(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}

function adjust(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(adjust);
  if (node === null || typeof node !== 'object') return node;
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(node as JsonSchema)) {
    // `properties` maps names to schemas: walk each schema, never treat a key named like a keyword as one.
    if (key === 'properties' || key === 'definitions') {
      out[key] = Object.fromEntries(Object.entries(value as JsonSchema).map(([k, v]) => [k, adjust(v)]));
    } else if (key === 'format' && !STANDARD_FORMATS.has(String(value))) {
      continue;
    } else {
      out[key] = adjust(value);
    }
  }
  optionalHttpProtocol(out);
  return constrainedLeaf(out) ? orEnvRef(out) : out;
}

/** The http branch of a listener: `protocol` is optional (schema.ts defaults it to http before the union). */
function optionalHttpProtocol(node: JsonSchema): void {
  const properties = node.properties as Record<string, JsonSchema> | undefined;
  if (properties?.protocol?.const !== 'http' || !Array.isArray(node.required)) return;
  node.required = (node.required as string[]).filter((k) => k !== 'protocol');
}

/** A scalar schema that a `${VAR}` reference (a string) would fail: a number, a boolean, an enum, a pattern. */
function constrainedLeaf(node: JsonSchema): boolean {
  if ('const' in node || 'properties' in node || 'items' in node || 'anyOf' in node || 'oneOf' in node) return false;
  if (node.type === 'number' || node.type === 'integer' || node.type === 'boolean') return true;
  return 'enum' in node || 'pattern' in node || 'minLength' in node || 'maxLength' in node;
}

function orEnvRef(node: JsonSchema): JsonSchema {
  const { default: defaultValue, description, ...value } = node;
  return {
    ...(description !== undefined && { description }),
    ...(defaultValue !== undefined && { default: defaultValue }),
    anyOf: [value, { $ref: ENV_REF }],
  };
}
