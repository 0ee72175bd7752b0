/**
 * System tools (pgbouncer, promtool, prometheus, podman, …) that the tests, the image build and the
 * release need, how to install each on Debian, and finding one on PATH. The tests' skip-or-fail on a
 * missing tool is in test/support/tools.ts.
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
