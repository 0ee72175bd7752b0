/**
 * chart-testing's `ct install` on a cluster: each charts/form-data/ci/*-values.yaml installed into a namespace of
 * its own, `helm test` run, the release removed. The image is built here and pushed to the cluster's REGISTRY; the
 * database and SQS come from a values file layered on each set: CLUSTER_VALUES, else the chart's values-local.yaml
 * (its in-cluster PostgreSQL and SQS emulator, for the release name form-data). Needs KUBECONFIG and REGISTRY
 * (test/release/cluster.ts), kubectl on PATH or as $KUBECTL, and what the image test needs.
 */
import { expect } from 'chai';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { readChart } from '../../scripts/release/chart.ts';
import { buildImage, missingImageTools, pushImage, untagImage } from '../../scripts/release/image.ts';
import { ROOT, must, run } from '../../scripts/release/tools.ts';
import { helmBinary } from '../chart/helm.ts';
import { clusterGiven, clusterValues } from './cluster.ts';
import { toolsOrSkip } from './tools.ts';

describe('release: chart-testing on a cluster (ct install)', function () {
  this.timeout(3_600_000);

  it('installs and tests the chart with every ci/ value set', async function () {
    const cluster = clusterGiven(this);
    if (!cluster) return this.skip();
    const missing = await missingImageTools();
    if (missing) throw new Error(`ct install needs the image built: ${missing}`);
    const tools = await toolsOrSkip(this, ['ct', 'yamllint', 'yamale']);
    if (!tools) return;
    const kubectl = process.env.KUBECTL || 'kubectl';
    const helm = await helmBinary(4);
    const dirs = [path.dirname(helm), path.dirname(tools.ct!)];
    if (path.isAbsolute(kubectl)) dirs.push(path.dirname(kubectl));
    const work = await mkdtemp(path.join(os.tmpdir(), 'form-data-ct-install-'));
    const { version } = await readChart();
    const tag = `${cluster.registry}/form-data:${version}-ct-${randomBytes(3).toString('hex')}`;
    const namespace = `form-data-ct-${randomBytes(3).toString('hex')}`;
    const env = {
      ...process.env,
      KUBECONFIG: cluster.kubeconfig,
      PATH: [...dirs, process.env.PATH].join(path.delimiter),
      HELM_CACHE_HOME: path.join(work, 'helm/cache'),
      HELM_CONFIG_HOME: path.join(work, 'helm/config'),
      HELM_DATA_HOME: path.join(work, 'helm/data'),
    };
    try {
      await buildImage(tag);
      const digestFile = path.join(work, 'digest');
      await pushImage(tag, digestFile);
      const digest = (await readFile(digestFile, 'utf8')).trim();
      await must(kubectl, ['create', 'namespace', namespace], { env });
      const extra = [
        `--values=${await clusterValues(cluster, work)}`,
        `--set=image.repository=${cluster.registry}/form-data`,
        `--set=image.digest=${digest}`,
      ].join(' ');
      const result = await run(
        tools.ct!,
        [
          'install',
          '--config',
          path.join(ROOT, 'ct.yaml'),
          '--charts',
          'charts/form-data',
          '--namespace',
          namespace,
          '--release-name',
          'form-data',
          '--helm-extra-set-args',
          extra,
        ],
        { cwd: ROOT, env, timeoutMs: 3_000_000 },
      );
      const out = result.stdout + result.stderr;
      console.log(
        out
          .split('\n')
          .filter((l) => /✔|✖|Installing|values file|Phase/.test(l))
          .map((l) => `      ${l}`)
          .join('\n'),
      );
      expect(result.code, out.slice(-6000)).to.equal(0);
      expect(out).to.contain('All charts installed successfully');
    } finally {
      await run(kubectl, ['delete', 'namespace', namespace, '--wait=false'], { env });
      await untagImage(tag);
      await rm(work, { recursive: true, force: true });
    }
  });
});
