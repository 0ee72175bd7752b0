/**
 * The cluster the release tests may use, given in the environment (KUBECONFIG, and REGISTRY: where its nodes pull
 * from; `npm run cluster -- status` prints both for the local cluster). Without one, the cluster parts skip with one
 * line. CLUSTER_REQUIRED_UNDER_CI is the one switch that makes them required under CI, to be turned on when the
 * local cluster (issue 22) runs in .ci/run.
 */
export const CLUSTER_REQUIRED_UNDER_CI = false;

export interface GivenCluster {
  kubeconfig: string;
  registry: string;
}

/** The cluster from the environment, or undefined after logging why (failing instead when CI requires one). */
export function clusterGiven(ctx: Mocha.Context, env: NodeJS.ProcessEnv = process.env): GivenCluster | undefined {
  if (env.KUBECONFIG && env.REGISTRY) return { kubeconfig: env.KUBECONFIG, registry: env.REGISTRY };
  const reason = `no cluster given (${['KUBECONFIG', 'REGISTRY'].filter((n) => !env[n]).join(', ')} unset)`;
  if (env.CI && CLUSTER_REQUIRED_UNDER_CI) throw new Error(`the cluster parts are required under CI: ${reason}`);
  console.log(`      (${ctx.test?.title ?? 'cluster part'}: install and helm test skipped: ${reason})`);
  return undefined;
}
