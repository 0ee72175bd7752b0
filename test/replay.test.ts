/**
 * Issue 20's reproductions, re-run on the real web and worker, fauxqs through
 * the AWS SDK and PostgreSQL: captured requests replayed under fresh or stolen
 * Idempotency-Keys, v1 replays, secret rotation, and queue messages that try
 * what the web refuses (too large, no submission id, another submission's id,
 * inexact numbers).
 */
import { expect } from 'chai';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { createWebService, type WebService } from '../services/web/service.ts';
import { createWorkerService, type WorkerService } from '../services/worker/service.ts';
import { encodeFormMessage } from '../services/common/message.ts';
import { contentId, keyId } from '../services/common/submission-id.ts';
import type { FormData } from '../services/common/form-schema.ts';
import { jsonBody, post, sign, signV1, type Reply } from '../harness/http.ts';
import { queueCounts, receiveAll } from '../harness/sqs.ts';
import { useEmulator } from './support/emulator.ts';
import { createTestEnv, eventually, queueEmptied, type TestEnv } from './support/stack.ts';
import { validForm } from '../harness/forms.ts';

const NEXT_SECRET = 'the-next-ui-secret-of-at-least-32-characters';

interface Row {
  submission_id: string | null;
  data: Record<string, unknown>;
}

describe('replays, rotation and the queue as a trust boundary (issue 20)', function () {
  this.timeout(60_000);
  const emulator = useEmulator();
  let t: TestEnv;
  let webs: WebService[] = [];
  let worker: WorkerService | undefined;

  async function startWeb(env: Record<string, string> = {}): Promise<string> {
    const web = await createWebService(t.with(env));
    webs.push(web);
    return `http://127.0.0.1:${await web.listen()}`;
  }

  async function startWorker(): Promise<void> {
    worker = await createWorkerService(t.config);
    await worker.start();
  }

  beforeEach(async () => {
    t = await createTestEnv(emulator.endpoint);
  });

  afterEach(async () => {
    await worker?.stop();
    worker = undefined;
    for (const web of webs) await web.stop();
    webs = [];
    await t?.cleanup();
  });

  const rows = (): Promise<Row[]> => t.db('form_form').select('submission_id', 'data').orderBy('id');

  async function drained(): Promise<Row[]> {
    await queueEmptied(t.sqs, (await t.queueUrls()).form, 30_000, 'the form queue drained');
    return rows();
  }

  /** The reasons of the copies on the invalid queue, once `n` are there. */
  async function invalidReasons(n: number): Promise<string[]> {
    const { invalid } = await t.queueUrls();
    const seen: string[] = [];
    await eventually(
      async () => {
        for (const m of await receiveAll(t.sqs, invalid)) seen.push(m.MessageAttributes?.reason?.StringValue ?? '');
        return seen.length >= n ? true : undefined;
      },
      30_000,
      `${n} invalid copies`,
    );
    return seen;
  }

  const idOf = (reply: Reply): string => (reply.body as { submission_id: string }).submission_id;

  it('legacy: a captured request replayed under three fresh Idempotency-Keys is still one submission, one row', async () => {
    const base = await startWeb();
    const body = jsonBody(validForm({ company_name: 'Captured Ltd' }));
    const signature = sign('/form/', body);
    const replies = [await post(base, '/form/', body, { signature })];
    for (const key of ['fresh-1', 'fresh-2', 'fresh-3'])
      replies.push(await post(base, '/form/', body, { signature, headers: { 'idempotency-key': key } }));
    expect(replies.map((r) => r.status)).to.deep.equal([202, 202, 202, 202]);
    expect(new Set(replies.map(idOf)).size).to.equal(1);
    await startWorker();
    expect((await drained()).map((r) => r.data.company_name)).to.deep.equal(['Captured Ltd']);
  });

  it("legacy: a replay under a client's key first does not take it; the client's form is stored", async () => {
    const base = await startWeb();
    await startWorker();
    const captured = jsonBody(validForm({ company_name: 'Captured Ltd' }));
    const key = 'client-key-7';
    const replay = await post(base, '/form/', captured, {
      signature: sign('/form/', captured),
      headers: { 'idempotency-key': key },
    });
    expect(replay.status).to.equal(202);
    await eventually(async () => ((await rows()).length === 1 ? true : undefined));
    // The client, signing its key with v1, and another one still on the legacy signature.
    const v1 = await post(base, '/form/', jsonBody(validForm({ company_name: 'Client Ltd' })), {
      headers: { 'idempotency-key': key },
      scheme: 'v1',
    });
    const legacy = await post(base, '/form/', jsonBody(validForm({ company_name: 'Legacy client Ltd' })), {
      headers: { 'idempotency-key': 'client-key-8' },
    });
    expect([v1.status, legacy.status]).to.deep.equal([202, 202]);
    expect(idOf(v1)).to.equal(keyId(key));
    expect(idOf(replay)).not.to.equal(keyId(key));
    const stored = await eventually(async () => {
      const r = await rows();
      return r.length === 3 ? r : undefined;
    });
    expect(stored.map((r) => r.data.company_name).sort()).to.deep.equal([
      'Captured Ltd',
      'Client Ltd',
      'Legacy client Ltd',
    ]);
    const { invalid } = await t.queueUrls();
    expect((await queueCounts(t.sqs, invalid)).visible).to.equal(0);
  });

  it('v1: a replay within the tolerance is the same submission even with the content window off; a stale one is refused', async () => {
    const base = await startWeb({ IDEMPOTENCY_WINDOW_SECONDS: '0' });
    const body = jsonBody(validForm({ company_name: 'Signed Ltd' }));
    const header = signV1({ path: '/form/', body, contentType: 'application/json' });
    const first = await post(base, '/form/', body, { scheme: 'v1', signature: header });
    const replay = await post(base, '/form/', body, { scheme: 'v1', signature: header });
    expect([first.status, replay.status]).to.deep.equal([202, 202]);
    expect(idOf(replay)).to.equal(idOf(first));
    const stale = signV1(
      { path: '/form/', body, contentType: 'application/json' },
      { timestamp: Math.floor(Date.now() / 1000) - 301 },
    );
    const refused = await post(base, '/form/', body, { scheme: 'v1', signature: stale });
    expect(refused.status).to.equal(401);
    await startWorker();
    expect((await drained()).map((r) => r.data.company_name)).to.deep.equal(['Signed Ltd']);
  });

  it('rotation: both secrets are accepted under both schemes, then the old one is refused', async () => {
    const during = await startWeb({ UI_SECRET_NEXT: NEXT_SECRET });
    const body = jsonBody(validForm());
    for (const options of [
      {},
      { secret: NEXT_SECRET },
      { scheme: 'v1' as const },
      { scheme: 'v1' as const, secret: NEXT_SECRET },
    ]) {
      const reply = await post(during, '/form/', body, options);
      expect(reply.status, JSON.stringify(options)).to.equal(202);
    }
    const after = await startWeb({ UI_SECRET: NEXT_SECRET });
    expect((await post(after, '/form/', body, { secret: NEXT_SECRET })).status).to.equal(202);
    expect((await post(after, '/form/', body)).status).to.equal(401);
    expect((await post(after, '/form/', body, { scheme: 'v1' })).status).to.equal(401);
  });

  it('SIGNATURE_SCHEMES=v1 turns the legacy signature off', async () => {
    const base = await startWeb({ SIGNATURE_SCHEMES: 'v1' });
    const body = jsonBody(validForm());
    const legacy = await post(base, '/form/', body);
    expect(legacy.status).to.equal(401);
    expect((legacy.body as { detail: string }).detail).to.contain('X-Signature is not accepted here');
    expect((await post(base, '/form/', body, { scheme: 'v1' })).status).to.equal(202);
  });

  it('worker: refuses what the web refuses, and a message cannot take another submission id', async () => {
    const { form } = await t.queueUrls();
    const send = (body: string) => t.sqs.send(new SendMessageCommand({ QueueUrl: form, MessageBody: body }));
    const message = (data: Record<string, unknown>, more: Record<string, unknown> = {}): string =>
      encodeFormMessage({
        data: data as FormData,
        received_at: new Date().toISOString(),
        request_id: 'forged',
        ...more,
      });
    const victim = validForm({ company_name: 'Victim Ltd' });
    // About 112,000 bytes, as in the report (112,894): over the web's 65,536, each field within the schema's caps.
    const large = message(
      validForm(Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`note_${i}`, 'x'.repeat(1990)]))),
    );
    expect(large.length).to.be.above(100_000);
    await send(large);
    // Another submission's id, claimed in every way a message can claim one.
    await send(message(validForm({ company_name: 'Thief Ltd' }), { submission_id: contentId(victim as FormData) }));
    await send(
      message(validForm({ company_name: 'Thief Ltd' }), {
        submission_id: contentId(victim as FormData),
        submission_source: 'content',
      }),
    );
    await send(
      message(validForm({ company_name: 'Thief Ltd' }), {
        submission_id: contentId(victim as FormData),
        submission_source: 'random',
      }),
    );
    await send(
      message(validForm({ company_name: 'Thief Ltd' }), {
        submission_id: contentId(victim as FormData),
        submission_source: 'key',
        idempotency_key: 'guess',
      }),
    );
    // A number the web would refuse.
    await send(message(validForm({ amount: 1 }), {}).replace('"amount":1', '"amount":1.50'));
    // Two identical messages without a submission id, in this service's format: one row.
    await send(message(validForm({ company_name: 'No id Ltd' })));
    await send(message(validForm({ company_name: 'No id Ltd' })));
    await startWorker();
    const reasons = await invalidReasons(6);
    expect(reasons.filter((r) => r.includes('bytes, over 65536'))).to.have.length(1);
    expect(reasons.filter((r) => r.startsWith('submission_id is'))).to.have.length(4);
    expect(reasons.filter((r) => r.includes('the number 1.50'))).to.have.length(1);
    // The victim's own submission, sent later, is stored under its id.
    const base = await startWeb();
    const reply = await post(base, '/form/', jsonBody(victim));
    expect(idOf(reply)).to.equal(contentId(victim as FormData));
    const stored = await eventually(async () => {
      const r = await rows();
      return r.length === 2 ? r : undefined;
    });
    expect(stored.map((r) => r.data.company_name).sort()).to.deep.equal(['No id Ltd', 'Victim Ltd']);
    expect(stored.find((r) => r.data.company_name === 'Victim Ltd')!.submission_id).to.equal(idOf(reply));
    const metrics = await worker!.metrics.registry.metrics();
    expect(metrics).to.match(/form_data_worker_invalid_messages_total\{reason="submission_id_mismatch"\} 4/);
    expect(metrics).to.match(/form_data_worker_invalid_messages_total\{reason="too_large"\} 1/);
    expect(metrics).to.match(/form_data_worker_invalid_messages_total\{reason="number_inexact"\} 1/);
  });

  it("worker: the replaced service's format (data a JSON string, no id) is still stored, keyed by message id", async () => {
    const { form } = await t.queueUrls();
    const body = JSON.stringify({ data: JSON.stringify(validForm({ company_name: 'Old Ltd' })) });
    await t.sqs.send(new SendMessageCommand({ QueueUrl: form, MessageBody: body }));
    await t.sqs.send(new SendMessageCommand({ QueueUrl: form, MessageBody: body }));
    await startWorker();
    const stored = await drained();
    expect(stored.map((r) => [r.data.company_name, r.submission_id])).to.deep.equal([
      ['Old Ltd', null],
      ['Old Ltd', null],
    ]);
  });
});
