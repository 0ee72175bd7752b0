import { expect } from 'chai';
import { createWebService, type WebService } from '../services/web/service.ts';
import { createWorkerService, type WorkerService } from '../services/worker/service.ts';
import { useEmulator } from './support/emulator.ts';
import { createTestEnv, eventually, type TestEnv } from './support/stack.ts';
import { validForm } from '../harness/forms.ts';
import { formEncodedBody, jsonBody, post } from '../harness/http.ts';

describe('pipeline: POST → SQS → worker → PostgreSQL', () => {
  const emulator = useEmulator();
  let t: TestEnv;
  let web: WebService;
  let worker: WorkerService;
  let base: string;

  beforeEach(async () => {
    t = await createTestEnv(emulator.endpoint);
    web = await createWebService(t.config);
    base = `http://127.0.0.1:${await web.listen()}`;
    worker = await createWorkerService(t.config);
    await worker.start();
  });
  afterEach(async () => {
    await web.stop();
    await worker.stop();
    await t.cleanup();
  });

  it('stores a JSON submission once, with data as a JSON object', async () => {
    const reply = await post(base, '/form/', jsonBody(validForm({ marketing_source_other: 'a friend' })));
    expect(reply.status).to.equal(202);
    const { id } = reply.body as { id: string };
    const row = await eventually(
      async () =>
        (await t.db('form_form').where({ sqs_message_id: id }).first()) as
          { data: Record<string, unknown> } | undefined,
    );
    expect(row.data).to.deep.include({
      company_name: 'Acme Exports Ltd',
      marketing_source_other: 'a friend',
      agree_terms: true,
    });
    expect(typeof row.data).to.equal('object');
  });

  it('stores a form-encoded submission as the existing UI posts it', async () => {
    const reply = await post(base, '/form/', formEncodedBody(validForm()), {
      type: 'application/x-www-form-urlencoded',
    });
    expect(reply.status).to.equal(202);
    const { id } = reply.body as { id: string };
    await eventually(async () => t.db('form_form').where({ sqs_message_id: id }).first());
  });
});
