/**
 * The release tools for the tests: each test file asks for the tools it runs; without Go or Python 3 it skips with
 * one line, except under CI, where it fails. The tools themselves are built or installed on first use (tools/tool).
 */
import { missingToolchain, toolPath } from '../../scripts/release/tools.ts';

/** Paths of the named tools of tools/tools.txt, or undefined when the test was skipped (never under CI). */
export async function toolsOrSkip(
  ctx: Mocha.Context,
  names: readonly string[],
): Promise<Record<string, string> | undefined> {
  const needs = names.some((n) => ['yamllint', 'yamale'].includes(n))
    ? (['go', 'python3'] as const)
    : (['go'] as const);
  const missing = await missingToolchain(needs);
  if (missing) {
    if (process.env.CI) throw new Error(`release tools cannot be had under CI: ${missing}`);
    console.log(`      (skipped: ${missing})`);
    ctx.skip();
    return undefined;
  }
  const paths: Record<string, string> = {};
  for (const name of names) paths[name] = await toolPath(name);
  return paths;
}
