/**
 * System tools a test needs (pgbouncer, promtool, prometheus, podman, …), all
 * treated alike: found on PATH, the test runs; missing, it is skipped with one
 * line naming what to install, except under CI (CI set), where it fails, since
 * `.ci/run` installs every one of them.
 */
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import path from 'node:path';

/** A tool and how to get it. */
export interface SystemTool {
  name: string;
  /** What to install, as one would type it on Debian (`apt-get install pgbouncer`). */
  install: string;
}

export const TOOLS = {
  pgbouncer: { name: 'pgbouncer', install: 'apt-get install pgbouncer (it lands in /usr/sbin: keep that on PATH)' },
  promtool: { name: 'promtool', install: 'apt-get install prometheus' },
  prometheus: { name: 'prometheus', install: 'apt-get install prometheus' },
  podman: { name: 'podman', install: 'apt-get install podman runc debootstrap' },
  runc: { name: 'runc', install: 'apt-get install podman runc debootstrap' },
  debootstrap: { name: 'debootstrap', install: 'apt-get install podman runc debootstrap' },
  python3: { name: 'python3', install: 'apt-get install python3' },
} as const satisfies Record<string, SystemTool>;

/** Path of the executable `name` from PATH, or undefined. */
export async function onPath(name: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      await access(candidate, constants.X_OK);
      if ((await stat(candidate)).isFile()) return candidate;
    } catch {
      // not in this folder
    }
  }
  return undefined;
}

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
