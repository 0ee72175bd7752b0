/**
 * The replaced service as it really runs: the original v1.0.4 (Django) from
 * ../shared/reference, on current Python with the exact versions of
 * harness/original/requirements.lock in a virtualenv of the tool cache, and
 * the shims of harness/original/python/shim (none changes its logic; listed in
 * harness/original/README.md). Its web runs under gunicorn, its worker is
 * `manage.py queue_worker`, both pointed at the SQS emulator through
 * AWS_ENDPOINT_URL_SQS and at a database of the caller's.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { access, mkdir, readFile, rename, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { freePort } from '../ports.ts';
import { startProcess, type ProcessHandle } from '../process.ts';

const run = promisify(execFile);
const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '..', '..');

/** The exact Python packages the original runs with. */
export const LOCK_FILE = join(HERE, 'requirements.lock');
/** Where the shims (and the UI form generator) live; put first on PYTHONPATH. */
export const PYTHON_DIR = join(HERE, 'python');

/** The original's source: FORM_DATA_ORIGINAL_DIR, else ../shared/reference/directory-form-data-v1.0.4 beside the repository. */
export function originalSourceDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.FORM_DATA_ORIGINAL_DIR ?? resolve(REPO, '..', 'shared', 'reference', 'directory-form-data-v1.0.4');
}

/** Why the original cannot run here (no Python, no venv module, no source, install failed). */
export class OriginalUnavailable extends Error {
  override name = 'OriginalUnavailable';
}

export interface OriginalPython {
  /** The virtualenv's interpreter. */
  python: string;
  venv: string;
  source: string;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** The base interpreter: PYTHON, else python3 on PATH. */
function basePython(env: NodeJS.ProcessEnv): string {
  return env.PYTHON ?? 'python3';
}

/** The virtualenv folder, keyed by the lock's content and the base interpreter's version. */
async function venvDir(env: NodeJS.ProcessEnv): Promise<string> {
  let version: string;
  try {
    version = (await run(basePython(env), ['-c', 'import sys, venv; print(sys.version)'])).stdout.trim();
  } catch (error) {
    throw new OriginalUnavailable(`no Python 3 with the venv module (${basePython(env)}): ${String(error)}`);
  }
  const key = createHash('sha256')
    .update(await readFile(LOCK_FILE))
    .update(version)
    .digest('hex')
    .slice(0, 12);
  const cache = env.XDG_CACHE_HOME ?? join(homedir(), '.cache');
  return join(cache, 'form-data', `original-venv-${key}`);
}

/**
 * The virtualenv of the lock, created on first use (`install`: false only
 * looks). Creation goes to a temporary folder renamed into place, so a
 * half-made one is never used.
 * @throws OriginalUnavailable
 */
export async function ensureOriginalPython(
  options: { install?: boolean; env?: NodeJS.ProcessEnv; log?: (line: string) => void } = {},
): Promise<OriginalPython> {
  const env = options.env ?? process.env;
  const source = originalSourceDir(env);
  if (!(await exists(join(source, 'manage.py')))) throw new OriginalUnavailable(`no original source at ${source}`);
  const venv = await venvDir(env);
  const python = join(venv, 'bin', 'python');
  if (await exists(join(venv, '.complete'))) return { python, venv, source };
  if (options.install === false) throw new OriginalUnavailable(`no virtualenv at ${venv}`);
  const tmp = `${venv}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(dirname(venv), { recursive: true });
  try {
    options.log?.(`creating ${venv} from ${LOCK_FILE}`);
    await run(basePython(env), ['-m', 'venv', tmp]);
    await run(
      join(tmp, 'bin', 'python'),
      [
        '-m',
        'pip',
        'install',
        '--quiet',
        '--disable-pip-version-check',
        '--no-deps',
        '--only-binary',
        ':all:',
        '-r',
        LOCK_FILE,
      ],
      { maxBuffer: 16 * 1024 * 1024 },
    );
    await run(join(tmp, 'bin', 'python'), [
      '-c',
      'open(__import__("sys").argv[1], "w").close()',
      join(tmp, '.complete'),
    ]);
    try {
      await rename(tmp, venv);
    } catch (error) {
      // Another run made it first.
      if (!(await exists(join(venv, '.complete')))) throw error;
    }
  } catch (error) {
    throw new OriginalUnavailable(`could not create the virtualenv: ${String(error)}`);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return { python, venv, source };
}

/** Where the original runs: its database, the emulator, its live queue's name, the UI secret. */
export interface OriginalSettings {
  databaseUrl: string;
  sqsEndpoint: string;
  /** SQS_INVALID_MESAGES_QUEUE_NAME: the one queue v1.0.4 uses for forms and invalid bodies alike. */
  queueName: string;
  uiSecret: string;
  /** SQS_WAIT_TIME of its worker (seconds); short, so SIGTERM ends it soon. Default 1. */
  waitTimeSeconds?: number;
}

/** The original's environment, as its settings read it. */
export function originalEnv(py: OriginalPython, s: OriginalSettings): Record<string, string> {
  return {
    DJANGO_SETTINGS_MODULE: 'shim.settings',
    PYTHONPATH: `${PYTHON_DIR}:${py.source}`,
    // The source is read-only reference material: no __pycache__ in it.
    PYTHONDONTWRITEBYTECODE: '1',
    PYTHONUNBUFFERED: '1',
    DATABASE_URL: s.databaseUrl,
    AWS_ENDPOINT_URL_SQS: s.sqsEndpoint,
    AWS_ACCESS_KEY_ID: 'local',
    AWS_SECRET_ACCESS_KEY: 'local',
    SQS_REGION_NAME: 'eu-west-1',
    SQS_INVALID_MESAGES_QUEUE_NAME: s.queueName,
    SQS_WAIT_TIME: String(s.waitTimeSeconds ?? 1),
    UI_SECRET: s.uiSecret,
    SECRET_KEY: 'original-under-test',
  };
}

/** Runs `manage.py <args>` of the original to its end. */
export async function manage(
  py: OriginalPython,
  s: OriginalSettings,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(py.python, ['manage.py', ...args], {
      cwd: py.source,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...originalEnv(py, s) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    child.on('close', (code) =>
      resolvePromise({
        code: code ?? -1,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      }),
    );
  });
}

/** A running part of the original. */
export interface OriginalProcess {
  handle: ProcessHandle;
  /** SIGTERM, then SIGKILL if it has not exited within `graceMs` (default 15 000); resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
}

function stopper(handle: ProcessHandle) {
  return async (graceMs = 15_000): Promise<void> => {
    handle.kill('SIGTERM');
    const timer = setTimeout(() => handle.kill('SIGKILL'), graceMs);
    try {
      await handle.exited;
    } finally {
      clearTimeout(timer);
    }
  };
}

function output(handle: ProcessHandle): string {
  return handle.text.slice(-20).join('\n');
}

/** Polls `check` every 100 ms until it is true; rejects after `timeoutMs` or when the process exits. */
async function until(handle: ProcessHandle, what: string, check: () => Promise<boolean>, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void handle.exited.then(() => {
    exited = true;
  });
  for (;;) {
    if (await check()) return;
    if (exited) throw new Error(`the original's ${what} exited before it was ready:\n${output(handle)}`);
    if (Date.now() > deadline)
      throw new Error(`the original's ${what} was not ready in ${timeoutMs} ms:\n${output(handle)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The original's web under gunicorn (its own gunicorn/conf.py) on a free port; resolves once it answers HTTP. */
export async function startOriginalWeb(
  py: OriginalPython,
  s: OriginalSettings,
): Promise<OriginalProcess & { url: string }> {
  const port = await freePort();
  const handle = startProcess(
    py.python,
    ['-m', 'gunicorn', '-c', 'gunicorn/conf.py', 'data.wsgi', '--workers', '2', '-b', `127.0.0.1:${port}`],
    originalEnv(py, s),
    { cwd: py.source },
  );
  const url = `http://127.0.0.1:${port}`;
  await until(handle, 'web', async () => {
    try {
      // Unsigned: its signature middleware answers 400 without touching SQS or the database.
      await (await fetch(`${url}/form/`, { signal: AbortSignal.timeout(2000) })).arrayBuffer();
      return true;
    } catch {
      return false;
    }
  });
  return { handle, url, stop: stopper(handle) };
}

/** The original's worker (`manage.py queue_worker`); resolves once it has started. */
export async function startOriginalWorker(py: OriginalPython, s: OriginalSettings): Promise<OriginalProcess> {
  const handle = startProcess(py.python, ['manage.py', 'queue_worker'], originalEnv(py, s), { cwd: py.source });
  await until(handle, 'worker', async () => handle.text.some((line) => line.includes('Starting queue worker')));
  return { handle, stop: stopper(handle) };
}
