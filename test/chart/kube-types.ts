/**
 * Validation of rendered objects against the Kubernetes API types of the kubernetes-types package, by
 * type-checking them with the TypeScript compiler, and the kinds that have no such schema here.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import type { Manifest } from './helm.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * The rendered kinds that have no schema here (custom resources: kubernetes-types covers the built-in API only),
 * each with what checks it instead. validateManifests refuses them, so that a new kind is never left unchecked
 * silently; the tests that validate every rendered object skip exactly these. docs/testing.md shows the same table.
 */
export const SCHEMALESS_KINDS: Readonly<Record<string, string>> = {
  'keda.sh/v1alpha1 ScaledObject': 'field by field in test/chart/chart.test.ts (target, trigger, fallback, bounds)',
  'keda.sh/v1alpha1 TriggerAuthentication': 'field by field in test/chart/chart.test.ts (IRSA pod identity)',
  'monitoring.coreos.com/v1 ServiceMonitor':
    'test/chart/monitoring.test.ts: selects the Service, its port name and path, and the scrape settings',
  'monitoring.coreos.com/v1 PrometheusRule':
    'promtool check rules and promtool test rules (test/chart/alerts.test.ts) and a real Prometheus loading the rules (test/chart/prometheus.test.ts)',
};

/** The kubernetes-types module of a built-in apiVersion ('v1' is core/v1, 'networking.k8s.io/v1' is networking/v1). */
function typesModule(apiVersion: string): string | undefined {
  const parts = apiVersion.split('/');
  if (parts.length === 1) return `kubernetes-types/core/${parts[0]}`;
  const [group, version] = parts as [string, string];
  if (group.includes('.') && !group.endsWith('.k8s.io')) return undefined;
  return `kubernetes-types/${group.replace(/\.k8s\.io$/, '').replace(/\.apiserver$/, '')}/${version}`;
}

/** The API server treats a null field as an absent one; so do the types. */
function withoutNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutNulls);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([, v]) => v !== null)
        .map(([k, v]) => [k, withoutNulls(v)]),
    );
  }
  return value;
}

const VIRTUAL = path.join(ROOT, 'test', 'chart', '__manifests__.ts');
const COMPILER_OPTIONS: ts.CompilerOptions = {
  strict: true,
  noEmit: true,
  skipLibCheck: true,
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.ESNext,
  moduleResolution: ts.ModuleResolutionKind.Bundler,
  lib: ['lib.es2022.d.ts'],
  types: [],
};
/** Parsed lib and kubernetes-types files, kept between calls. */
const sourceFiles = new Map<string, ts.SourceFile>();

/** Type-check diagnostics of a generated file, one message per diagnostic with its 0-based line. */
function typeCheck(text: string): { line: number; message: string }[] {
  const host = ts.createCompilerHost(COMPILER_OPTIONS, true);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (fileName, languageVersion, onError) => {
    if (fileName === VIRTUAL) return ts.createSourceFile(fileName, text, languageVersion, true);
    let file = sourceFiles.get(fileName);
    if (!file) {
      file = getSourceFile(fileName, languageVersion, onError);
      if (file) sourceFiles.set(fileName, file);
    }
    return file;
  };
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (fileName) => fileName === VIRTUAL || fileExists(fileName);
  const readFile = host.readFile.bind(host);
  host.readFile = (fileName) => (fileName === VIRTUAL ? text : readFile(fileName));
  const program = ts.createProgram([VIRTUAL], COMPILER_OPTIONS, host);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const message = ts.flattenDiagnosticMessageText(d.messageText, ' ');
    if (!d.file || d.start === undefined) return { line: -1, message };
    const at = jsonPath(d.file, d.start);
    return { line: d.file.getLineAndCharacterOfPosition(d.start).line, message: at ? `${at}: ${message}` : message };
  });
}

/** The JSON pointer (/spec/template/...) of the object-literal property or array element at `position`. */
function jsonPath(file: ts.SourceFile, position: number): string {
  let node: ts.Node | undefined = file;
  for (;;) {
    const inner: ts.Node | undefined = node
      .getChildren(file)
      .find((c) => c.getStart(file) <= position && position < c.getEnd());
    if (!inner) break;
    node = inner;
  }
  const segments: string[] = [];
  for (let current: ts.Node | undefined = node; current; current = current.parent) {
    const parent: ts.Node | undefined = current.parent;
    if (ts.isPropertyAssignment(current) && ts.isStringLiteral(current.name)) segments.unshift(current.name.text);
    else if (parent && ts.isArrayLiteralExpression(parent))
      segments.unshift(String(parent.elements.indexOf(current as ts.Expression)));
  }
  return segments.length > 0 ? `/${segments.join('/')}` : '';
}

/**
 * Checks rendered objects of the built-in API against the Kubernetes API types (kubernetes-types, with the
 * TypeScript compiler: required fields, field types, apiVersion and kind, and no unknown field at any depth).
 * Resolves to one message per invalid object (empty when all are valid); an object of a kind with no schema here
 * (custom resources, SCHEMALESS_KINDS) is reported too.
 */
export async function validateManifests(manifests: readonly Manifest[]): Promise<string[]> {
  const failures: string[] = [];
  const owners: { first: number; last: number; manifest: Manifest }[] = [];
  let text = '';
  let lineCount = 0;
  for (const [index, manifest] of manifests.entries()) {
    const { apiVersion, kind } = manifest;
    const where = `${kind} ${manifest.metadata.name} (${apiVersion})`;
    const module = typesModule(apiVersion);
    if (!module || !/^[A-Z][A-Za-z0-9]*$/.test(kind)) {
      failures.push(`no schema for ${where}${SCHEMALESS_KINDS[`${apiVersion} ${kind}`] ? ': a custom resource' : ''}`);
      continue;
    }
    const block =
      `import type { ${kind} as Kind${index} } from ${JSON.stringify(module)};\n` +
      `export const manifest${index}: Kind${index} = ${JSON.stringify(withoutNulls(manifest), null, 1)};\n`;
    const blockLines = block.split('\n').length - 1;
    owners.push({ first: lineCount, last: lineCount + blockLines - 1, manifest });
    text += block;
    lineCount += blockLines;
  }
  if (owners.length === 0) return failures;
  const diagnostics = typeCheck(text);
  for (const { first, last, manifest } of owners) {
    const messages = diagnostics.filter((d) => d.line >= first && d.line <= last).map((d) => d.message);
    if (messages.length > 0) {
      failures.push(
        `${manifest.kind} ${manifest.metadata.name} is not a valid ${manifest.apiVersion} ${manifest.kind}: ${messages.join('; ')}`,
      );
    }
  }
  const stray = diagnostics.filter((d) => !owners.some((o) => d.line >= o.first && d.line <= o.last));
  if (stray.length > 0)
    throw new Error(`type-checking the manifests failed: ${stray.map((d) => d.message).join('; ')}`);
  return failures;
}

/** Validation of one object of the built-in API against its Kubernetes API type (see validateManifests). */
export async function validateManifest(manifest: Manifest): Promise<void> {
  const [failure] = await validateManifests([manifest]);
  if (failure) throw new Error(failure);
}
