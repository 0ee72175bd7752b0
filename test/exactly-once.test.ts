/**
 * Exactly once per submission (docs/exactly-once.md), on the real web and
 * worker, fauxqs through the AWS SDK and PostgreSQL, with the web's path to SQS
 * behind a proxy that loses answers: the request reaches the emulator and is
 * handled, its answer never comes back, and the SDK sends the same body again.
 */
import { expect } from 'chai';
import { SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { createWebService, type WebService } from '../services/web/service.ts';
import { createWorkerService, type WorkerService } from '../services/worker/service.ts';
import { encodeFormMessage } from '../services/common/message.ts';
import type { FormData } from '../services/common/form-schema.ts';
import { formEncodedBody, jsonBody, post, type Reply } from '../harness/http.ts';
import { queueCounts, receiveAll } from '../harness/sqs.ts';
import { useEmulator } from './support/emulator.ts';
import { createTestEnv, eventually, queueEmptied, type TestEnv } from './support/stack.ts';
import { validForm } from '../harness/forms.ts';
import { startTcpProxy, type TcpProxy } from '../harness/tcp-proxy.ts';

const FORM_TYPE = 'application/x-www-form-urlencoded';

interface Row {
  sqs_message_id: string;
  submission_id: string | null;
  data: Record<string, unknown>;
}

describe('exactly once per submission', function () {
  this.timeout(60_000);
  const emulator = useEmulator();
  let t: TestEnv;
  let proxy: TcpProxy;
  let web: WebService | undefined;
  let workers: WorkerService[] = [];
  let base: string;
  let duplicates = 0;

  /** The web (SQS through the proxy) and no worker yet; `env` overrides settings of both. */
  async function startWeb(env: Record<string, string> = {}): Promise<void> {
    t = await createTestEnv(emulator.endpoint, env);
    proxy = await startTcpProxy('127.0.0.1', Number(new URL(emulator.endpoint).port));
    web = await createWebService(
      t.with({ SQS_ENDPOINT_URL: `http://127.0.0.1:${proxy.port}`, SQS_REQUEST_TIMEOUT_MS: '1000' }),
    );
    base = `http://127.0.0.1:${await web.listen()}`;
  }

  async function startWorker(): Promise<WorkerService> {
    const worker = await createWorkerService(t.config);
    worker.consumer.on('batch', (r) => {
      duplicates += r.duplicates;
    });
    await worker.start();
    workers.push(worker);
    return worker;
  }

  afterEach(async () => {
    for (const w of workers) await w.stop();
    workers = [];
    duplicates = 0;
    await web?.stop();
    web = undefined;
    await proxy?.close();
    await t?.cleanup();
  });

  const rows = (): Promise<Row[]> => t.db('form_form').select('sqs_message_id', 'submission_id', 'data').orderBy('id');

  /** Waits until the form queue is empty with nothing in flight, and returns the rows. */
  async function drained(): Promise<Row[]> {
    await queueEmptied(t.sqs, (await t.queueUrls()).form, 30_000, 'the form queue drained');
    return rows();
  }

  /** A UI-style post: form-encoded data=<JSON>, signed. */
  const uiPost = (form: Record<string, unknown>, headers: Record<string, string> = {}): Promise<Reply> =>
    post(base, '/form/', formEncodedBody(form), { type: FORM_TYPE, headers });

  /** Alternates: the first answer is lost, the next passes, and so on. */
  const everyOther = (): (() => boolean) => {
    let n = 0;
    return () => n++ % 2 === 0;
  };

  it('every 202 is exactly one row while every other SQS answer is lost (the SDK resends each form)', async () => {
    await startWeb();
    proxy.loseAnswers(everyOther());
    const replies: Reply[] = [];
    for (let i = 0; i < 10; i++) replies.push(await uiPost(validForm({ company_name: `Lost answer ${i} Ltd` })));
    expect(replies.map((r) => r.status)).to.deep.equal(Array(10).fill(202));
    expect(proxy.lost, 'answers lost').to.equal(10);
    const { form } = await t.queueUrls();
    expect((await queueCounts(t.sqs, form)).visible, 'SQS holds every form twice').to.equal(20);

    await startWorker();
    const stored = await drained();
    expect(stored).to.have.length(10);
    const byId = new Map(stored.map((r) => [r.submission_id, r]));
    for (const [i, reply] of replies.entries()) {
      const body = reply.body as { submission_id: string; data: Record<string, unknown> };
      expect(byId.get(body.submission_id)?.data.company_name, `form ${i}`).to.equal(`Lost answer ${i} Ltd`);
    }
    await eventually(
      async () => (duplicates === 10 ? true : undefined),
      10_000,
      'the 10 second copies counted as duplicates',
    );
  });

  it('a 503 (every answer lost) followed by the same post is one row', async () => {
    await startWeb();
    const form = validForm({ company_name: 'Retried after 503 Ltd' });
    proxy.loseAnswers(() => true);
    const first = await uiPost(form);
    expect(first.status, first.text).to.equal(503);
    proxy.keepAnswers();
    const second = await uiPost(form);
    expect(second.status, second.text).to.equal(202);
    const { form: formUrl } = await t.queueUrls();
    expect((await queueCounts(t.sqs, formUrl)).visible, 'the 503 left copies in SQS').to.be.at.least(2);

    await startWorker();
    const stored = await drained();
    expect(stored.map((r) => [r.submission_id, r.data.company_name])).to.deep.equal([
      [(second.body as { submission_id: string }).submission_id, 'Retried after 503 Ltd'],
    ]);
  });

  it('three posts under one Idempotency-Key are one row, each answered 202 with the same submission id', async () => {
    await startWeb();
    proxy.loseAnswers(everyOther());
    const key = '"8e03978e-40d5-43e8-bc93-6894a57f9324"';
    const body = jsonBody(validForm({ company_name: 'Keyed Ltd' }));
    const replies = [
      await post(base, '/form/', body, { headers: { 'idempotency-key': key } }),
      await post(base, '/form/', body, { headers: { 'idempotency-key': key } }),
      // A bare token names the same key as the structured-field string.
      await post(base, '/form/', body, { headers: { 'idempotency-key': key.slice(1, -1) } }),
    ];
    expect(replies.map((r) => r.status)).to.deep.equal([202, 202, 202]);
    const ids = replies.map((r) => (r.body as { submission_id: string }).submission_id);
    expect(new Set(ids).size).to.equal(1);
    expect(replies.map((r) => (r.body as { repeat?: boolean }).repeat)).to.deep.equal([undefined, true, true]);

    await startWorker();
    const stored = await drained();
    expect(stored.map((r) => r.submission_id)).to.deep.equal([ids[0]]);
  });

  it('a different form under a used key reaches the invalid queue with its reason, body unchanged', async () => {
    await startWeb();
    await startWorker();
    const key = 'reused-key-1';
    // The key is signed (v1): under the legacy signature it would decide nothing.
    const a = await post(base, '/form/', jsonBody(validForm({ company_name: 'First Ltd' })), {
      headers: { 'idempotency-key': key },
      scheme: 'v1',
    });
    expect(a.status).to.equal(202);
    await eventually(async () => ((await rows()).length === 1 ? true : undefined));
    const b = await post(base, '/form/', jsonBody(validForm({ company_name: 'Second Ltd' })), {
      headers: { 'idempotency-key': key },
      scheme: 'v1',
    });
    expect(b.status, 'the web cannot know: it holds no state').to.equal(202);
    expect((b.body as { repeat?: boolean }).repeat, 'not a repeat: another body').to.equal(undefined);

    const { invalid } = await t.queueUrls();
    const copies = await eventually(async () => {
      const got = await receiveAll(t.sqs, invalid);
      return got.length > 0 ? got : undefined;
    });
    expect(copies).to.have.length(1);
    const copy = copies[0]!;
    expect(copy.MessageAttributes?.reason?.StringValue).to.contain('Idempotency-Key').and.contain('different form');
    expect(copy.MessageAttributes?.original_message_id?.StringValue).to.equal((b.body as { id: string }).id);
    expect((JSON.parse(copy.Body!) as { data: { company_name: string } }).data.company_name).to.equal('Second Ltd');
    expect((await rows()).map((r) => r.data.company_name)).to.deep.equal(['First Ltd']);
    const metrics = await workers[0]!.metrics.registry.metrics();
    expect(metrics).to.match(/form_data_worker_invalid_messages_total\{reason="idempotency_key_reused"\} 1/);
  });

  it('an identical post after the window is a second row; within it, the same one', async () => {
    await startWeb({ IDEMPOTENCY_WINDOW_SECONDS: '3', SIGNATURE_TOLERANCE_SECONDS: '3' });
    await startWorker();
    const form = validForm({ company_name: 'Windowed Ltd' });
    const first = await uiPost(form);
    const again = await uiPost(form);
    expect((again.body as { submission_id: string }).submission_id).to.equal(
      (first.body as { submission_id: string }).submission_id,
    );
    expect(await drained()).to.have.length(1);
    await eventually(async () => (duplicates === 1 ? true : undefined), 10_000, 'the repeat counted as a duplicate');
    // The key is released once it is older than the window (the worker's expiry run).
    await eventually(
      async () =>
        (await t.db('form_form').whereNotNull('submission_key').count({ n: '*' }))[0]!.n === '0' ? true : undefined,
      15_000,
      'the key released',
    );
    const later = await uiPost(form);
    expect(later.status).to.equal(202);
    await eventually(async () => ((await rows()).length === 2 ? true : undefined), 10_000, 'a second row');
    const stored = await rows();
    expect(stored.map((r) => r.data.company_name)).to.deep.equal(['Windowed Ltd', 'Windowed Ltd']);
  });

  it('with the window off (0), identical posts are two rows, and a lost answer still one', async () => {
    await startWeb({ IDEMPOTENCY_WINDOW_SECONDS: '0' });
    const form = validForm({ company_name: 'No window Ltd' });
    const a = await uiPost(form);
    const b = await uiPost(form);
    expect((a.body as { submission_id: string }).submission_id).not.to.equal(
      (b.body as { submission_id: string }).submission_id,
    );
    proxy.loseAnswers(everyOther());
    const c = await uiPost(validForm({ company_name: 'Lost once Ltd' }));
    expect(c.status).to.equal(202);
    await startWorker();
    const stored = await drained();
    expect(stored.map((r) => r.data.company_name).sort()).to.deep.equal([
      'Lost once Ltd',
      'No window Ltd',
      'No window Ltd',
    ]);
  });

  it('copies of one submission in one batch and across two workers are one row, the others counted duplicates', async () => {
    await startWeb();
    const { form } = await t.queueUrls();
    const body = encodeFormMessage({
      data: validForm({ company_name: 'Copied Ltd' }) as FormData,
      received_at: new Date().toISOString(),
      request_id: 'copies',
      submission_id: '0f8fad5b-d9cb-469f-a165-70867728950e',
    });
    for (let i = 0; i < 3; i++) {
      await t.sqs.send(
        new SendMessageBatchCommand({
          QueueUrl: form,
          Entries: Array.from({ length: 10 }, (_, j) => ({ Id: String(j), MessageBody: body })),
        }),
      );
    }
    await Promise.all([startWorker(), startWorker()]);
    const stored = await drained();
    expect(stored.map((r) => r.submission_id)).to.deep.equal(['0f8fad5b-d9cb-469f-a165-70867728950e']);
    await eventually(async () => (duplicates === 29 ? true : undefined), 10_000, '29 duplicates counted');
  });
});
