/**
 * A real PgBouncer (Debian's `pgbouncer`) in front of the tests' PostgreSQL,
 * started on a free port with its default settings except `pool_mode =
 * transaction` (what poolers in front of many pods run) and what it needs to
 * reach the server. Run as root (CI), it switches to the `postgres` user with
 * `-u`, since PgBouncer refuses to run as root.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../harness/ports.ts';

export interface PgBouncer {
  port: number;
  /** `url` (a database URL of the server) rewritten to go through PgBouncer. */
  via(url: string): string;
  /** Everything PgBouncer wrote (its log goes to stderr). */
  log(): string;
  stop(): Promise<void>;
}

const quote = (s: string): string => `"${s.replace(/"/g, '""')}"`;

/**
 * Starts PgBouncer (`binary`, from requireTool in test/support/tools.ts) in front of the server of `serverUrl`;
 * resolves once it listens.
 */
export async function startPgBouncer(
  binary: string,
  serverUrl: string,
  settings: Record<string, string> = {},
): Promise<PgBouncer> {
  const server = new URL(serverUrl);
  const user = decodeURIComponent(server.username || 'postgres');
  const password = decodeURIComponent(server.password);
  const dir = await mkdtemp(join(tmpdir(), 'form-data-pgbouncer-'));
  const port = await freePort();
  const target = [
    `host=${server.hostname}`,
    `port=${server.port || '5432'}`,
    `user=${user}`,
    ...(password ? [`password=${password}`] : []),
  ];
  const ini = [
    '[databases]',
    `* = ${target.join(' ')}`,
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    'unix_socket_dir =',
    'auth_type = trust',
    `auth_file = ${join(dir, 'users.txt')}`,
    'pool_mode = transaction',
    ...Object.entries(settings).map(([k, v]) => `${k} = ${v}`),
    '',
  ].join('\n');
  await writeFile(join(dir, 'pgbouncer.ini'), ini);
  await writeFile(join(dir, 'users.txt'), `${quote(user)} ""\n`);
  await chmod(dir, 0o755);
  const root = process.getuid?.() === 0;
  const child: ChildProcess = spawn(binary, [...(root ? ['-u', 'postgres'] : []), join(dir, 'pgbouncer.ini')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      output += chunk.toString('utf8');
      if (/listening on 127\.0\.0\.1:\d+/.test(output)) resolve();
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('error', (error) => reject(new Error(`pgbouncer could not start: ${error.message}`)));
    child.once('exit', (code, signal) =>
      reject(new Error(`pgbouncer exited (${code ?? signal}) before listening:\n${output}`)),
    );
  });
  return {
    port,
    via: (url) => {
      const u = new URL(url);
      u.hostname = '127.0.0.1';
      u.port = String(port);
      u.password = '';
      return u.toString();
    },
    log: () => output,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
