/**
 * The cluster the release tests may use, given in the environment (KUBECONFIG, and REGISTRY: where its nodes pull
 * from; `npm run cluster -- status` prints both for the local cluster), and optionally CLUSTER_VALUES: a values file
 * for the database and SQS the pods reach and any image the cluster needs named otherwise (default: the chart's
 * values-local.yaml, its in-cluster PostgreSQL and SQS emulator). Without a cluster, the cluster parts skip with one
 * line. CLUSTER_REQUIRED_UNDER_CI is the one switch that makes them required under CI, to be turned on when the
 * local cluster (issue 22) runs in .ci/run.
 */
export const CLUSTER_REQUIRED_UNDER_CI = false;

export interface GivenCluster {
  kubeconfig: string;
  registry: string;
  /** Values layered on each install for the database and SQS the pods reach (CLUSTER_VALUES; default values-local.yaml). */
  values?: string;
}

/** The cluster from the environment, or undefined after logging why (failing instead when CI requires one). */
export function clusterGiven(ctx: Mocha.Context, env: NodeJS.ProcessEnv = process.env): GivenCluster | undefined {
  if (env.KUBECONFIG && env.REGISTRY)
    return {
      kubeconfig: env.KUBECONFIG,
      registry: env.REGISTRY,
      ...(env.CLUSTER_VALUES ? { values: env.CLUSTER_VALUES } : {}),
    };
  const reason = `no cluster given (${['KUBECONFIG', 'REGISTRY'].filter((n) => !env[n]).join(', ')} unset)`;
  if (env.CI && CLUSTER_REQUIRED_UNDER_CI) throw new Error(`the cluster parts are required under CI: ${reason}`);
  console.log(`      (${ctx.test?.title ?? 'cluster part'}: install and helm test skipped: ${reason})`);
  return undefined;
}
