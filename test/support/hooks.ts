/** Mocha root hooks: stop the shared PostgreSQL if the run started one. */
import { stopTestServer } from '../../harness/postgres.ts';

export async function mochaGlobalTeardown(): Promise<void> {
  await stopTestServer();
}
