/**
 * Shutdown of the real processes (`node services/*\/main.ts`), driven by signals.
 */
import { expect } from 'chai';
import { SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { queueCounts } from '../harness/sqs.ts';
import { lockForms } from './support/locks.ts';
import { useEmulator } from './support/emulator.ts';
import { createTestEnv, eventually, type TestEnv } from './support/stack.ts';
import { queueBody, validForm } from '../harness/forms.ts';
import { startProcess, type ProcessHandle } from '../harness/process.ts';
import { freePort } from '../harness/ports.ts';
import { jsonBody, post } from '../harness/http.ts';

const NODE = process.execPath;

describe('shutdown on signals (child processes)', function () {
  this.timeout(90_000);
  const emulator = useEmulator();
  let t: TestEnv;
  const started: ProcessHandle[] = [];
  beforeEach(async () => {
    t = await createTestEnv(emulator.endpoint);
  });
  afterEach(async () => {
    await Promise.all(started.splice(0).map((p) => p.ensureStopped()));
    await t.cleanup();
  });

  async function startWorker(env: Record<string, string>): Promise<ProcessHandle> {
    const worker = startProcess(NODE, ['services/worker/main.ts'], {
      ...t.env,
      LOG_LEVEL: 'debug',
      HEALTH_PORT: String(await freePort()),
      ...env,
    });
    started.push(worker);
    await worker.waitForLog((l) => l.msg === 'worker polling');
    return worker;
  }

  async function sendMany(count: number): Promise<void> {
    const { form } = await t.queueUrls();
    for (let i = 0; i < count; i += 10) {
      const entries = Array.from({ length: Math.min(10, count - i) }, (_, j) => ({
        Id: String(j),
        MessageBody: queueBody(validForm({ company_name: `signal ${i + j}` }), 'signals'),
      }));
      await t.sqs.send(new SendMessageBatchCommand({ QueueUrl: form, Entries: entries }));
    }
  }

  async function settled(): Promise<{ rows: number; visible: number; inFlight: number }> {
    const { form } = await t.queueUrls();
    const counts = await queueCounts(t.sqs, form);
    const [{ count }] = (await t.db('form_form').count({ count: '*' })) as [{ count: string }];
    return { rows: Number(count), visible: counts.visible + counts.delayed, inFlight: counts.inFlight };
  }

  it('SIGTERM during a long poll: the poll returns, what it brought is stored, exit 0 within the wait time plus a margin', async () => {
    const waitTime = 4;
    const healthPort = await freePort();
    const worker = await startWorker({
      SQS_WAIT_TIME: String(waitTime),
      WORKER_CONCURRENCY: '2',
      HEALTH_PORT: String(healthPort),
    });
    // The long poll is under way once the worker counts its ReceiveMessage request.
    await eventually(async () => {
      const text = await (await fetch(`http://127.0.0.1:${healthPort}/metrics`)).text();
      return /form_data_worker_sqs_requests_total\{[^}]*action="ReceiveMessage"[^}]*\} [1-9]/.test(text)
        ? true
        : undefined;
    });
    worker.kill('SIGTERM');
    // Messages sent after the signal are handed to the poll in flight: it must bring them, and none may be lost.
    await sendMany(5);
    const { code } = await worker.exited;
    expect(code).to.equal(0);
    const drained = await worker.waitForLog((l) => l.msg === 'worker drained');
    expect(drained.drainMs)
      .to.be.a('number')
      .and.at.most(waitTime * 1000 + 2000);
    const brought = worker.logs
      .filter((l) => l.msg === 'batch handled')
      .reduce((sum, l) => sum + Number(l.received), 0);
    const s = await settled();
    expect(brought, 'messages the poll in flight brought after the signal').to.be.greaterThan(0);
    expect(s.rows, 'rows: what the poll brought, stored').to.equal(brought);
    expect(s.inFlight, 'nothing left in flight').to.equal(0);
    expect(s.rows + s.visible).to.equal(5);
  });

  it('SIGTERM during processing: the batches under way finish and are deleted, exit 0, nothing lost', async () => {
    await sendMany(300);
    // Mid-batch for certain: the worker's INSERT waits on the test's lock when the signal comes.
    const lock = await lockForms(t.database.url);
    let worker: ProcessHandle;
    try {
      worker = await startWorker({ SQS_WAIT_TIME: '2', WORKER_CONCURRENCY: '4' });
      await lock.insertWaiting();
      worker.kill('SIGTERM');
      await worker.waitForLog((l) => l.msg === 'shutting down: no new polls; draining the polls in flight');
    } finally {
      await lock.release();
    }
    const { code } = await worker.exited;
    expect(code).to.equal(0);
    const drained = await worker.waitForLog((l) => l.msg === 'worker drained');
    expect(drained.drainMs).to.be.at.most(2000 + 2000);
    const s = await settled();
    expect(s.inFlight, 'nothing left in flight').to.equal(0);
    expect(s.rows).to.be.greaterThan(0);
    expect(s.rows + s.visible).to.equal(300);
    const [{ distinct }] = (await t.db('form_form').countDistinct({ distinct: 'sqs_message_id' })) as [
      { distinct: string },
    ];
    expect(Number(distinct)).to.equal(s.rows);
  });

  it('a second signal exits at once with a non-zero code', async () => {
    const worker = await startWorker({ SQS_WAIT_TIME: '20' });
    worker.kill('SIGTERM');
    await worker.waitForLog((l) => l.msg === 'shutting down: no new polls; draining the polls in flight');
    worker.kill('SIGINT');
    const { code } = await worker.exited;
    expect(code).to.equal(1);
    expect(worker.logs.some((l) => String(l.msg).startsWith('second signal'))).to.equal(true);
  });

  it('web: readiness fails at once on SIGTERM, requests under way finish, exit 0 after the delay', async () => {
    const port = await freePort();
    const web = startProcess(NODE, ['services/web/main.ts'], {
      ...t.env,
      PORT: String(port),
      LOG_LEVEL: 'info',
      SHUTDOWN_DELAY_MS: '1500',
    });
    started.push(web);
    await web.waitForLog((l) => l.msg === 'web listening');
    const base = `http://127.0.0.1:${port}`;
    expect((await fetch(`${base}/healthz/ready`)).status).to.equal(200);
    web.kill('SIGTERM');
    await web.waitForLog((l) => String(l.msg).startsWith('shutting down'));
    expect((await fetch(`${base}/healthz/ready`)).status).to.equal(503);
    // Still serving during the delay, so a load balancer that has not yet noticed loses nothing.
    const reply = await post(base, '/form/', jsonBody(validForm()));
    expect(reply.status).to.equal(202);
    const { code } = await web.exited;
    expect(code).to.equal(0);
    await eventually(async () => ((await settled()).visible === 1 ? true : undefined));
  });

  it('a bad configuration value stops the process with one clear line and a non-zero exit', async () => {
    const worker = startProcess(NODE, ['services/worker/main.ts'], { ...t.env, SQS_WAIT_TIME: '25' });
    started.push(worker);
    const { code } = await worker.exited;
    expect(code).to.equal(2);
    expect(worker.text).to.deep.equal([
      'worker: invalid configuration: SQS_WAIT_TIME="25" is not allowed; expected an integer from 0 to 20',
    ]);
    const web = startProcess(NODE, ['services/web/main.ts'], { ...t.env, UI_SECRET: '' });
    started.push(web);
    expect((await web.exited).code).to.equal(2);
    expect(web.text.join('\n')).to.contain('UI_SECRET');
  });
});
