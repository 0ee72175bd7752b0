/**
 * `npm run bench`: prints the table, then one JSON line with every figure
 * (the last line of stdout). Flags: see bench/run.ts.
 */
import { renderTable } from './report.ts';
import { parseOptions, runBenchmark, toJsonLine } from './run.ts';

try {
  const result = await runBenchmark(parseOptions(process.argv.slice(2)));
  process.stdout.write(`${renderTable(result)}\n`);
  // Exit once stdout is flushed, whatever handles a stopped baseline left behind.
  process.stdout.write(`${toJsonLine(result)}\n`, () => process.exit(0));
} catch (error) {
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
}
