/**
 * The worker's coalescing FormWriter over the real repository, PostgreSQL and
 * SQS (its flushing rules: test/unit/writer.test.ts): an outage hands every
 * message back and deletes none, a message is deleted only after its row is
 * committed, and stopping flushes the waiting rows and drains.
 */
import { expect } from 'chai';
import { SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { createDatabase } from '../services/common/db.ts';
import { createLogger } from '../services/common/logger.ts';
import { createSqsClient } from '../services/common/sqs.ts';
import { BatchHandler } from '../services/worker/batch.ts';
import { WorkerQueue } from '../services/worker/queue.ts';
import { FormRepository } from '../services/worker/repository.ts';
import { createWorkerService } from '../services/worker/service.ts';
import { FormWriter } from '../services/worker/writer.ts';
import { queueCounts } from '../harness/sqs.ts';
import { useEmulator } from './support/emulator.ts';
import { createTestEnv, eventually, queueEmptied, type TestEnv } from './support/stack.ts';
import { queueBody, validForm } from '../harness/forms.ts';
import { startTcpProxy } from '../harness/tcp-proxy.ts';

describe('FormWriter on PostgreSQL and SQS', function () {
  this.timeout(90_000);
  const emulator = useEmulator();
  let t: TestEnv;
  beforeEach(async () => {
    t = await createTestEnv(emulator.endpoint);
  });
  afterEach(async () => {
    await t.cleanup();
  });

  async function fill(count: number, tag: string): Promise<void> {
    const { form } = await t.queueUrls();
    for (let i = 0; i < count; i += 10) {
      const Entries = Array.from({ length: Math.min(10, count - i) }, (_, j) => ({
        Id: String(j),
        MessageBody: queueBody(validForm({ company_name: `${tag} ${i + j}` }), 'writer'),
      }));
      await t.sqs.send(new SendMessageBatchCommand({ QueueUrl: form, Entries }));
    }
  }

  const rowCount = async (): Promise<number> =>
    Number((await t.db('form_form').count<{ n: string }[]>({ n: '*' }))[0]?.n);

  it('deletes the messages of concurrent batches only after their rows are committed; an outage hands every one back', async () => {
    const pgUrl = new URL(t.config.database.url);
    const proxy = await startTcpProxy(pgUrl.hostname, Number(pgUrl.port || 5432));
    const viaProxy = new URL(t.config.database.url);
    viaProxy.hostname = '127.0.0.1';
    viaProxy.port = String(proxy.port);
    const logger = createLogger('silent', 'test');
    const sqs = createSqsClient(t.config.sqs);
    const db = createDatabase({ url: viaProxy.toString(), poolMax: 2, timeoutMs: 1000 });
    const urls = await t.queueUrls();
    const queue = new WorkerQueue(sqs, urls);
    const repository = new FormRepository(db, 1000);
    // At each statement, the messages still on the queue less the statement's rows: never negative if none of
    // them was deleted before its commit.
    const seen: number[] = [];
    const writer = new FormWriter({
      inserter: {
        insertMany: async (rows) => {
          const c = await queueCounts(t.sqs, urls.form);
          seen.push(c.visible + c.inFlight + c.delayed - rows.length);
          return repository.insertMany(rows);
        },
      },
      maxRows: 100,
      windowMs: 2,
      parallel: 2,
    });
    const store = {
      insertMany: writer.insertMany.bind(writer),
      classifySkipped: repository.classifySkipped.bind(repository),
    };
    const handler = new BatchHandler({ queue, repository: store, logger, backoffBaseSeconds: 1, backoffMaxSeconds: 1 });
    const receive = () => queue.receive({ waitTimeSeconds: 1, maxNumberOfMessages: 10, visibilityTimeoutSeconds: 30 });
    try {
      await fill(40, 'outage');
      const batches = await Promise.all([receive(), receive(), receive(), receive()]);
      const received = batches.flat().length;
      expect(received).to.be.greaterThan(10);

      proxy.cut();
      const failed = await Promise.all(batches.map((b) => handler.handle(b)));
      expect(failed.map((r) => r.databaseFailed)).to.deep.equal(batches.map((b) => b.length > 0));
      expect(failed.reduce((s, r) => s + r.retried, 0)).to.equal(received);
      expect(failed.reduce((s, r) => s + r.stored, 0)).to.equal(0);
      expect(await rowCount()).to.equal(0);
      // Handed back (delayed or visible again), not deleted.
      const after = await queueCounts(t.sqs, urls.form);
      expect(after.visible + after.inFlight + after.delayed).to.equal(40);

      proxy.restore();
      seen.length = 0;
      let stored = 0;
      while (stored < 40) {
        const again = await Promise.all([receive(), receive(), receive(), receive()]);
        const results = await Promise.all(again.map((b) => handler.handle(b)));
        stored += results.reduce((s, r) => s + r.stored, 0);
        expect(results.every((r) => !r.databaseFailed && r.notDeleted === 0)).to.equal(true);
      }
      expect(await rowCount()).to.equal(40);
      expect(seen.length).to.be.greaterThan(0);
      expect(Math.min(...seen), 'messages deleted before their rows were committed').to.be.at.least(0);
      await queueEmptied(t.sqs, urls.form, 10_000, 'the queue emptied');
    } finally {
      await writer.close();
      sqs.destroy();
      await db.destroy();
      await proxy.close();
    }
  });

  it('on stop, flushes the rows waiting in the writer and drains: every received form stored once, nothing left in flight', async () => {
    // The longest window and room for every row: only the stop can start the statement early.
    const worker = await createWorkerService(
      t.with({ WORKER_INSERT_WINDOW_MS: '100', WORKER_INSERT_MAX_ROWS: '1000' }),
    );
    const received: string[] = [];
    worker.consumer.on('received', ({ messages }) => received.push(...messages.map((m) => m.messageId)));
    await worker.start();
    try {
      await fill(60, 'drain');
      await eventually(
        async () => (worker.writer.waitingRows > 0 || received.length > 0 ? true : undefined),
        20_000,
        'rows received',
      );
    } finally {
      await worker.stop();
    }
    const stored = await t.db('form_form').pluck<string[]>('sqs_message_id');
    expect(new Set(stored)).to.deep.equal(new Set(received));
    expect(stored).to.have.length(new Set(received).size);
    expect(worker.writer.waitingRows).to.equal(0);
    const { form } = await t.queueUrls();
    const c = await queueCounts(t.sqs, form);
    expect(c.inFlight, 'received messages left undeleted').to.equal(0);
    expect(c.visible + stored.length).to.equal(60);
  });
});
