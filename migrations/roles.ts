/**
 * Least-privilege database roles (docs/security.md), granted after the
 * migrations when DATABASE_WORKER_ROLE / DATABASE_EXPORT_ROLE name them: the
 * worker's may read and insert rows of `form_form` and clear their
 * `submission_key`, nothing else; the export's may only read `form_form`. The
 * migrations' own role (DATABASE_URL of the Job) owns the table. A role that
 * does not exist is created without LOGIN: give it a password and LOGIN, or
 * grant it to the login role the component connects as.
 */
import type { Knex } from 'knex';
import { ConfigError } from '../services/common/errors.ts';
import type { Logger } from '../services/common/logger.ts';

/** A role name the grants accept: a lowercase unquoted PostgreSQL identifier. */
const ROLE = /^[a-z_][a-z0-9_]{0,62}$/;

/** What each role may do on form_form, as statements; `%s` is the role. */
const GRANTS = {
  worker: [
    'GRANT USAGE ON SCHEMA public TO %s',
    'GRANT SELECT, INSERT ON form_form TO %s',
    'GRANT UPDATE (submission_key) ON form_form TO %s',
    'GRANT USAGE ON SEQUENCE form_form_id_seq TO %s',
  ],
  export: ['GRANT USAGE ON SCHEMA public TO %s', 'GRANT SELECT ON form_form TO %s'],
} as const;

export interface RoleNames {
  /** DATABASE_WORKER_ROLE. */
  worker: string | undefined;
  /** DATABASE_EXPORT_ROLE. */
  export: string | undefined;
}

/**
 * Creates missing roles (NOLOGIN) and sets their privileges on form_form to
 * exactly those of GRANTS (earlier grants on the table and its sequence are
 * revoked first). Idempotent; runs in one transaction.
 * @throws ConfigError for a name that is not a plain identifier
 */
export async function grantRoles(db: Knex, roles: RoleNames, logger?: Logger): Promise<void> {
  const wanted = (['worker', 'export'] as const).flatMap((component) => {
    const role = roles[component];
    if (role === undefined) return [];
    if (!ROLE.test(role))
      throw new ConfigError(
        component === 'worker' ? 'DATABASE_WORKER_ROLE' : 'DATABASE_EXPORT_ROLE',
        role,
        'a lowercase PostgreSQL identifier (letters, digits, _; at most 63)',
      );
    return [{ component, role }];
  });
  if (wanted.length === 0) return;
  await db.transaction(async (trx) => {
    for (const { component, role } of wanted) {
      const exists = await trx.raw<{ rows: unknown[] }>('SELECT 1 FROM pg_roles WHERE rolname = ?', [role]);
      if (exists.rows.length === 0) {
        await trx.raw(`CREATE ROLE ${role} NOLOGIN`);
        logger?.warn(
          { code: 'database_role_created', component, role },
          `created database role ${role} without LOGIN: give it LOGIN and a password, or grant it to the role the ${component} connects as`,
        );
      }
      await trx.raw(`REVOKE ALL ON form_form FROM ${role}`);
      await trx.raw(`REVOKE ALL ON SEQUENCE form_form_id_seq FROM ${role}`);
      for (const statement of GRANTS[component]) await trx.raw(statement.replaceAll('%s', role));
      logger?.info(
        { code: 'database_role_granted', component, role },
        `database role ${role} granted the ${component}'s privileges`,
      );
    }
  });
}
