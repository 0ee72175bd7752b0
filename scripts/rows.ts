/** `npm run rows`: the latest stored forms (DATABASE_URL), for a look after a submission. */
import { loadConfig } from '../services/common/config.ts';
import { createDatabase } from '../services/common/db.ts';

const limit = Number(process.argv[2] ?? 5);
const db = createDatabase({ ...loadConfig().database, poolMax: 1 });
try {
  const rows = await db('form_form')
    .select('id', 'created', 'sqs_message_id', 'data')
    .orderBy('id', 'desc')
    .limit(limit);
  process.stdout.write(`${rows.length ? JSON.stringify(rows, null, 2) : 'no rows yet'}\n`);
} finally {
  await db.destroy();
}
