/**
 * deploy/kubernetes: every manifest conforms to the Kubernetes API of a current release, strictly (a misspelt field
 * fails), the kustomization lists every file, the pieces agree with each other and with the Ballast config they
 * carry (ports, probe paths, the token's Secret, the drain against the grace period, the headless Service the
 * config discovers), and that config passes `ballast validate` (issue #16).
 */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { parseDuration } from '../src/config/units.js';
import { exitCode, spawnCli } from './helpers/cli.js';
import { schemaErrors, unknownFieldErrors, type Manifest } from './helpers/kubernetes-schema.js';

const DIR = join(import.meta.dirname, '..', 'deploy', 'kubernetes');
const kustomization = parse(readFileSync(join(DIR, 'kustomization.yaml'), 'utf8')) as { resources: string[] };
const files = readdirSync(DIR).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml').sort();
const manifests = files.map((name) => ({ name, manifest: parse(readFileSync(join(DIR, name), 'utf8')) as Manifest }));

/** A manifest of the folder, read freely once the tests above have checked it against its schema. */
function manifest(kind: string, name: string): any {
  const found = manifests.find((m) => m.manifest.kind === kind && m.manifest.metadata?.name === name);
  if (found === undefined) throw new Error(`no ${kind} named ${name} in deploy/kubernetes`);
  return found.manifest;
}

const deployment = manifest('Deployment', 'ballast');
const pod = deployment.spec.template.spec;
const container = pod.containers.find((c: any) => c.name === 'ballast');
const configMap = manifest('ConfigMap', 'ballast-config');
const configText = configMap.data['ballast.yaml'] as string;
const config = parse(configText);

function port(name: string): number {
  return container.ports.find((p: any) => p.name === name).containerPort;
}

function listenPort(listen: string): number {
  return Number(listen.slice(listen.lastIndexOf(':') + 1));
}

function matches(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

describe('the manifests against the Kubernetes API', () => {
  it('the kustomization lists every manifest in the folder, and only files that exist', () => {
    expect([...kustomization.resources].sort()).toEqual(files);
  });

  it.each(files)('%s conforms to the schema of its kind', (name) => {
    expect(schemaErrors(manifests.find((m) => m.name === name)!.manifest)).toEqual([]);
  });

  it('no manifest has a field the API does not know', () => {
    expect(unknownFieldErrors(manifests).flat()).toEqual([]);
  });

  it('a misspelt field fails, at any depth, and so does a value of the wrong type', () => {
    const typo = structuredClone(deployment);
    const c = typo.spec.template.spec.containers[0];
    c.readinesProbe = c.readinessProbe;
    delete c.readinessProbe;
    const label = structuredClone(configMap);
    label.metadata.lables = label.metadata.labels;
    const wrongType = structuredClone(deployment);
    wrongType.spec.replicas = 'two';
    const [a, b] = unknownFieldErrors([{ name: 'typo', manifest: typo }, { name: 'label', manifest: label }]);
    expect(a!.join('\n')).toMatch(/'"readinesProbe"' does not exist in type 'IContainer'/);
    expect(b!.join('\n')).toMatch(/'"lables"' does not exist in type 'IObjectMeta'/);
    expect(schemaErrors(wrongType).join('\n')).toMatch(/\/spec\/replicas must be integer/);
  });
});

describe('the Deployment', () => {
  it('runs at least two replicas, and the disruption budget keeps one of them', () => {
    expect(deployment.spec.replicas).toBeGreaterThanOrEqual(2);
    const pdb = manifest('PodDisruptionBudget', 'ballast');
    expect(matches(pdb.spec.selector.matchLabels, deployment.spec.template.metadata.labels)).toBe(true);
    expect(pdb.spec.minAvailable).toBeGreaterThanOrEqual(1);
    expect(pdb.spec.minAvailable).toBeLessThan(deployment.spec.replicas);
  });

  it('probes readiness on /ready and liveness on /healthz, on the admin port of the config it mounts', () => {
    expect(container.readinessProbe.httpGet).toEqual({ path: '/ready', port: 'admin' });
    expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'admin' });
    expect(port('admin')).toBe(listenPort(config.admin.listen));
    expect(port('http')).toBe(listenPort(config.listeners[0].listen));
    // The kubelet probes the pod's address: a loopback admin would never answer.
    expect(config.admin.listen).toMatch(/^(0\.0\.0\.0|\[::\]):/);
  });

  it('mounts the ConfigMap where --config reads it', () => {
    const mount = container.volumeMounts.find((m: any) => pod.volumes.find((v: any) => v.name === m.name)?.configMap?.name === 'ballast-config');
    const file = container.args[container.args.indexOf('--config') + 1] as string;
    expect(file).toBe(`${mount.mountPath}/ballast.yaml`);
  });

  it('reads the admin token from the Secret, into the variable the config names', () => {
    expect(config.admin.token).toBe('${BALLAST_ADMIN_TOKEN}');
    const env = container.env.find((e: any) => e.name === 'BALLAST_ADMIN_TOKEN');
    const ref = env.valueFrom.secretKeyRef;
    const secret = manifest('Secret', ref.name);
    expect(Object.keys(secret.stringData ?? secret.data)).toContain(ref.key);
  });

  it('pauses before SIGTERM, and gives the drain time to finish before SIGKILL', () => {
    const pause = container.lifecycle.preStop.sleep.seconds as number;
    expect(pause).toBeGreaterThanOrEqual(5);
    const drainMs = parseDuration(config.shutdown.drain_timeout as string)!;
    // The grace period counts from the start of preStop: the pause and the whole drain must fit in it.
    expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(pause * 1000 + drainMs);
  });

  it('sets requests and limits, and runs non-root on a read-only root with no capabilities', () => {
    for (const r of ['cpu', 'memory']) {
      expect(container.resources.requests[r]).toBeDefined();
      expect(container.resources.limits[r]).toBeDefined();
    }
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    expect(pod.securityContext.runAsUser).toBeGreaterThan(0);
    expect(pod.securityContext.seccompProfile).toEqual({ type: 'RuntimeDefault' });
    expect(container.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
  });
});

describe('the Services', () => {
  it('the ballast Service selects the Deployment\'s pods and sends to its http port', () => {
    const service = manifest('Service', 'ballast');
    expect(matches(service.spec.selector, deployment.spec.template.metadata.labels)).toBe(true);
    expect(service.spec.ports.map((p: any) => p.targetPort)).toEqual(['http']);
  });

  it('the config discovers its upstream through the headless origins Service', () => {
    const origins = manifest('Service', 'origins');
    expect(origins.spec.clusterIP).toBe('None');
    const dns = config.upstreams[0].discovery.dns;
    expect(dns.name).toBe(`${origins.metadata.name}.${origins.metadata.namespace ?? 'default'}.svc.cluster.local`);
    expect(origins.spec.ports.map((p: any) => p.port)).toContain(dns.port);
    expect(dns.type).toBe('A');
  });
});

describe('the ConfigMap\'s Ballast config', () => {
  it('passes ballast validate', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'ballast-k8s-')), 'ballast.yaml');
    writeFileSync(file, configText);
    const child = spawnCli(['validate', '--config', file], { BALLAST_ADMIN_TOKEN: 'a-token-of-at-least-16-characters' });
    const code = await exitCode(child);
    expect(child.err()).toBe('');
    expect(code).toBe(0);
  });
});
