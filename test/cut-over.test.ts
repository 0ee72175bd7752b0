/**
 * The cut-over of docs/cut-over.md, rehearsed against the original v1.0.4
 * itself (its web under gunicorn and its `queue_worker`, harness/original/),
 * beside this project's web and worker on one PostgreSQL and one SQS emulator.
 * Forms are posted at a steady rate, form-encoded and signed as the UI posts
 * them, through every step and every roll-back; at the end every form either
 * web answered 202 is exactly one row, no queue holds a form, and the export
 * shows the original's rows and the new ones in the same columns.
 */
import { expect } from 'chai';
import { PassThrough } from 'node:stream';
import { DeleteMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { migrationConfig } from '../migrations/config.ts';
import { exportCommand } from '../services/export/command.ts';
import { createWebService, type WebService } from '../services/web/service.ts';
import { createWorkerService, type WorkerService } from '../services/worker/service.ts';
import { TEST_SECRET, validForm } from '../harness/forms.ts';
import { formEncodedBody, post } from '../harness/http.ts';
import {
  manage,
  startOriginalWeb,
  startOriginalWorker,
  type OriginalProcess,
  type OriginalSettings,
} from '../harness/original/original.ts';
import { queueCounts, queueUrl, receiveAll } from '../harness/sqs.ts';
import { parseCsvObjects } from './support/csv.ts';
import { useEmulator } from './support/emulator.ts';
import { useOriginal } from './support/original.ts';
import { createTestEnv, eventually, queueEmptied, type TestEnv } from './support/stack.ts';

const FORM_TYPE = 'application/x-www-form-urlencoded';

interface Posted {
  company: string;
  step: string;
  target: 'original' | 'new';
  status: number;
}

/** Posts one valid form at a time, every `intervalMs`, to whichever web the UI points at now. */
class Poster {
  target: { name: 'original' | 'new'; url: string };
  step = '';
  readonly posted: Posted[] = [];
  private stopped = false;
  private loop: Promise<void> | undefined;
  private n = 0;
  private readonly intervalMs: number;

  constructor(target: { name: 'original' | 'new'; url: string }, intervalMs = 100) {
    this.target = target;
    this.intervalMs = intervalMs;
  }

  start(): void {
    this.loop = (async () => {
      while (!this.stopped) {
        const company = `Rehearsal ${String(++this.n).padStart(4, '0')} Ltd`;
        const { name, url } = this.target;
        const step = this.step;
        let status: number;
        try {
          const body = formEncodedBody(validForm({ company_name: company }));
          status = (await post(url, '/form/', body, { type: FORM_TYPE })).status;
        } catch {
          status = 0;
        }
        this.posted.push({ company, step, target: name, status });
        await new Promise((r) => setTimeout(r, this.intervalMs));
      }
    })();
  }

  /** Resolves once `count` forms were accepted in the current step by the web the UI points at now. */
  async accepted(count: number): Promise<void> {
    const { step, target } = this;
    const done = (p: Posted): boolean => p.step === step && p.target === target.name && p.status === 202;
    await eventually(
      async () => (this.posted.filter(done).length >= count ? true : undefined),
      60_000,
      `${count} forms accepted in step "${step}"`,
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }
}

describe('cut-over from the original v1.0.4 (docs/cut-over.md), rehearsed against its own code', function () {
  this.timeout(600_000);
  const emulator = useEmulator();
  const original = useOriginal();
  let t: TestEnv;
  const running: { stop(): Promise<unknown> }[] = [];

  beforeEach(async () => {
    t = await createTestEnv(emulator.endpoint, {}, { migrate: false });
  });
  afterEach(async () => {
    for (const r of running.splice(0).reverse()) await r.stop().catch(() => undefined);
    await t.cleanup();
  });

  it('keeps every form answered 202 as exactly one row through every step and roll-back, and leaves no form in a queue', async () => {
    const live = `orig-live-${t.formQueue.slice(5)}`;
    const settings: OriginalSettings = {
      databaseUrl: t.database.url,
      sqsEndpoint: emulator.endpoint,
      queueName: live,
      uiSecret: TEST_SECRET,
    };
    const py = original.python;
    const track = <T extends { stop(): Promise<unknown> }>(r: T): T => {
      running.push(r);
      return r;
    };
    const untrack = async (r: { stop(): Promise<unknown> }): Promise<void> => {
      running.splice(running.indexOf(r), 1);
      await r.stop();
    };

    // Before: the original as deployed: its own migrations, an older row holding the form as a JSON string.
    const migrated = await manage(py, settings, ['migrate', '--no-input']);
    expect(migrated.code, migrated.stderr).to.equal(0);
    await t.db('form_form').insert({
      created: new Date('2016-08-01T10:00:00Z'),
      data: t.db.raw('to_jsonb(?::text)', [JSON.stringify(validForm({ company_name: 'Older String Row Ltd' }))]),
      sqs_message_id: 'older-1',
    });
    let oldWeb: OriginalProcess & { url: string } = track(await startOriginalWeb(py, settings));
    let oldWorker: OriginalProcess = track(await startOriginalWorker(py, settings));
    const poster = new Poster({ name: 'original', url: oldWeb.url });
    running.push(poster);
    poster.step = '0 the original alone';
    poster.start();
    await poster.accepted(5);
    const liveUrl = await queueUrl(t.sqs, live);
    // A body some other producer put on its queue: its worker sends it round for ever.
    await t.sqs.send(new SendMessageCommand({ QueueUrl: liveUrl, MessageBody: 'not JSON: looping since 2016' }));

    // Step 1: adopt the database in place; roll back; again.
    poster.step = '1 adopt the database';
    await t.db.migrate.latest(migrationConfig());
    await poster.accepted(5);
    poster.step = '1 roll-back';
    await t.db.migrate.rollback(migrationConfig(), true);
    await poster.accepted(5);
    poster.step = '1 again';
    await t.db.migrate.latest(migrationConfig());
    await poster.accepted(3);

    // Step 2: the new worker beside the original's, also reading the original's live queue.
    const withLive = t.with({ SQS_ORIGINAL_QUEUE_NAME: live });
    const startWorker = async (config = withLive): Promise<WorkerService> => {
      const w = track(await createWorkerService(config));
      await w.start();
      return w;
    };
    poster.step = '2 new worker beside';
    let worker = await startWorker();
    const urls = await t.queueUrls();
    const invalid = await eventually(
      async () => {
        const got = await receiveAll(t.sqs, urls.invalid);
        return got.length > 0 ? got : undefined;
      },
      60_000,
      'the looping body on the real invalid queue',
    );
    expect(invalid.map((m) => m.Body)).to.deep.equal(['not JSON: looping since 2016']);
    expect(invalid[0]!.MessageAttributes?.reason?.StringValue).to.equal('body is not JSON');
    // The operator reads it there and deletes it: it is not a form.
    await t.sqs.send(new DeleteMessageCommand({ QueueUrl: urls.invalid, ReceiptHandle: invalid[0]!.ReceiptHandle! }));
    // What the original's web accepts but our schema does not: stored whole, as its worker would.
    const partial = await post(oldWeb.url, '/form/', formEncodedBody({ company_name: 'Partial Form Ltd' }), {
      type: FORM_TYPE,
    });
    expect(partial.status).to.equal(202);
    await poster.accepted(5);
    poster.step = '2 roll-back';
    await untrack(worker);
    await poster.accepted(5);
    poster.step = '2 again';
    worker = await startWorker();
    await poster.accepted(3);

    // Step 3: the UI posts to the new web; roll back; again.
    const web: WebService = track(await createWebService(t.config));
    const newWeb = { name: 'new' as const, url: `http://127.0.0.1:${await web.listen()}` };
    poster.step = '3 UI to the new web';
    poster.target = newWeb;
    await poster.accepted(5);
    poster.step = '3 roll-back';
    poster.target = { name: 'original', url: oldWeb.url };
    await poster.accepted(5);
    poster.step = '3 again';
    poster.target = newWeb;
    await poster.accepted(3);

    // Step 4: stop the original's web, then its worker; roll back (start both, the UI back on it); again.
    poster.step = '4 stop the original';
    await untrack(oldWeb);
    await untrack(oldWorker);
    await poster.accepted(5);
    poster.step = '4 roll-back';
    oldWorker = track(await startOriginalWorker(py, settings));
    oldWeb = track(await startOriginalWeb(py, settings));
    poster.target = { name: 'original', url: oldWeb.url };
    await poster.accepted(5);
    poster.step = '4 again';
    poster.target = newWeb;
    await poster.accepted(2);
    await untrack(oldWeb);
    await untrack(oldWorker);
    await poster.accepted(3);

    // Step 5: the original's live queue drained; the new worker restarted without it; roll back; again.
    poster.step = '5 drain the live queue';
    await queueEmptied(t.sqs, liveUrl, 120_000, "the original's live queue empty");
    await untrack(worker);
    worker = await startWorker(t.config);
    await poster.accepted(5);
    poster.step = '5 roll-back';
    await untrack(worker);
    worker = await startWorker();
    await poster.accepted(3);
    poster.step = '5 again';
    await untrack(worker);
    await startWorker(t.config);
    await poster.accepted(3);
    await poster.stop();

    // The end: every accepted form stored, every queue empty of forms.
    const accepted = poster.posted.filter((p) => p.status === 202);
    const expected = ['Older String Row Ltd', 'Partial Form Ltd', ...accepted.map((p) => p.company)];
    const rowsByCompany = async (): Promise<Map<string, number>> => {
      const found = await t.db.raw<{ rows: { company: string | null; n: string }[] }>(`
        SELECT coalesce(
                 data->>'company_name',
                 (data#>>'{}')::jsonb->>'company_name',
                 (data->>'data')::jsonb->>'company_name') AS company,
               count(*) AS n
        FROM form_form GROUP BY 1`);
      return new Map(found.rows.map((r) => [r.company ?? '', Number(r.n)]));
    };
    const stored = await eventually(
      async () => {
        const byCompany = await rowsByCompany();
        return expected.every((c) => byCompany.has(c)) ? byCompany : undefined;
      },
      120_000,
      'every accepted form stored',
    );
    const counts = {
      form: await queueCounts(t.sqs, urls.form),
      live: await queueCounts(t.sqs, liveUrl),
      invalid: await queueCounts(t.sqs, urls.invalid),
    };
    const duplicates = [...stored.values()].reduce((sum, n) => sum + n - 1, 0);
    const unexpected = [...stored.keys()].filter((c) => !expected.includes(c));
    const left = [counts.form, counts.live, counts.invalid].reduce((n, c) => n + c.visible + c.inFlight + c.delayed, 0);

    // The export: old and new rows alike.
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
    const csv = parseCsvObjects(Buffer.concat(chunks).toString('utf8'));
    const shapes = await t.db.raw<{ rows: { company: string; shape: string }[] }>(`
      SELECT coalesce(data->>'company_name', (data#>>'{}')::jsonb->>'company_name',
                      (data->>'data')::jsonb->>'company_name') AS company,
             CASE WHEN jsonb_typeof(data) = 'string' THEN 'a JSON string holding the form'
                  WHEN data -> 'company_name' IS NOT NULL THEN 'the form as an object (new worker)'
                  ELSE '{"data": "<the form as JSON>"} (the original''s worker)' END AS shape
      FROM form_form`);
    const columnsByShape = new Map<string, Set<string>>();
    const rowsByShape = new Map<string, number>();
    const exported = new Map(csv.rows.map((r) => [r.company_name!, r]));
    for (const { company, shape } of shapes.rows) {
      rowsByShape.set(shape, (rowsByShape.get(shape) ?? 0) + 1);
      if (company === 'Partial Form Ltd') continue;
      const row = exported.get(company);
      expect(row, `export row of ${company}`).to.not.equal(undefined);
      const filled = Object.keys(row!).filter((h) => row![h] !== '');
      columnsByShape.set(shape, new Set([...(columnsByShape.get(shape) ?? []), filled.join(',')]));
    }

    const perStep = new Map<string, { original: number; new: number; refused: number }>();
    for (const p of poster.posted) {
      const s = perStep.get(p.step) ?? { original: 0, new: 0, refused: 0 };
      if (p.status === 202) s[p.target] += 1;
      else s.refused += 1;
      perStep.set(p.step, s);
    }
    console.log('      rehearsal: forms answered 202 per step (by the original web / the new web / not 202):');
    for (const [step, s] of perStep) console.log(`        ${step}: ${s.original} / ${s.new} / ${s.refused}`);
    console.log(
      `      rows ${[...stored.values()].reduce((a, b) => a + b, 0)} (expected ${expected.length}: ${accepted.length} posted and accepted, the older string row, the partial form), duplicates ${duplicates}, unexpected ${unexpected.length}, messages left in the three queues ${left}`,
    );
    for (const [shape, sets] of columnsByShape)
      console.log(
        `      ${rowsByShape.get(shape)} rows stored as ${shape}; export columns filled: ${[...sets].join(' | ')}`,
      );

    expect(
      poster.posted.filter((p) => p.status !== 202),
      'posts not answered 202',
    ).to.deep.equal([]);
    expect(duplicates, 'duplicate rows').to.equal(0);
    expect(unexpected, 'rows of no accepted form').to.deep.equal([]);
    expect(left, 'messages left in the form queue, the live queue and the invalid queue').to.equal(0);
    expect(csv.rows.length).to.equal(expected.length);
    const filledSets = [...columnsByShape.values()].flatMap((s) => [...s]);
    expect(columnsByShape.size, 'three row shapes exported').to.equal(3);
    expect(new Set(filledSets).size, 'the same columns filled for every shape').to.equal(1);
    const partialRow = exported.get('Partial Form Ltd')!;
    expect(Object.keys(partialRow).filter((h) => partialRow[h] !== '')).to.deep.equal(['created', 'company_name']);

    // The original's own export cannot read its worker's rows (form/management/commands/csv.py: json.loads of a dict).
    const originalCsv = await manage(py, settings, ['csv']);
    expect(originalCsv.code).to.not.equal(0);
    expect(originalCsv.stderr).to.match(/TypeError: the JSON object must be str/);
  });
});
