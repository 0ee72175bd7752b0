/**
 * The release rehearsal (`npm run release -- --rehearse`, scripts/release/rehearse.ts) runs end to end: the image
 * built with podman and pushed to a registry on 127.0.0.1, signed and verified with a key pair made for the run,
 * its SBOM attested and verified, the chart pushed with `helm push oci://…`, signed and verified. A signature is
 * also checked with a key that did not make it, which cosign must refuse. With a cluster given (KUBECONFIG and
 * REGISTRY), the chart is installed from the registry and `helm test` passes; without one that part skips with one
 * line. Needs podman, runc, debootstrap (as the image test) and Go; under CI it fails instead of skipping.
 */
import { expect } from 'chai';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { missingImageTools } from '../../scripts/release/image.ts';
import { rehearse, type Rehearsal } from '../../scripts/release/rehearse.ts';
import { must, run } from '../../scripts/release/tools.ts';
import { clusterGiven, clusterValues } from './cluster.ts';
import { toolsOrSkip } from './tools.ts';

describe('release: the rehearsal (npm run release -- --rehearse)', function () {
  this.timeout(3_600_000);

  it('publishes the signed image, the attested SBOM and the signed chart to a local registry', async function () {
    const missing = await missingImageTools();
    if (missing) {
      if (process.env.CI) throw new Error(`the rehearsal cannot run under CI: ${missing}`);
      console.log(`      (skipped: ${missing})`);
      return this.skip();
    }
    if (!(await toolsOrSkip(this, ['crane', 'cosign']))) return;
    const cluster = clusterGiven(this);
    const lines: string[] = [];
    let wrongKey: { code: number; stderr: string } | undefined;
    const valuesDir = await mkdtemp(path.join(os.tmpdir(), 'form-data-rehearsal-values-'));
    let result: Rehearsal;
    try {
      result = await rehearse({
        ...(cluster
          ? {
              registry: cluster.registry,
              kubeconfig: cluster.kubeconfig,
              installValues: [await clusterValues(cluster, valuesDir)],
            }
          : {}),
        log: (line) => lines.push(line),
        inspect: async (published) => {
          const dir = await mkdtemp(path.join(os.tmpdir(), 'form-data-other-key-'));
          try {
            await must(published.cosign, ['generate-key-pair'], { cwd: dir, env: published.env });
            wrongKey = await run(
              published.cosign,
              [
                'verify',
                '--key',
                path.join(dir, 'cosign.pub'),
                '--insecure-ignore-tlog=true',
                ...published.insecure,
                published.imageRef,
              ],
              { env: published.env },
            );
          } finally {
            await rm(dir, { recursive: true, force: true });
          }
        },
      });
    } finally {
      await rm(valuesDir, { recursive: true, force: true });
    }
    console.log(lines.map((l) => `      ${l}`).join('\n'));
    expect(result.image.digest).to.match(/^sha256:[0-9a-f]{64}$/);
    expect(result.chart.digest).to.match(/^sha256:[0-9a-f]{64}$/);
    expect(result.sbom.components).to.be.greaterThan(10);
    expect(result.verified.image.join('\n')).to.contain(
      'The signatures were verified against the specified public key',
    );
    expect(result.verified.chart.join('\n')).to.contain(
      'The signatures were verified against the specified public key',
    );
    expect(result.verified.attestation.join('\n')).to.contain("the image's SBOM");
    expect(wrongKey?.code, 'cosign verify with another key').to.not.equal(0);
    expect(wrongKey?.stderr).to.match(/no matching signatures|invalid signature/i);
    if (cluster) expect(result.install.result).to.match(/helm test Succeeded/);
    else expect(result.install.result).to.match(/^skipped/);
  });
});
