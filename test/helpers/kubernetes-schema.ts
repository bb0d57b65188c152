/**
 * Checks a Kubernetes manifest offline against the API of a current release, as `kubectl apply --validate=strict`
 * would against a cluster. Two checks over one source, the `kubernetes-models` package (generated from the
 * Kubernetes OpenAPI spec; 5.1 carries the 1.34 API: Container.restartPolicyRules, PodSpec.hostnameOverride):
 * - `schemaErrors`: its ajv-compiled validators (types, required fields, enums, int-or-string, formats). Like the
 *   OpenAPI spec itself, they let unknown fields through;
 * - `unknownFieldErrors`: so each manifest is also type-checked, as an object literal, against the package's
 *   TypeScript declaration of its kind, whose excess-property check names every field the API does not have at any
 *   depth (`readinesProbe`, `metadata.lables`): the "strict" half.
 */
import ts from 'typescript';
import { join } from 'node:path';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { ConfigMap, Secret, Service } from 'kubernetes-models/v1';

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata?: { name?: string; labels?: Record<string, string> };
  [key: string]: unknown;
}

interface Kind {
  /** The model class: its `validate()` throws what the schema refuses. */
  readonly model: new (data: never) => { validate(): void };
  /** The module and interface that declare it, for the strict check. */
  readonly module: string;
  readonly type: string;
}

/** The kinds deploy/kubernetes uses; a manifest of any other kind is an error, not a pass. */
const KINDS = new Map<string, Kind>([
  ['apps/v1 Deployment', { model: Deployment, module: 'kubernetes-models/apps/v1/Deployment', type: 'IDeployment' }],
  ['v1 Service', { model: Service, module: 'kubernetes-models/v1/Service', type: 'IService' }],
  ['v1 ConfigMap', { model: ConfigMap, module: 'kubernetes-models/v1/ConfigMap', type: 'IConfigMap' }],
  ['v1 Secret', { model: Secret, module: 'kubernetes-models/v1/Secret', type: 'ISecret' }],
  ['policy/v1 PodDisruptionBudget', { model: PodDisruptionBudget, module: 'kubernetes-models/policy/v1/PodDisruptionBudget', type: 'IPodDisruptionBudget' }],
]);

function kindOf(m: Manifest): Kind {
  const kind = KINDS.get(`${m.apiVersion} ${m.kind}`);
  if (kind === undefined) throw new Error(`no schema here for ${m.apiVersion} ${m.kind}: add it to KINDS`);
  return kind;
}

/** What the OpenAPI schema of the manifest's kind refuses, one message per problem; empty when it conforms. */
export function schemaErrors(m: Manifest): string[] {
  const { model: Model } = kindOf(m);
  try {
    new Model(structuredClone(m) as never).validate();
    return [];
  } catch (err) {
    return (err as Error).message.split(', ');
  }
}

const ROOT = join(import.meta.dirname, '..', '..');
const OPTIONS: ts.CompilerOptions = {
  strict: true,
  noEmit: true,
  skipLibCheck: true,
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  types: [],
};

/**
 * Fields the API does not know and values of the wrong type, per manifest (in the order given), from one compiler
 * run over all of them: `name: message` for each.
 */
export function unknownFieldErrors(manifests: readonly { name: string; manifest: Manifest }[]): string[][] {
  // A file in the project root, so `kubernetes-models` resolves from its node_modules as an ES module.
  const file = join(ROOT, '__kubernetes_manifests__.ts');
  const lines = manifests.flatMap(({ manifest }, i) => {
    const { module, type } = kindOf(manifest);
    return [`import type { ${type} as T${i} } from '${module}';`, `export const m${i}: T${i} = ${JSON.stringify(manifest)};`];
  });
  const text = lines.join('\n');
  const host = ts.createCompilerHost(OPTIONS);
  const readFile = host.getSourceFile.bind(host);
  const exists = host.fileExists.bind(host);
  host.getSourceFile = (name, version, ...rest) => (name === file ? ts.createSourceFile(name, text, version) : readFile(name, version, ...rest));
  host.fileExists = (name) => name === file || exists(name);
  const program = ts.createProgram([file], OPTIONS, host);
  const errors = manifests.map((): string[] => []);
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const message = ts.flattenDiagnosticMessageText(d.messageText, '\n');
    // Each manifest is one line: the diagnostic's line says whose it is.
    const line = d.file === undefined || d.start === undefined ? -1 : d.file.getLineAndCharacterOfPosition(d.start).line;
    const index = Math.floor(line / 2);
    if (index < 0 || index >= manifests.length) throw new Error(`unexpected compiler error: ${message}`);
    errors[index]!.push(`${manifests[index]!.name}: ${message}`);
  }
  return errors;
}
