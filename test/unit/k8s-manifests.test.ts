import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

/*
 * deploy/k8s renders with kustomize and every object is valid Kubernetes, checked offline (no
 * cluster here): kubernetes-models' JSON-schema validators catch wrong types, enums and missing
 * fields; its TypeScript interfaces, compiled over each object as a literal, catch unknown fields
 * (a typo such as `readinesProbe`), which the schemas let through.
 */

const ROOT = join(import.meta.dirname, '../..');
const K8S_DIR = join(ROOT, 'deploy/k8s');
const require = createRequire(import.meta.url);

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  [field: string]: unknown;
}

/** The kinds the manifests may use: apiVersion/kind → the kubernetes-models module and type. */
const MODELS: Record<string, { module: string; name: string }> = {
  'v1/ConfigMap': { module: 'kubernetes-models/v1/ConfigMap', name: 'ConfigMap' },
  'v1/Namespace': { module: 'kubernetes-models/v1/Namespace', name: 'Namespace' },
  'v1/Service': { module: 'kubernetes-models/v1/Service', name: 'Service' },
  'apps/v1/Deployment': { module: 'kubernetes-models/apps/v1/Deployment', name: 'Deployment' },
  'batch/v1/Job': { module: 'kubernetes-models/batch/v1/Job', name: 'Job' },
  'policy/v1/PodDisruptionBudget': {
    module: 'kubernetes-models/policy/v1/PodDisruptionBudget',
    name: 'PodDisruptionBudget',
  },
  'autoscaling/v2/HorizontalPodAutoscaler': {
    module: 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler',
    name: 'HorizontalPodAutoscaler',
  },
};

function render(dir: string): K8sObject[] {
  const yaml = execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8' });
  return parseAllDocuments(yaml).map((document) => {
    if (document.errors.length > 0) throw new Error(String(document.errors[0]));
    return document.toJS() as K8sObject;
  });
}

function modelOf(object: K8sObject): { module: string; name: string } {
  const model = MODELS[`${object.apiVersion}/${object.kind}`];
  if (!model) throw new Error(`no schema known for ${object.apiVersion} ${object.kind}`);
  return model;
}

/** Schema errors of each object (types, enums, required fields), one line each. */
function schemaErrors(objects: readonly K8sObject[]): string[] {
  return objects.flatMap((object) => {
    const model = modelOf(object);
    const Model = (
      require(model.module) as Record<string, new (data: unknown) => { validate(): void }>
    )[model.name]!;
    try {
      new Model(object).validate();
      return [];
    } catch (error) {
      return [`${object.kind}/${object.metadata.name}: ${(error as Error).message}`];
    }
  });
}

/** Type errors of each object as a TypeScript literal of its kubernetes-models interface. */
function typeErrors(objects: readonly K8sObject[]): string[] {
  const lines = objects.map((object, index) => {
    const model = modelOf(object);
    return `import type { I${model.name} as T${index} } from '${model.module}';\nexport const o${index}: T${index} = ${JSON.stringify(object)};`;
  });
  const fileName = join(ROOT, '__k8s_manifests__.ts');
  const source = lines.join('\n');
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    target: ts.ScriptTarget.ES2022,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const readFile = host.readFile.bind(host);
  const getSourceFile = host.getSourceFile.bind(host);
  host.readFile = (name) => (name === fileName ? source : readFile(name));
  host.fileExists = (name) => name === fileName || ts.sys.fileExists(name);
  host.getSourceFile = (name, version) =>
    name === fileName ? ts.createSourceFile(name, source, version) : getSourceFile(name, version);
  const program = ts.createProgram([fileName], options, host);
  return ts.getPreEmitDiagnostics(program).map((diagnostic) => {
    const text = ts.flattenDiagnosticMessageText(diagnostic.messageText, ' ');
    if (diagnostic.file?.fileName !== fileName || diagnostic.start === undefined) return text;
    const line = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start).line;
    const object = objects[Math.floor(line / 2)];
    return `${object?.kind}/${object?.metadata.name}: ${text}`;
  });
}

const renders: Record<string, K8sObject[]> = {
  base: render(K8S_DIR),
  ...Object.fromEntries(
    readdirSync(join(K8S_DIR, 'overlays')).map((name) => [
      `overlays/${name}`,
      render(join(K8S_DIR, 'overlays', name)),
    ]),
  ),
};

function find(objects: readonly K8sObject[], kind: string, name: string): any {
  const object = objects.find((o) => o.kind === kind && o.metadata.name === name);
  expect(object, `${kind}/${name}`).toBeDefined();
  return object;
}

/** Every variable the service reads, as listed in .env.example (kept current by review and tests). */
function knownVariables(): Set<string> {
  const names = [
    ...readFileSync(join(ROOT, '.env.example'), 'utf8').matchAll(/^#?\s*([A-Z][A-Z0-9_]+)=/gm),
  ];
  return new Set(names.map((match) => match[1]!));
}

describe('deploy/k8s', () => {
  it.each(Object.keys(renders))(
    '%s renders objects valid against the Kubernetes schemas',
    (name) => {
      const objects = renders[name]!;
      expect(objects.length).toBeGreaterThan(0);
      expect(schemaErrors(objects)).toEqual([]);
      expect(typeErrors(objects)).toEqual([]);
    },
  );

  it('the validation catches a misspelt field and a wrong type', () => {
    const api = structuredClone(find(renders.base!, 'Deployment', 'fido-api'));
    const container = api.spec.template.spec.containers[0];
    container.readinesProbe = container.readinessProbe;
    delete container.readinessProbe;
    expect(typeErrors([api]).join('\n')).toMatch(/readinesProbe/);

    const service = structuredClone(find(renders.base!, 'Service', 'fido-api'));
    service.spec.ports[0].port = 'eighty';
    expect(schemaErrors([service]).join('\n')).toMatch(/port/);
  });

  it.each(Object.keys(renders))(
    '%s: the API pod is probed, drained, bounded and unprivileged',
    (name) => {
      const objects = renders[name]!;
      const config = find(objects, 'ConfigMap', 'fido-config').data as Record<string, string>;
      const api = find(objects, 'Deployment', 'fido-api');
      const pod = api.spec.template.spec;
      const [container] = pod.containers;
      expect(pod.containers).toHaveLength(1);
      expect(container.readinessProbe.httpGet.path).toBe('/readyz');
      expect(container.livenessProbe.httpGet.path).toBe('/healthz');
      const env = Object.fromEntries(container.env.map((e: any) => [e.name, e.value]));
      expect(env).toMatchObject({ WEB_CONCURRENCY: '1', WORKER: 'off', SCHEDULER: 'off' });

      // The pod outlives the preStop pause plus the service's own drain.
      const preStopMs = Number(
        /setTimeout\(\(\) => \{\}, (\d+)\)/.exec(
          container.lifecycle.preStop.exec.command.join(' '),
        )?.[1],
      );
      expect(preStopMs).toBeGreaterThan(0);
      const drainMs = Number(config.SHUTDOWN_TIMEOUT_MS);
      expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(preStopMs + drainMs);

      for (const deployment of [api, find(objects, 'Deployment', 'fido-worker')]) {
        const spec = deployment.spec.template.spec;
        expect(spec.securityContext.runAsNonRoot).toBe(true);
        for (const c of spec.containers) {
          expect(c.securityContext).toMatchObject({
            readOnlyRootFilesystem: true,
            allowPrivilegeEscalation: false,
          });
          expect(Object.keys(c.resources.requests)).toEqual(
            expect.arrayContaining(['cpu', 'memory']),
          );
          expect(Object.keys(c.resources.limits)).toEqual(
            expect.arrayContaining(['cpu', 'memory']),
          );
          expect(c.envFrom).toEqual(
            expect.arrayContaining([{ secretRef: { name: 'fido-secrets' } }]),
          );
        }
      }
      const service = find(objects, 'Service', 'fido-api');
      expect(service.spec.selector).toEqual(api.spec.selector.matchLabels);
      expect(find(objects, 'PodDisruptionBudget', 'fido-api').spec.selector.matchLabels).toEqual(
        api.spec.selector.matchLabels,
      );
      expect(
        find(objects, 'HorizontalPodAutoscaler', 'fido-api').spec.scaleTargetRef,
      ).toMatchObject({
        kind: 'Deployment',
        name: 'fido-api',
      });
    },
  );

  it.each(Object.keys(renders))(
    '%s: the worker and the migration job run the built entries',
    (name) => {
      const objects = renders[name]!;
      const config = find(objects, 'ConfigMap', 'fido-config').data as Record<string, string>;
      const worker = find(objects, 'Deployment', 'fido-worker').spec.template.spec.containers[0];
      expect(worker.command).toEqual(['node', 'dist/worker.js']);
      const probePort = worker.ports.find(
        (p: any) => p.name === worker.readinessProbe.httpGet.port,
      );
      expect(String(probePort.containerPort)).toBe(config.WORKER_PORT);
      expect(worker.livenessProbe.httpGet.path).toBe('/healthz');
      const job = find(objects, 'Job', 'fido-migrate').spec.template.spec;
      expect(job.containers[0].command).toEqual(['node', 'dist/cli.js', 'migrate']);
      expect(job.restartPolicy).toBe('Never');
    },
  );

  it.each(Object.keys(renders))(
    '%s: the ConfigMap holds only known, non-secret settings',
    (name) => {
      const config = find(renders[name]!, 'ConfigMap', 'fido-config').data as Record<
        string,
        string
      >;
      const known = knownVariables();
      expect(Object.keys(config).filter((key) => !known.has(key))).toEqual([]);
      const secret = /URL$|KEY|SECRET|PASSWORD|TOKEN/;
      expect(Object.keys(config).filter((key) => secret.test(key))).toEqual([]);
    },
  );
});
