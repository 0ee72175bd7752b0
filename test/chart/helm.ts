/**
 * Rendering the chart for the tests, in both major versions of Helm clusters deploy with (the binaries:
 * harness/helm.ts): every `helm template` runs under Helm 4 and Helm 3, and the two outputs must be identical; the
 * rendered objects, parsed and found by kind and name. Validation against the Kubernetes API types: kube-types.ts.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { helm, type HelmResult } from '../../harness/helm.ts';

export {
  HELM_LAYERS,
  HelmFetchError,
  fetchHelm,
  helm,
  helmBinary,
  helmCacheDir,
  type HelmLayer,
  type HelmMajor,
  type HelmResult,
} from '../../harness/helm.ts';
export { SCHEMALESS_KINDS, validateManifest, validateManifests } from './kube-types.ts';

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
