/**
 * The release and chart tools of tools/tools.txt (crane, cosign, helm-docs, ct, actionlint, kube-score, yamllint,
 * yamale), found through `tools/tool`, which builds or installs one on first use into the versioned cache.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Getting a tool failed (not in tools/tools.txt, no Go or Python, the build failed). */
export class ToolError extends Error {
  override name = 'ToolError';
  readonly tool: string;
  constructor(tool: string, message: string, options?: ErrorOptions) {
    super(`${tool}: ${message}`, options);
    this.tool = tool;
  }
}

/** The end of a command: exit code and output. */
export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** 0: none. */
  timeoutMs?: number;
  input?: string;
}

/** Runs a command to completion; never rejects on a non-zero exit (the caller checks `code`). */
export function run(command: string, args: readonly string[], options: RunOptions = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      command,
      args,
      {
        cwd: options.cwd ?? ROOT,
        env: options.env ?? process.env,
        maxBuffer: 256 * 1024 * 1024,
        timeout: options.timeoutMs ?? 0,
        killSignal: 'SIGKILL',
      },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number')
          return reject(new Error(`${command} ${args.join(' ')}: ${error.message}`, { cause: error }));
        resolve({ code: error ? Number(error.code) : 0, stdout, stderr });
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

/** Runs a command and resolves to its stdout; rejects with its output when it exits non-zero. */
export async function must(command: string, args: readonly string[], options: RunOptions = {}): Promise<string> {
  const result = await run(command, args, options);
  if (result.code !== 0)
    throw new Error(
      `${path.basename(command)} ${args.join(' ')} failed (${result.code}):\n${(result.stderr || result.stdout).trim().slice(-4000)}`,
    );
  return result.stdout;
}

const paths = new Map<string, Promise<string>>();

/** Path of a tool of tools/tools.txt, built or installed on first use (minutes for cosign on a cold cache). */
export function toolPath(name: string): Promise<string> {
  let found = paths.get(name);
  if (!found) {
    found = run(path.join(ROOT, 'tools/tool'), [name], { timeoutMs: 3_600_000 }).then((r) => {
      if (r.code !== 0) throw new ToolError(name, `tools/tool exit ${r.code}: ${r.stderr.trim().slice(-2000)}`);
      return r.stdout.trim().split('\n').at(-1)!;
    });
    paths.set(name, found);
  }
  return found;
}

/** The directory of a Go tool's downloaded module (e.g. chart-testing's etc/ with its lint configuration). */
export async function toolModuleDir(name: string): Promise<string> {
  const r = await run(path.join(ROOT, 'tools/tool'), ['--dir', name], { timeoutMs: 600_000 });
  if (r.code !== 0 || !r.stdout.trim())
    throw new ToolError(name, `tools/tool --dir exit ${r.code}: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

/** What this machine lacks to get the tools (Go for the Go tools, Python 3 for the PyPI ones), or undefined. */
export async function missingToolchain(
  kinds: readonly ('go' | 'python3')[] = ['go', 'python3'],
): Promise<string | undefined> {
  const missing: string[] = [];
  for (const kind of kinds) {
    const found = await run('sh', ['-c', `command -v ${kind}`]).catch(() => undefined);
    if (!found || found.code !== 0) missing.push(kind);
  }
  return missing.length > 0 ? `needs ${missing.join(' and ')} to build the release tools (tools/tool)` : undefined;
}
