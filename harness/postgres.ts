/**
 * PostgreSQL for the tests, the benchmark and the chaos run.
 *
 * The shared server: DATABASE_URL when set, else the server on
 * 127.0.0.1:5432 when one answers (CI), else an embedded one started for the
 * run. Each test gets a database of its own.
 */
import pg from 'pg';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.ts';
import { startEmbeddedPostgres, type EmbeddedPostgres } from './embedded-postgres.ts';

interface Server {
  /** URL of a database on the server the tests may create databases with. */
  adminUrl: string;
  stop(): Promise<void>;
}

let server: Promise<Server> | undefined;

const LOCAL = 'postgres://postgres@127.0.0.1:5432/postgres';

async function answers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function startServer(): Promise<Server> {
  const given = process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL;
  if (given) return { adminUrl: given, stop: async () => undefined };
  if (await answers(LOCAL)) return { adminUrl: LOCAL, stop: async () => undefined };
  return startEmbedded();
}

/** Starts an embedded PostgreSQL in a temporary folder on a free port; stopping it removes the folder. */
async function startEmbedded(): Promise<Server> {
  const dir = await mkdtemp(join(tmpdir(), 'form-data-pg-'));
  const server = await startEmbeddedPostgres({ dir, port: await freePort() });
  return {
    adminUrl: server.adminUrl,
    stop: async () => {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The shared test server (started on first use). */
export function testServer(): Promise<Server> {
  server ??= startServer();
  return server;
}

/** Stops the shared test server if this run started one. */
export async function stopTestServer(): Promise<void> {
  if (!server) return;
  const s = await server;
  server = undefined;
  await s.stop();
}

export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

/** A fresh, empty database of the test's own. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const { adminUrl } = await testServer();
  const name = `fd_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

/**
 * A PostgreSQL of its own that can be stopped and started again on the same
 * data directory and port (the chaos run's: the tests' server lives for the
 * whole test run, this one has to go through outages).
 */
export interface RestartablePostgres extends EmbeddedPostgres {
  /** Stops it if running and deletes the data directory. */
  destroy(): Promise<void>;
}

/** Initialises a cluster in a temporary folder on a free port and starts it. */
export async function startRestartablePostgres(): Promise<RestartablePostgres> {
  const dir = await mkdtemp(join(tmpdir(), 'form-data-chaos-pg-'));
  const server = await startEmbeddedPostgres({ dir, port: await freePort() });
  return Object.assign(server, {
    async destroy() {
      try {
        await server.stop();
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  });
}
