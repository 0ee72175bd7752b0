/**
 * The worker on the original v1.0.4's live queue (SQS_ORIGINAL_QUEUE_NAME,
 * docs/cut-over.md), with bodies as that service's web and other producers put
 * them there (test/cut-over.test.ts runs the original itself): a valid form is
 * stored as new rows are, what the original's worker would store is stored
 * whole, the rest goes to the real invalid queue, and the live queue ends empty.
 */
import { expect } from 'chai';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { loadConfig } from '../services/common/config.ts';
import { decodeOriginalMessage } from '../services/common/original-message.ts';
import { createWorkerService, type WorkerService } from '../services/worker/service.ts';
import { validForm } from '../harness/forms.ts';
import { queueCounts, queueUrl, receiveAll } from '../harness/sqs.ts';
import { useEmulator } from './support/emulator.ts';
import { createTestEnv, eventually, type TestEnv } from './support/stack.ts';

/** A body as the original's web queues it: `{"data": "<the posted data as JSON>"}`. */
const originalBody = (data: unknown): string => JSON.stringify({ data: JSON.stringify(data) });

describe("the worker on the original v1.0.4's live queue", function () {
  this.timeout(60_000);
  const emulator = useEmulator();
  let t: TestEnv;
  let worker: WorkerService | undefined;

  beforeEach(async () => {
    t = await createTestEnv(emulator.endpoint);
  });
  afterEach(async () => {
    await worker?.stop();
    worker = undefined;
    await t.cleanup();
  });

  it('decodes what the original stores and refuses what it would loop', () => {
    const form = validForm();
    expect(decodeOriginalMessage(originalBody(form))).to.deep.include({ ok: true, data: form });
    expect(decodeOriginalMessage(originalBody({ company_name: 'x' }))).to.deep.include({
      ok: true,
      verbatim: true,
      data: { data: JSON.stringify({ company_name: 'x' }) },
    });
    expect(decodeOriginalMessage(JSON.stringify({ data: 'not json' }))).to.deep.include({ ok: true, verbatim: true });
    for (const [body, code] of [
      ['not json', 'not_json'],
      [JSON.stringify({ data: null }), 'validation'],
      [JSON.stringify({ other: 1 }), 'data_missing'],
      [JSON.stringify([1]), 'not_object'],
      [JSON.stringify({ data: { a: '\u0000' } }), 'validation'],
    ] as const)
      expect(decodeOriginalMessage(body), body).to.deep.include({ ok: false, code });
  });

  it('refuses a configuration that reads its own queues as the original one', () => {
    for (const name of [t.formQueue, t.invalidQueue])
      expect(() => loadConfig({ ...t.env, SQS_ORIGINAL_QUEUE_NAME: name })).to.throw(/SQS_ORIGINAL_QUEUE_NAME/);
  });

  it('stores valid forms as new rows, partial ones whole, sends the rest to the invalid queue, and empties the live queue', async () => {
    const live = `live-${t.formQueue}`;
    worker = await createWorkerService(t.with({ SQS_ORIGINAL_QUEUE_NAME: live }));
    await worker.start();
    const liveUrl = await queueUrl(t.sqs, live);
    const send = (body: string) => t.sqs.send(new SendMessageCommand({ QueueUrl: liveUrl, MessageBody: body }));
    const full = await send(originalBody(validForm({ company_name: 'Full Ltd' })));
    const partial = await send(originalBody({ company_name: 'Partial Ltd' }));
    await send('not JSON: the original sends it round for ever');
    await send(JSON.stringify({ data: null }));
    const urls = await t.queueUrls();
    const invalid = await eventually(
      async () => {
        const c = await queueCounts(t.sqs, liveUrl);
        const rows = await t.db('form_form').count<{ n: string }[]>({ n: '*' });
        if (c.visible + c.inFlight + c.delayed > 0 || rows[0]!.n !== '2') return undefined;
        const got = await receiveAll(t.sqs, urls.invalid);
        return got.length === 2 ? got : undefined;
      },
      30_000,
      'two rows, two invalid copies and an empty live queue',
    );
    expect(invalid.map((m) => m.Body).sort()).to.deep.equal(
      [JSON.stringify({ data: null }), 'not JSON: the original sends it round for ever'].sort(),
    );
    const rows = await t.db('form_form').select('sqs_message_id', 'data').orderBy('id');
    const byId = new Map(rows.map((r: { sqs_message_id: string; data: unknown }) => [r.sqs_message_id, r.data]));
    expect(byId.get(full.MessageId!)).to.deep.equal(validForm({ company_name: 'Full Ltd' }));
    expect(byId.get(partial.MessageId!)).to.deep.equal({ data: JSON.stringify({ company_name: 'Partial Ltd' }) });
  });
});
