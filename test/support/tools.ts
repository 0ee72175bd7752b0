/**
 * System tools a test needs (pgbouncer, promtool, prometheus, podman, …; the
 * list: harness/tools.ts), all treated alike: found on PATH, the test runs;
 * missing, it is skipped with one line naming what to install, except under CI
 * (CI set), where it fails, since `.ci/run` installs every one of them.
 */
import { missingImageTools } from '../../harness/image/podman.ts';
import { onPath, type SystemTool } from '../../harness/tools.ts';

export { onPath, TOOLS, type SystemTool } from '../../harness/tools.ts';

/**
 * Skips the test (or hook) of `context` with one line saying `reason` and how to fix it; under CI
 * throws instead, so the test fails.
 */
export function skipOrFail(context: Mocha.Context, reason: string): never {
  if (process.env.CI) throw new Error(`${reason}; required under CI (.ci/run installs it)`);
  console.log(`      skipped: ${reason}`);
  context.skip();
}

/** Paths of `tools` from PATH; when any is missing, skipOrFail with one line naming them and what to install. */
export async function requireTools<const T extends readonly SystemTool[]>(
  context: Mocha.Context,
  ...tools: T
): Promise<{ [K in keyof T]: string }> {
  const found = await Promise.all(tools.map((t) => onPath(t.name)));
  const missing = tools.filter((_, i) => found[i] === undefined);
  if (missing.length > 0) {
    const installs = [...new Set(missing.map((t) => t.install))].join('; ');
    skipOrFail(context, `${missing.map((t) => t.name).join(', ')} not found on PATH: ${installs}`);
  }
  return found as { [K in keyof T]: string };
}

/** Path of one tool from PATH, or skipOrFail. */
export async function requireTool(context: Mocha.Context, tool: SystemTool): Promise<string> {
  const [found] = await requireTools(context, tool);
  return found;
}

/** What the image test needs of this machine (missingImageTools: x86-64 Linux, root, podman, runc, debootstrap), or skipOrFail. */
export async function requireImageTools(context: Mocha.Context): Promise<void> {
  const missing = await missingImageTools();
  if (missing !== undefined) skipOrFail(context, `image test: ${missing}`);
}
