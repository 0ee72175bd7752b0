/**
 * `npm run bench`: prints the table, then one JSON line with every figure
 * (the last line of stdout). Flags: see bench/run.ts.
 */
import { renderTable } from './report.ts';
import { parseOptions, runBenchmark, toJsonLine } from './run.ts';

const options = parseOptions(process.argv.slice(2));
const result = await runBenchmark(options);
process.stdout.write(`${renderTable(result)}\n`);
process.stdout.write(`${toJsonLine(result)}\n`);
