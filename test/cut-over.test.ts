/**
 * The cut-over of docs/cut-over.md, rehearsed on real components: a table as
 * the Django service left it (with rows), old-format messages on both queues,
 * then the guide's steps in order. Every form ends up stored once, and the
 * export shows the old rows and the new ones alike.
 */
import { expect } from 'chai';
import { PassThrough } from 'node:stream';
import { DeleteMessageCommand, ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { migrationConfig } from '../migrations/config.ts';
import { exportCommand } from '../services/export/command.ts';
import { createWebService, type WebService } from '../services/web/service.ts';
import { createWorkerService, type WorkerService } from '../services/worker/service.ts';
import { validForm } from '../harness/forms.ts';
import { jsonBody, post } from '../harness/http.ts';
import { queueCounts, receiveAll } from '../harness/sqs.ts';
import { parseCsvObjects } from './support/csv.ts';
import { useEmulator } from './support/emulator.ts';
import { createTestEnv, eventually, type TestEnv } from './support/stack.ts';
import { DJANGO_TABLE } from './support/django.ts';

/** A message body as the replaced service's web queued it: `data` a string holding the form. */
function oldMessage(companyName: string): string {
  return JSON.stringify({ data: JSON.stringify(validForm({ company_name: companyName })) });
}

describe('cut-over from the Django service (docs/cut-over.md)', function () {
  this.timeout(120_000);
  const emulator = useEmulator();
  let t: TestEnv;
  let worker: WorkerService | undefined;
  let web: WebService | undefined;

  beforeEach(async () => {
    t = await createTestEnv(emulator.endpoint, {}, { migrate: false });
  });
  afterEach(async () => {
    await web?.stop();
    await worker?.stop();
    web = worker = undefined;
    await t.cleanup();
  });

  async function storedCompanies(): Promise<string[]> {
    const rows = await t
      .db('form_form')
      .select(t.db.raw("coalesce(data->>'company_name', (data#>>'{}')::jsonb->>'company_name') as name"));
    return rows.map((r: { name: string }) => r.name).sort();
  }

  it('adopts the table, runs beside the old worker, requeues valid dead letters, takes the UI over, and stores each form once', async () => {
    // Before: what the Django service left behind.
    await t.db.raw(DJANGO_TABLE);
    await t.db('form_form').insert([
      {
        created: new Date('2019-05-01T10:00:00Z'),
        data: JSON.stringify({ company_name: 'Stored Object Ltd' }),
        sqs_message_id: 'django-1',
      },
      {
        created: new Date('2019-05-02T10:00:00Z'),
        data: t.db.raw('to_jsonb(?::text)', [JSON.stringify({ company_name: 'Stored String Ltd' })]),
        sqs_message_id: 'django-2',
      },
    ]);
    const urls = await t.queueUrls();
    for (const name of ['Queued One Ltd', 'Queued Two Ltd', 'Queued Three Ltd']) {
      await t.sqs.send(new SendMessageCommand({ QueueUrl: urls.form, MessageBody: oldMessage(name) }));
    }
    // Dead-lettered by the old worker's failures (a valid form), and a body that is really not a form.
    await t.sqs.send(new SendMessageCommand({ QueueUrl: urls.invalid, MessageBody: oldMessage('Dead Lettered Ltd') }));
    await t.sqs.send(new SendMessageCommand({ QueueUrl: urls.invalid, MessageBody: 'not json at all' }));

    // Step 1: adopt the database in place.
    await t.db.migrate.latest(migrationConfig());
    expect(await storedCompanies()).to.deep.equal(['Stored Object Ltd', 'Stored String Ltd']);

    // Step 2: the new worker beside the old one. The old one stores a message under its
    // message id and dies before deleting it; the message comes back and the new worker
    // finds it stored.
    const taken = await t.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: urls.form, MaxNumberOfMessages: 1, VisibilityTimeout: 1 }),
    );
    const oldWorkerMessage = taken.Messages![0]!;
    const oldForm = JSON.parse(JSON.parse(oldWorkerMessage.Body!).data as string) as Record<string, unknown>;
    await t
      .db('form_form')
      .insert({ created: new Date(), data: JSON.stringify(oldForm), sqs_message_id: oldWorkerMessage.MessageId });
    worker = await createWorkerService(t.config);
    await worker.start();
    await eventually(
      async () => {
        const c = await queueCounts(t.sqs, urls.form);
        return c.visible === 0 && c.inFlight === 0 && (await storedCompanies()).length === 5 ? true : undefined;
      },
      30_000,
      'the form queue drained into the table',
    );
    const byMessageId = await t.db('form_form').where({ sqs_message_id: oldWorkerMessage.MessageId }).count({ n: '*' });
    expect(byMessageId, 'the message both workers handled has one row').to.deep.equal([{ n: '1' }]);

    // Step 3: move what the invalid queue holds back to the form queue (as a DLQ redrive does).
    for (const m of await receiveAll(t.sqs, urls.invalid)) {
      await t.sqs.send(new SendMessageCommand({ QueueUrl: urls.form, MessageBody: m.Body! }));
      await t.sqs.send(new DeleteMessageCommand({ QueueUrl: urls.invalid, ReceiptHandle: m.ReceiptHandle! }));
    }
    const invalid = await eventually(
      async () => {
        const stored = (await storedCompanies()).includes('Dead Lettered Ltd');
        const c = await queueCounts(t.sqs, urls.invalid);
        return stored && c.visible === 1 ? receiveAll(t.sqs, urls.invalid) : undefined;
      },
      30_000,
      'the valid dead letter stored and the real one back on the invalid queue',
    );
    expect(invalid.map((m) => m.Body)).to.deep.equal(['not json at all']);
    expect(invalid[0]!.MessageAttributes?.reason?.StringValue).to.equal('body is not JSON');

    // Step 4: the UI's data server is now the new web: same path, signature and secret.
    web = await createWebService(t.config);
    const base = `http://127.0.0.1:${await web.listen()}`;
    const reply = await post(base, '/form/', jsonBody(validForm({ company_name: 'New Web Ltd' })));
    expect(reply.status).to.equal(202);
    await eventually(
      async () => ((await storedCompanies()).includes('New Web Ltd') ? true : undefined),
      30_000,
      "the new web's form stored",
    );

    // Step 5: drained; every form once.
    expect(await storedCompanies()).to.deep.equal(
      [
        'Dead Lettered Ltd',
        'New Web Ltd',
        'Queued One Ltd',
        'Queued Three Ltd',
        'Queued Two Ltd',
        'Stored Object Ltd',
        'Stored String Ltd',
      ].sort(),
    );
    const ids = await t.db('form_form').whereNotNull('sqs_message_id').select('sqs_message_id');
    expect(new Set(ids.map((r: { sqs_message_id: string }) => r.sqs_message_id)).size).to.equal(ids.length);

    // The export reads the old rows and the new ones alike.
    const out = new PassThrough();
    const chunks: Buffer[] = [];
    out.on('data', (c: Buffer) => chunks.push(c));
    const code = await exportCommand({
      argv: ['--since', '2016-07-21'],
      env: { DATABASE_URL: t.database.url },
      stdout: out,
      stderr: new PassThrough(),
    });
    expect(code).to.equal(0);
    const { rows } = parseCsvObjects(Buffer.concat(chunks).toString('utf8'));
    expect(rows.map((r) => r.company_name).sort()).to.deep.equal(await storedCompanies());
  });
});
