/**
 * `npm run release -- …`: the release's steps as one script, for the forge workflow and for the rehearsal here.
 *   --rehearse                          the whole release against a local registry (scripts/release/rehearse.ts);
 *                                       with KUBECONFIG and REGISTRY set, also helm install oci://… and helm test
 *                                       (with CLUSTER_VALUES layered on, default the chart's values-local.yaml)
 *   --check --tag vX.Y.Z [--repository OWNER/NAME]
 *                                       the tag, versions, changelog and Chart.yaml agree (exit 1 with the reasons)
 *   --stage-chart DIR --image-repository REPO
 *                                       DIR/form-data: the chart to package, naming the published image
 *   --notes FILE                        the changelog's section of the version, as release notes
 */
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { readChangelog, readChart, releaseNotes, repositoryOf, stageChart } from './release/chart.ts';
import { rehearse } from './release/rehearse.ts';
import { packageVersion, versionProblems } from './release/versions.ts';

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      rehearse: { type: 'boolean' },
      check: { type: 'boolean' },
      tag: { type: 'string' },
      repository: { type: 'string' },
      'stage-chart': { type: 'string' },
      'image-repository': { type: 'string' },
      notes: { type: 'string' },
    },
    strict: true,
  });
  if (values.rehearse) {
    const { REGISTRY, KUBECONFIG, CLUSTER_VALUES } = process.env;
    const result = await rehearse({
      // A cluster is KUBECONFIG and REGISTRY together (a KUBECONFIG alone may be a shell's default).
      registry: REGISTRY,
      kubeconfig: REGISTRY ? KUBECONFIG : undefined,
      ...(CLUSTER_VALUES ? { installValues: [CLUSTER_VALUES] } : {}),
    });
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return 0;
  }
  if (values.check) {
    if (!values.tag) throw new Error('--check needs --tag vX.Y.Z');
    const [chart, releases, app] = await Promise.all([readChart(), readChangelog(), packageVersion()]);
    const problems = versionProblems(chart, app, releases, { tag: values.tag });
    if (values.repository) {
      const { owner, name } = repositoryOf(chart);
      if (`${owner}/${name}`.toLowerCase() !== values.repository.toLowerCase())
        problems.push(`Chart.yaml home names ${owner}/${name}, this repository is ${values.repository}`);
    }
    for (const problem of problems) process.stderr.write(`release: ${problem}\n`);
    if (problems.length === 0) process.stdout.write(`release: ${values.tag} is releasable\n`);
    return problems.length === 0 ? 0 : 1;
  }
  if (values['stage-chart']) {
    if (!values['image-repository']) throw new Error('--stage-chart needs --image-repository');
    process.stdout.write(`${await stageChart(values['stage-chart'], values['image-repository'])}\n`);
    return 0;
  }
  if (values.notes) {
    await writeFile(values.notes, await releaseNotes());
    return 0;
  }
  throw new Error('nothing to do: --rehearse, --check, --stage-chart or --notes (see scripts/release.ts)');
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`release: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
