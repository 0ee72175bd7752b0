/**
 * `npm run chart:docs`: writes Chart.yaml's Artifact Hub annotations from CHANGELOG.md and appVersion, then the
 * chart README with helm-docs. `--check` changes nothing and exits 1 when either is stale.
 */
import { staleChartDocs, writeChartDocs } from './release/chart.ts';

async function main(): Promise<number> {
  if (process.argv.includes('--check')) {
    const stale = await staleChartDocs();
    for (const line of stale) process.stderr.write(`stale: ${line}\n`);
    if (stale.length > 0) process.stderr.write('run npm run chart:docs\n');
    return stale.length > 0 ? 1 : 0;
  }
  await writeChartDocs();
  process.stdout.write('charts/form-data: Chart.yaml annotations and README.md written\n');
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`chart:docs: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
