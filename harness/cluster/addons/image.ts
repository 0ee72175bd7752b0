/**
 * Builds one of the images a cluster runs, with podman on the project's Debian base (harness/image/base.ts), and pushes
 * it when asked: the project's image (Dockerfile) and the chart's in-cluster dependencies of values-local.yaml
 * (images/postgresql, images/fauxqs). No container registry is reachable here, so nothing is pulled.
 *
 *   node harness/cluster/addons/image.ts form-data|postgresql|fauxqs
 *
 * Reads IMAGE (the reference to tag, e.g. 127.0.0.1:5000/form-data:abc) and PUSH_IMAGE (`true`: push it, plain HTTP
 * to a registry on this machine), which is what skaffold's custom builder passes (skaffold.yaml, profile `podman`).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureBaseImage } from '../../image/base.ts';
import { podman, podmanEnv, runCommand } from '../../image/podman.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const IMAGES = path.join(ROOT, 'harness/cluster/addons/images');

/** The images this builds, each with its build context and Containerfile. */
export const CLUSTER_IMAGES = {
  'form-data': { context: ROOT, file: path.join(ROOT, 'Dockerfile') },
  postgresql: { context: path.join(IMAGES, 'postgresql'), file: path.join(IMAGES, 'postgresql/Containerfile') },
  fauxqs: { context: path.join(IMAGES, 'fauxqs'), file: path.join(IMAGES, 'fauxqs/Containerfile') },
} as const;
export type ClusterImage = keyof typeof CLUSTER_IMAGES;

/** A podman build or push that failed, with what podman said. */
export class ImageBuildError extends Error {
  override name = 'ImageBuildError';
  readonly image: ClusterImage;

  constructor(image: ClusterImage, message: string) {
    super(`${image}: ${message}`);
    this.image = image;
  }
}

/** The fauxqs version the project's lockfile pins (the emulator the tests run is the one the image runs). */
async function fauxqsVersion(): Promise<string> {
  const lock = JSON.parse(await readFile(path.join(ROOT, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { version?: string }>;
  };
  const version = lock.packages['node_modules/fauxqs']?.version;
  if (!version) throw new ImageBuildError('fauxqs', 'package-lock.json pins no fauxqs');
  return version;
}

/** Builds `image` as `reference` and pushes it when `push`; resolves to the seconds each step took. */
export async function buildClusterImage(
  image: ClusterImage,
  reference: string,
  push: boolean,
): Promise<{ build: number; push: number }> {
  const { context, file } = CLUSTER_IMAGES[image];
  const base = await ensureBaseImage();
  const args = ['--build-arg', `NODE_IMAGE=${base.tag}`];
  if (image === 'fauxqs') args.push('--build-arg', `FAUXQS_VERSION=${await fauxqsVersion()}`);
  const started = Date.now();
  const result = await runCommand(
    'podman',
    ['build', '--isolation=chroot', '--network=host', ...args, '-t', reference, '-f', file, context],
    await podmanEnv(),
  );
  if (result.code !== 0)
    throw new ImageBuildError(
      image,
      `podman build failed (${result.code}):\n${(result.stdout + result.stderr).slice(-4000)}`,
    );
  const built = Date.now();
  if (push) await podman(['push', '--tls-verify=false', reference]);
  return { build: (built - started) / 1000, push: (Date.now() - built) / 1000 };
}

async function main(): Promise<void> {
  const image = process.argv[2];
  if (!image || !(image in CLUSTER_IMAGES)) {
    process.stderr.write(`usage: image.ts ${Object.keys(CLUSTER_IMAGES).join('|')} (IMAGE=ref [PUSH_IMAGE=true])\n`);
    process.exit(2);
  }
  const reference = process.env.IMAGE;
  if (!reference) {
    process.stderr.write('image.ts: IMAGE is not set\n');
    process.exit(2);
  }
  const times = await buildClusterImage(image as ClusterImage, reference, process.env.PUSH_IMAGE === 'true');
  process.stdout.write(`${JSON.stringify({ msg: 'image built', image, reference, ...times })}\n`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
