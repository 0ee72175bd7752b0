/**
 * Making a worker be mid-batch on purpose, rather than racing for it: a
 * transaction of the test's own holds form_form in SHARE mode, so the
 * worker's INSERT waits with its messages received, until the test releases it.
 */
import pg from 'pg';
import { eventually } from './eventually.ts';

export interface TableLock {
  /** Resolves once PostgreSQL shows an INSERT into form_form waiting on this lock. */
  insertWaiting(timeoutMs?: number): Promise<void>;
  /** Ends the transaction: the waiting INSERT goes on. */
  release(): Promise<void>;
}

/** Takes the lock on the database of `url`; the caller must release it. */
export async function lockForms(url: string): Promise<TableLock> {
  const holder = new pg.Client({ connectionString: url });
  const watcher = new pg.Client({ connectionString: url });
  await Promise.all([holder.connect(), watcher.connect()]);
  await holder.query('begin');
  await holder.query('lock table form_form in share mode');
  let released = false;
  return {
    insertWaiting: async (timeoutMs = 120_000) => {
      await eventually(
        async () => {
          const { rows } = await watcher.query<{ waiting: number }>(
            `select count(*)::int as waiting from pg_stat_activity
              where datname = current_database() and wait_event_type = 'Lock' and query ilike '%insert into%form_form%'`,
          );
          return rows[0]!.waiting > 0 ? true : undefined;
        },
        timeoutMs,
        'an INSERT into form_form waiting on the lock',
      );
    },
    release: async () => {
      if (released) return;
      released = true;
      await holder.query('rollback').catch(() => undefined);
      await Promise.all([holder.end(), watcher.end()]);
    },
  };
}
