/**
 * `node migrations/cli.ts latest|rollback|status` (compiled: dist/migrations/cli.js):
 * what the chart's pre-install/pre-upgrade Job runs.
 */
import { loadConfig } from '../services/common/config.ts';
import { createDatabase } from '../services/common/db.ts';
import { createLogger } from '../services/common/logger.ts';
import { migrationConfig } from './config.ts';
import { grantRoles } from './roles.ts';
import { runMain } from '../services/common/entry-point.ts';

const COMMANDS = ['latest', 'rollback', 'status'] as const;
type Command = (typeof COMMANDS)[number];

runMain('migrate', async () => {
  const arg = process.argv[2] ?? 'latest';
  if (!COMMANDS.includes(arg as Command))
    throw new Error(`unknown command ${JSON.stringify(arg)}; expected one of ${COMMANDS.join(', ')}`);
  const config = loadConfig();
  const logger = createLogger(config.logLevel, 'migrate');
  const db = createDatabase(
    { ...config.database, poolMax: 1, timeoutMs: Math.max(config.database.timeoutMs, 60_000) },
    logger,
  );
  try {
    const migrations = migrationConfig();
    if (arg === 'latest') {
      const [batch, names] = (await db.migrate.latest(migrations)) as [number, string[]];
      logger.info({ batch, applied: names }, names.length ? 'migrations applied' : 'database already up to date');
      await grantRoles(db, config.databaseRoles, logger);
    } else if (arg === 'rollback') {
      const [batch, names] = (await db.migrate.rollback(migrations)) as [number, string[]];
      logger.info({ batch, rolledBack: names }, 'migrations rolled back');
    } else {
      const [done, pending] = (await db.migrate.list(migrations)) as [unknown[], unknown[]];
      logger.info({ done: done.length, pending: pending.length }, 'migration status');
    }
  } finally {
    await db.destroy();
  }
  return 0;
});
