/**
 * The cluster the release tests may use, given in the environment (KUBECONFIG, and REGISTRY: where its nodes pull
 * from; `npm run cluster -- status` prints both for the local cluster), and CLUSTER_VALUES: a values file
 * for the database and SQS the pods reach and any image the cluster needs named otherwise. Without a cluster, the cluster parts skip with one
 * line. CLUSTER_REQUIRED_UNDER_CI is the one switch that makes them required under CI, to be turned on when the
 * local cluster (issue 22) runs in .ci/run.
 */
export const CLUSTER_REQUIRED_UNDER_CI = false;

export interface GivenCluster {
  kubeconfig: string;
  registry: string;
  /** Values layered on each install for the database and SQS the pods reach (CLUSTER_VALUES; default values-local.yaml). */
  values: string;
}

/** The cluster from the environment, or undefined after logging why (failing instead when CI requires one). */
export function clusterGiven(ctx: Mocha.Context, env: NodeJS.ProcessEnv = process.env): GivenCluster | undefined {
  // CLUSTER_VALUES is required too: the chart's values-local.yaml names public images (postgres, fauxqs) that the
  // local cluster cannot pull, so without it the pods would never start.
  if (env.KUBECONFIG && env.REGISTRY && env.CLUSTER_VALUES)
    return { kubeconfig: env.KUBECONFIG, registry: env.REGISTRY, values: env.CLUSTER_VALUES };
  const unset = ['KUBECONFIG', 'REGISTRY', 'CLUSTER_VALUES'].filter((n) => !env[n]);
  const reason = `no cluster given (${unset.join(', ')} unset)`;
  if (env.CI && CLUSTER_REQUIRED_UNDER_CI) throw new Error(`the cluster parts are required under CI: ${reason}`);
  console.log(`      (${ctx.test?.title ?? 'cluster part'}: install and helm test skipped: ${reason})`);
  return undefined;
}
