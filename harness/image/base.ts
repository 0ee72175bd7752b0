/**
 * The stand-in for `node:24-trixie-slim`, which no registry serves here:
 * `debootstrap --variant=minbase trixie` from Debian's packages, plus the
 * project's own pinned Node binary (the one running this code, from the `node`
 * devDependency), npm from the npm registry, and the machine's CA bundle
 * (registry traffic may be TLS-intercepted; the base sets NODE_EXTRA_CA_CERTS
 * to it, as this machine does), imported with `podman import`.
 *
 * Built once per key (Node version, npm version, the debootstrap inputs, the CA
 * bundle) and kept outside the repository under cacheHome(): the rootfs tarball
 * there, the image in podman's store as localhost/form-data-node-base:<key>.
 */
import { createHash } from 'node:crypto';
import { access, copyFile, mkdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { cacheHome, podman, podmanEnv, runCommand } from './podman.ts';

/** What debootstrap is asked for; part of the cache key. */
export const DEBOOTSTRAP = {
  suite: 'trixie',
  variant: 'minbase',
  arch: 'amd64',
  mirror: 'http://deb.debian.org/debian',
} as const;

/** Bump when the recipe below changes in a way the inputs do not show. */
const RECIPE = 1;

export interface BaseImage {
  tag: string;
  /** Cache key (the tag's version part). */
  key: string;
  /** How it was obtained this run. */
  source: 'podman store' | 'cached rootfs' | 'debootstrap';
  seconds: number;
}

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

async function must(command: string, args: readonly string[], what: string): Promise<string> {
  const result = await runCommand(command, args, process.env);
  if (result.code !== 0)
    throw new Error(`${what} failed (${result.code}): ${(result.stderr || result.stdout).trim().slice(-2000)}`);
  return result.stdout;
}

function caBundle(): string {
  return process.env.NODE_EXTRA_CA_CERTS || '/etc/ssl/certs/ca-certificates.crt';
}

async function npmVersion(): Promise<string> {
  const fromAgent = /\bnpm\/(\d+\.\d+\.\d+)/.exec(process.env.npm_config_user_agent ?? '');
  if (fromAgent) return fromAgent[1]!;
  return (await must('npm', ['--version'], 'npm --version')).trim();
}

async function inputs(): Promise<{ key: string; node: string; npm: string; ca: Buffer | undefined }> {
  const node = process.version.slice(1);
  const npm = await npmVersion();
  const ca = await readFile(caBundle()).catch(() => undefined);
  const hash = createHash('sha256')
    .update(
      JSON.stringify({ RECIPE, node, npm, DEBOOTSTRAP, ca: ca ? createHash('sha256').update(ca).digest('hex') : null }),
    )
    .digest('hex')
    .slice(0, 12);
  return { key: `${node}-${hash}`, node, npm, ca };
}

/** Builds the rootfs tarball at `tarball` (atomically: written aside, then renamed). */
async function buildRootfs(tarball: string, npm: string, ca: Buffer | undefined): Promise<void> {
  const work = `${tarball}.${process.pid}.work`;
  const rootfs = path.join(work, 'rootfs');
  await rm(work, { recursive: true, force: true });
  await mkdir(rootfs, { recursive: true });
  const debs = path.join(cacheHome(), 'debootstrap-debs');
  await mkdir(debs, { recursive: true });
  try {
    await must(
      'debootstrap',
      [
        `--variant=${DEBOOTSTRAP.variant}`,
        `--arch=${DEBOOTSTRAP.arch}`,
        `--cache-dir=${debs}`,
        DEBOOTSTRAP.suite,
        rootfs,
        DEBOOTSTRAP.mirror,
      ],
      'debootstrap',
    );
    // Node: the project's binary; npm: the registry's package, as the official image ships them.
    await copyFile(process.execPath, path.join(rootfs, 'usr/local/bin/node'));
    const npmDir = path.join(rootfs, 'usr/local/lib/node_modules/npm');
    await mkdir(npmDir, { recursive: true });
    const packed = (
      await must(
        'npm',
        ['pack', `npm@${npm}`, '--pack-destination', work, '--json', '--loglevel=error'],
        'npm pack npm',
      )
    ).trim();
    const [packInfo] = JSON.parse(packed) as { filename: string }[];
    if (!packInfo) throw new Error(`npm pack npm@${npm} reported nothing: ${packed}`);
    await must(
      'tar',
      ['-xzf', path.join(work, packInfo.filename), '-C', npmDir, '--strip-components=1', '--no-same-owner'],
      'unpacking npm',
    );
    await symlink('../lib/node_modules/npm/bin/npm-cli.js', path.join(rootfs, 'usr/local/bin/npm'));
    await symlink('../lib/node_modules/npm/bin/npx-cli.js', path.join(rootfs, 'usr/local/bin/npx'));
    if (ca) await writeFile(path.join(rootfs, 'usr/local/share/ca-bundle.crt'), ca);
    // Slim, as debian:*-slim: no package lists or downloaded packages.
    await must(
      'sh',
      [
        '-c',
        `rm -rf "${rootfs}"/var/lib/apt/lists/* "${rootfs}"/var/cache/apt/*.bin "${rootfs}"/var/cache/apt/archives/*.deb`,
      ],
      'cleaning apt',
    );
    await must('tar', ['--numeric-owner', '-C', rootfs, '-cf', `${tarball}.partial`, '.'], 'tar of the rootfs');
    await rename(`${tarball}.partial`, tarball);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** The stand-in base image's tag, built or imported when podman does not have it yet. */
export async function ensureBaseImage(): Promise<BaseImage> {
  const started = Date.now();
  const { key, npm, ca } = await inputs();
  const tag = `localhost/form-data-node-base:${key}`;
  const seconds = () => (Date.now() - started) / 1000;
  const present = await podman(['image', 'exists', tag]).then(
    () => true,
    () => false,
  );
  if (present) return { tag, key, source: 'podman store', seconds: seconds() };
  const dir = path.join(cacheHome(), 'base', key);
  const tarball = path.join(dir, 'rootfs.tar');
  await mkdir(dir, { recursive: true });
  let source: BaseImage['source'] = 'cached rootfs';
  if (!(await exists(tarball))) {
    source = 'debootstrap';
    await buildRootfs(tarball, npm, ca);
  }
  const changes = ['ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'CMD ["node"]'];
  if (ca) changes.push('ENV NODE_EXTRA_CA_CERTS=/usr/local/share/ca-bundle.crt');
  await podman(['import', ...changes.flatMap((c) => ['--change', c]), tarball, tag]);
  return { tag, key, source, seconds: seconds() };
}

/** The image built from the project's Dockerfile on the stand-in base; `cached` when podman reused layers. */
export interface BuiltImage {
  base: BaseImage;
  seconds: number;
  cached: boolean;
}

/** Builds the project's Dockerfile as `tag` on the stand-in base (the image test, the cluster tests, the release). */
export async function buildProjectImage(tag: string, root: string): Promise<BuiltImage> {
  const base = await ensureBaseImage();
  const started = Date.now();
  const build = await runCommand(
    'podman',
    [
      'build',
      '--isolation=chroot',
      '--network=host',
      '--build-arg',
      `NODE_IMAGE=${base.tag}`,
      '-t',
      tag,
      '-f',
      path.join(root, 'Dockerfile'),
      root,
    ],
    await podmanEnv(),
  );
  const output = build.stdout + build.stderr;
  if (build.code !== 0) throw new Error(`podman build failed (${build.code}):\n${output.slice(-4000)}`);
  return { base, seconds: (Date.now() - started) / 1000, cached: /Using cache/.test(output) };
}
