/**
 * The cluster the release tests may use, given in the environment: KUBECONFIG, and REGISTRY (where its nodes pull
 * from; `npm run cluster -- status` prints both for the local cluster, and CI runs the tests inside
 * `harness/cluster/cluster exec`, which sets them). The pods need a database and SQS: CLUSTER_VALUES names a values
 * file for them; without it, the chart's values-local.yaml is used with its in-cluster PostgreSQL and emulator images
 * built here and pushed to REGISTRY (harness/cluster/addons/image.ts), since the public images it names cannot be
 * pulled by the local cluster. Without a cluster, the cluster parts skip with one line; CLUSTER_REQUIRED_UNDER_CI
 * makes them required under CI.
 */
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { buildClusterImage } from '../../harness/cluster/addons/image.ts';
import { podman } from '../../harness/image/podman.ts';
import { LOCAL_VALUES_FILE } from '../../scripts/release/chart.ts';

export const CLUSTER_REQUIRED_UNDER_CI = true;

export interface GivenCluster {
  kubeconfig: string;
  registry: string;
  /** CLUSTER_VALUES, when given; else the values are made by localDependencyValues. */
  values: string | undefined;
}

/** The cluster from the environment, or undefined after logging why (failing instead when CI requires one). */
export function clusterGiven(ctx: Mocha.Context, env: NodeJS.ProcessEnv = process.env): GivenCluster | undefined {
  if (env.KUBECONFIG && env.REGISTRY)
    return { kubeconfig: env.KUBECONFIG, registry: env.REGISTRY, values: env.CLUSTER_VALUES || undefined };
  const reason = `no cluster given (${['KUBECONFIG', 'REGISTRY'].filter((n) => !env[n]).join(', ')} unset)`;
  if (env.CI && CLUSTER_REQUIRED_UNDER_CI) throw new Error(`the cluster parts are required under CI: ${reason}`);
  console.log(`      (${ctx.test?.title ?? 'cluster part'}: install and helm test skipped: ${reason})`);
  return undefined;
}

/**
 * values-local.yaml with its PostgreSQL and emulator images built here and pushed to the cluster's registry, written
 * to `dir`; resolves to the file (CLUSTER_VALUES when given instead).
 */
export async function clusterValues(cluster: GivenCluster, dir: string): Promise<string> {
  if (cluster.values) return cluster.values;
  const tag = `release-${randomBytes(3).toString('hex')}`;
  const [postgresql, sqs] = await Promise.all(
    (['postgresql', 'fauxqs'] as const).map(async (image) => {
      const reference = `${cluster.registry}/form-data-${image}:${tag}`;
      await buildClusterImage(image, reference, true);
      await podman(['untag', reference]);
      return reference;
    }),
  );
  const values = parse(await readFile(LOCAL_VALUES_FILE, 'utf8')) as {
    fullnameOverride?: string;
    localDependencies: { postgresql: Record<string, unknown>; sqs: Record<string, unknown> };
  };
  // values-local.yaml names its database and emulator Services after the release form-data; ct install adds a
  // random suffix to the release name, so the names are fixed here.
  values.fullnameOverride = 'form-data';
  values.localDependencies.postgresql.image = postgresql;
  values.localDependencies.sqs.image = sqs;
  const file = path.join(dir, 'cluster-values.yaml');
  await writeFile(file, stringify(values));
  return file;
}
