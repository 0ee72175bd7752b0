/**
 * A PostgreSQL of the chaos run's own that can be stopped and started again on
 * the same data directory and port (the tests' server lives for the whole test
 * run; this one has to go through outages).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../scripts/embedded-postgres.ts';
import { freePort } from '../test/support/ports.ts';

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
