/**
 * The worker's coalescing FormWriter: its flushing rules with a recording
 * inserter (unit), then over the real repository, PostgreSQL and SQS: an
 * outage hands every message back and deletes none, a message is deleted only
 * after its row is committed, and stopping flushes the waiting rows and drains.
 */
import { expect } from 'chai';
import { SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { createDatabase } from '../services/common/db.ts';
import { DatabaseError } from '../services/common/errors.ts';
import type { FormData } from '../services/common/form-schema.ts';
import { createLogger } from '../services/common/logger.ts';
import { createSqsClient } from '../services/common/sqs.ts';
import { BatchHandler } from '../services/worker/batch.ts';
import { WorkerQueue } from '../services/worker/queue.ts';
import { FormRepository, type FormInserter, type FormRow } from '../services/worker/repository.ts';
import { createWorkerService } from '../services/worker/service.ts';
import { FormWriter } from '../services/worker/writer.ts';
import { queueCounts } from '../harness/sqs.ts';
import { useEmulator } from './support/emulator.ts';
import { createTestEnv, eventually, type TestEnv } from './support/stack.ts';
import { validForm } from '../harness/forms.ts';
import { startTcpProxy } from '../harness/tcp-proxy.ts';

const row = (id: string): FormRow => ({ messageId: id, data: validForm() as FormData });

/** An inserter that records each statement and settles it when the test says. */
function recording(): FormInserter & { calls: { ids: string[]; settle: (error?: Error) => void }[] } {
  const calls: { ids: string[]; settle: (error?: Error) => void }[] = [];
  return {
    calls,
    insertMany: (rows) =>
      new Promise((resolve, reject) => {
        const ids = rows.map((r) => r.messageId);
        calls.push({
          ids,
          settle: (error) => (error ? reject(error) : resolve(new Set(ids.filter((id) => !id.startsWith('dup'))))),
        });
      }),
  };
}

describe('FormWriter (unit, recording inserter)', () => {
  it('puts the rows of concurrent callers in one statement and answers each caller for its own rows', async () => {
    const inserter = recording();
    const writer = new FormWriter({ inserter, maxRows: 100, windowMs: 5, parallel: 2 });
    const a = writer.insertMany([row('a1'), row('a2')]);
    const b = writer.insertMany([row('b1'), row('dup-b2')]);
    await eventually(async () => (inserter.calls.length === 1 ? true : undefined), 2000, 'one statement');
    expect(inserter.calls[0]!.ids).to.deep.equal(['a1', 'a2', 'b1', 'dup-b2']);
    inserter.calls[0]!.settle();
    expect([...(await a)]).to.deep.equal(['a1', 'a2']);
    expect([...(await b)]).to.deep.equal(['b1']);
  });

  it('starts a statement at once when maxRows rows wait, never more than maxRows (whole callers), at most `parallel` at a time', async () => {
    const inserter = recording();
    const writer = new FormWriter({ inserter, maxRows: 4, windowMs: 60_000, parallel: 1 });
    const calls = [0, 1, 2, 3].map((i) => writer.insertMany([row(`${i}a`), row(`${i}b`)]));
    // Window of a minute: only a full statement can have started.
    await eventually(async () => (inserter.calls.length === 1 ? true : undefined), 2000, 'a full statement');
    expect(inserter.calls[0]!.ids).to.deep.equal(['0a', '0b', '1a', '1b']);
    expect(writer.waitingRows).to.equal(4);
    inserter.calls[0]!.settle();
    await Promise.all(calls.slice(0, 2));
    // The next full statement starts when the one in flight settles.
    await eventually(async () => (inserter.calls.length === 2 ? true : undefined), 2000, 'the second statement');
    expect(inserter.calls[1]!.ids).to.deep.equal(['2a', '2b', '3a', '3b']);
    inserter.calls[1]!.settle();
    await Promise.all(calls);
  });

  it('a failed statement rejects every caller with a DatabaseError naming only its own message ids', async () => {
    const inserter = recording();
    const writer = new FormWriter({ inserter, maxRows: 100, windowMs: 1, parallel: 1 });
    const a = writer.insertMany([row('a1')]).catch((e: unknown) => e);
    const b = writer.insertMany([row('b1'), row('b2')]).catch((e: unknown) => e);
    await eventually(async () => (inserter.calls.length === 1 ? true : undefined), 2000, 'one statement');
    inserter.calls[0]!.settle(
      new DatabaseError('insert into form_form', new Error('connection refused'), ['a1', 'b1', 'b2']),
    );
    const [ea, eb] = (await Promise.all([a, b])) as DatabaseError[];
    expect(ea).to.be.instanceOf(DatabaseError);
    expect(ea!.messageIds).to.deep.equal(['a1']);
    expect(eb!.messageIds).to.deep.equal(['b1', 'b2']);
    expect(String(eb!.message)).to.contain('connection refused');
  });

  it('close starts the waiting rows without their window and resolves when they are committed', async () => {
    const inserter = recording();
    const writer = new FormWriter({ inserter, maxRows: 100, windowMs: 60_000, parallel: 1 });
    const a = writer.insertMany([row('a1')]);
    expect(inserter.calls).to.have.length(0);
    const closed = writer.close();
    await eventually(async () => (inserter.calls.length === 1 ? true : undefined), 2000, 'the statement close started');
    inserter.calls[0]!.settle();
    await closed;
    expect([...(await a)]).to.deep.equal(['a1']);
  });

  it('counts a message id inserted now for its first caller only (the same message handed twice)', async () => {
    const inserter = recording();
    const writer = new FormWriter({ inserter, maxRows: 100, windowMs: 1, parallel: 1 });
    const a = writer.insertMany([row('m1')]);
    const b = writer.insertMany([row('m1')]);
    await eventually(async () => (inserter.calls.length === 1 ? true : undefined), 2000, 'one statement');
    inserter.calls[0]!.settle();
    expect([...(await a)]).to.deep.equal(['m1']);
    expect([...(await b)]).to.deep.equal([]);
  });
});

const envelope = (data: unknown): string =>
  JSON.stringify({ data, received_at: new Date().toISOString(), request_id: 'writer' });

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
        MessageBody: envelope(validForm({ company_name: `${tag} ${i + j}` })),
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
      await eventually(
        async () => {
          const c = await queueCounts(t.sqs, urls.form);
          return c.visible + c.inFlight + c.delayed === 0 ? true : undefined;
        },
        10_000,
        'the queue emptied',
      );
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
