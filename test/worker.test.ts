import { expect } from 'chai';
import { once } from 'node:events';
import { SendMessageBatchCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { loadConfig } from '../services/common/config.ts';
import { createLogger } from '../services/common/logger.ts';
import { createSqsClient } from '../services/common/sqs.ts';
import { createDatabase } from '../services/common/db.ts';
import { BatchHandler } from '../services/worker/batch.ts';
import { WorkerQueue } from '../services/worker/queue.ts';
import { FormRepository } from '../services/worker/repository.ts';
import { createWorkerService, type WorkerService } from '../services/worker/service.ts';
import { queueCounts, receiveAll } from '../harness/sqs.ts';
import { useEmulator } from './support/emulator.ts';
import { createTestEnv, eventually, queueEmptied, type TestEnv } from './support/stack.ts';
import { lockForms } from './support/locks.ts';
import { queueBody, validForm } from '../harness/forms.ts';
import { startTcpProxy } from '../harness/tcp-proxy.ts';

describe('worker', () => {
  const emulator = useEmulator();
  let t: TestEnv;
  beforeEach(async () => {
    t = await createTestEnv(emulator.endpoint);
  });
  afterEach(async () => {
    await t.cleanup();
  });

  async function send(body: string): Promise<string> {
    const { form } = await t.queueUrls();
    const out = await t.sqs.send(new SendMessageCommand({ QueueUrl: form, MessageBody: body }));
    return out.MessageId!;
  }

  async function rows(): Promise<Array<{ sqs_message_id: string; data: Record<string, unknown> }>> {
    return t.db('form_form').select('sqs_message_id', 'data').orderBy('id');
  }

  describe('batch handling on real SQS and PostgreSQL', () => {
    it('stores a redelivered message (same message id, new receipt) once and deletes both', async () => {
      const logger = createLogger('silent', 'test');
      const sqs = createSqsClient(t.config.sqs);
      const db = createDatabase(t.config.database);
      try {
        // The worker's composition creates the queues; here the test wires the parts itself.
        const service = await createWorkerService(t.config, { logger });
        await service.stop();
        const urls = await t.queueUrls();
        const queue = new WorkerQueue(sqs, urls);
        const handler = new BatchHandler({
          queue,
          repository: new FormRepository(db, 5000),
          logger,
          backoffBaseSeconds: 1,
          backoffMaxSeconds: 5,
        });
        const id = await send(queueBody(validForm(), 'test'));
        // Visibility 0: the message is visible again at once, as after a lost delete.
        const first = await queue.receive({ waitTimeSeconds: 1, maxNumberOfMessages: 1, visibilityTimeoutSeconds: 0 });
        const second = await queue.receive({
          waitTimeSeconds: 1,
          maxNumberOfMessages: 1,
          visibilityTimeoutSeconds: 30,
        });
        expect(first.map((m) => m.messageId)).to.deep.equal([id]);
        expect(second.map((m) => m.messageId)).to.deep.equal([id]);
        expect(second[0]!.receiveCount).to.equal(2);

        const a = await handler.handle(first);
        const b = await handler.handle(second);
        expect(a).to.include({ stored: 1, duplicates: 0 });
        expect(b).to.include({ stored: 0, duplicates: 1, notDeleted: 0 });
        expect((await rows()).map((r) => r.sqs_message_id)).to.deep.equal([id]);
        expect(await queueCounts(t.sqs, urls.form)).to.deep.equal({ visible: 0, inFlight: 0, delayed: 0 });
      } finally {
        sqs.destroy();
        await db.destroy();
      }
    });
  });

  describe('the running worker', () => {
    let worker: WorkerService;
    beforeEach(async () => {
      worker = await createWorkerService(t.config);
      await worker.start();
    });
    afterEach(async () => {
      await worker.stop();
    });

    it('stores valid messages, also those of the replaced service with data as a JSON string', async () => {
      const a = await send(queueBody(validForm({ company_name: 'A' }), 'test'));
      const b = await send(JSON.stringify({ data: JSON.stringify(validForm({ company_name: 'B' })) }));
      const stored = await eventually(async () => {
        const r = await rows();
        return r.length === 2 ? r : undefined;
      });
      expect(Object.fromEntries(stored.map((r) => [r.sqs_message_id, r.data.company_name]))).to.deep.equal({
        [a]: 'A',
        [b]: 'B',
      });
    });

    it('polls with one loop while the queue has no backlog and with all of them while it has one', async () => {
      // The worker of this block runs WORKER_CONCURRENCY (default 16) loops on a queue that starts empty.
      await eventually(
        async () => (worker.consumer.activeLoops === 1 ? true : undefined),
        20_000,
        'one polling loop on an empty queue',
      );
      // The backlog is made, not raced for: with form_form locked, each loop that brings a full batch waits on
      // its INSERT, so the backlog stays in the queue until every loop polls, on a fast machine or a slow one.
      const lock = await lockForms(t.config.database.url);
      try {
        const { form } = await t.queueUrls();
        await Promise.all(
          Array.from({ length: 60 }, (_, i) =>
            t.sqs.send(
              new SendMessageBatchCommand({
                QueueUrl: form,
                Entries: Array.from({ length: 10 }, (_, j) => ({
                  Id: String(j),
                  MessageBody: queueBody(validForm({ company_name: `backlog ${i}.${j}` }), 'test'),
                })),
              }),
            ),
          ),
        );
        await eventually(
          async () => (worker.consumer.activeLoops === t.config.worker.concurrency ? true : undefined),
          30_000,
          `all ${t.config.worker.concurrency} loops polling during the backlog`,
        );
      } finally {
        await lock.release();
      }
      await eventually(async () => ((await rows()).length === 600 ? true : undefined), 60_000, 'the backlog stored');
      await eventually(async () => (worker.consumer.activeLoops === 1 ? true : undefined), 20_000, 'back to one loop');
    });

    it('routes invalid messages to the invalid queue with bodies unchanged, and removes them from the form queue', async () => {
      const bodies = [
        'not json at all',
        '{"no_data": true}',
        queueBody({ ...validForm(), email_address2: 'other@example.com' }, 'test'),
        '{"data": "{not json"}',
        '[1,2,3]',
        `{"data": {"company_name": "x\\u0000y"}}`,
        ' \u00e9 \u4e2d\u6587 \t\r\n',
      ];
      const ids = await Promise.all(bodies.map(send));
      const urls = await t.queueUrls();
      const copies = await eventually(async () => {
        const c = await queueCounts(t.sqs, urls.invalid);
        return c.visible === bodies.length ? receiveAll(t.sqs, urls.invalid, bodies.length) : undefined;
      });
      const byOriginal = new Map(copies.map((m) => [m.MessageAttributes?.original_message_id?.StringValue, m]));
      ids.forEach((id, i) => {
        const copy = byOriginal.get(id);
        expect(copy, `copy of ${bodies[i]}`).to.exist;
        expect(copy!.Body).to.equal(bodies[i]);
        expect(copy!.MessageAttributes?.reason?.StringValue).to.be.a('string').and.not.empty;
      });
      expect(byOriginal.get(ids[2])!.MessageAttributes!.reason!.StringValue).to.contain('email_address2');
      await eventually(async () => {
        const c = await queueCounts(t.sqs, urls.form);
        return c.visible + c.inFlight === 0 ? true : undefined;
      });
      expect(await rows()).to.have.length(0);
    });
  });

  describe('database outage', () => {
    it('backs off, reports not ready but live, hands messages back, and stores everything once the database returns', async () => {
      const pg = new URL(t.config.database.url);
      const proxy = await startTcpProxy(pg.hostname, Number(pg.port || 5432));
      const viaProxy = new URL(t.config.database.url);
      viaProxy.hostname = '127.0.0.1';
      viaProxy.port = String(proxy.port);
      const config = loadConfig({
        ...t.env,
        DATABASE_URL: viaProxy.toString(),
        DATABASE_TIMEOUT_MS: '1000',
        SQS_RETRY_BACKOFF_BASE_SECONDS: '1',
        SQS_RETRY_BACKOFF_MAX_SECONDS: '2',
        WORKER_CONCURRENCY: '2',
      });
      const worker = await createWorkerService(config);
      const healthPort = await worker.start();
      try {
        proxy.cut();
        const backoff = once(worker.consumer, 'backoff');
        const ids = await Promise.all(
          Array.from({ length: 25 }, (_, i) => send(queueBody(validForm({ company_name: `outage ${i}` }), 'test'))),
        );
        const [event] = (await backoff) as [{ reason: string }];
        expect(event.reason).to.match(/^database unavailable/);
        const ready = await fetch(`http://127.0.0.1:${healthPort}/healthz/ready`);
        expect(ready.status).to.equal(503);
        const answer = await ready.text();
        expect(answer).to.contain('database unreachable');
        expect(answer, 'no error text in a probe answer').not.to.match(/DatabaseError|ECONN|timeout|connect|5432/i);
        expect((await fetch(`http://127.0.0.1:${healthPort}/healthz/live`)).status).to.equal(200);

        // While the database is down the loops do not poll: receive counts must not climb towards the redrive limit.
        const receives = async (): Promise<number> =>
          (await worker.metrics.sqsRequests.get()).values.find((v) => v.labels.action === 'ReceiveMessage')?.value ?? 0;
        const before = await receives();
        for (let i = 0; i < 4; i++) await once(worker.consumer, 'backoff');
        expect(await receives(), 'ReceiveMessage calls during the outage').to.equal(before);

        proxy.restore();
        const stored = await eventually(
          async () => {
            const r = await rows();
            return r.length === ids.length ? r : undefined;
          },
          30_000,
          'all rows after the outage',
        );
        expect(new Set(stored.map((r) => r.sqs_message_id))).to.deep.equal(new Set(ids));
        await eventually(async () =>
          (await fetch(`http://127.0.0.1:${healthPort}/healthz/ready`)).status === 200 ? true : undefined,
        );
        const { form } = await t.queueUrls();
        await queueEmptied(t.sqs, form, 20_000);
      } finally {
        await worker.stop();
        await proxy.close();
      }
    });
  });
});
