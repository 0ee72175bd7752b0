/**
 * The release image built here as the image test builds it: the project's Dockerfile with podman on the stand-in
 * base (harness/image/base.ts; no registry serves node:24-trixie-slim on these machines), then pushed with podman.
 */
import { buildProjectImage } from '../../harness/image/base.ts';
import { missingImageTools, podman } from '../../harness/image/podman.ts';
import { ROOT } from './tools.ts';

export { missingImageTools };

/** Builds the image as `tag`; resolves to how long the build took and the base used. */
export async function buildImage(tag: string): Promise<{ base: string; seconds: number }> {
  const built = await buildProjectImage(tag, ROOT);
  return { base: built.base.tag, seconds: built.seconds };
}

/** Pushes `tag` to its (plain-HTTP, loopback) registry; resolves to the manifest digest pushed. */
export async function pushImage(tag: string, digestFile: string): Promise<void> {
  await podman(['push', '--tls-verify=false', '--digestfile', digestFile, tag]);
}

/** The CycloneDX SBOM the image carries at /app/sbom.cdx.json. */
export async function imageSbom(tag: string): Promise<string> {
  return podman(['run', '--rm', '--network=none', '--entrypoint=cat', tag, '/app/sbom.cdx.json']);
}

/** Removes the local tag (the registry keeps the image). */
export async function untagImage(tag: string): Promise<void> {
  await podman(['untag', tag]).catch(() => undefined);
}
