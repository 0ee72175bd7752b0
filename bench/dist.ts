/**
 * The compiled build, as the image runs it: `npm run build` (tsc -p tsconfig.build.json) into dist/, done once at
 * the start of every benchmark run that measures processes, so the figures are never of a stale build.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ROOT } from './processes.ts';

const run = promisify(execFile);
const at = (path: string): string => fileURLToPath(new URL(`../${path}`, import.meta.url));

/** Entry points of the compiled build (the image's `args`). */
export const DIST = {
  web: at('dist/services/web/main.js'),
  worker: at('dist/services/worker/main.js'),
} as const;

/** Entry points from the TypeScript sources (type stripping), for the before/after comparison. */
export const SOURCES = {
  web: at('services/web/main.ts'),
  worker: at('services/worker/main.ts'),
} as const;

/** Compiles the services to dist/ with the project's TypeScript; returns the time it took, in ms. */
export async function buildDist(): Promise<number> {
  const started = performance.now();
  try {
    await run(process.execPath, [at('node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT });
  } catch (error) {
    const output = error instanceof Error && 'stdout' in error ? String(error.stdout) : '';
    throw new Error(`bench: npm run build failed\n${output}`, { cause: error });
  }
  return performance.now() - started;
}
