/**
 * Optional Sentry reporting: with SENTRY_DSN an unexpected error reaches a
 * Sentry endpoint (a local HTTP server speaking the envelope protocol, through
 * the real SDK); without it nothing is sent and no Sentry module is loaded.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { once } from 'node:events';
import { createDatabase } from '../services/common/db.ts';
import type { ErrorReporter } from '../services/common/error-reporter.ts';
import { createLogger } from '../services/common/logger.ts';
import { createSqsClient } from '../services/common/sqs.ts';
import { createWebService, type WebService } from '../services/web/service.ts';
import { BatchHandler, type StoredBatch } from '../services/worker/batch.ts';
import { Consumer } from '../services/worker/consumer.ts';
import { WorkerQueue } from '../services/worker/queue.ts';
import { FormRepository } from '../services/worker/repository.ts';
import { jsonBody, post } from '../harness/http.ts';
import { queueCounts } from '../harness/sqs.ts';
import { useEmulator } from './support/emulator.ts';
import { createTestEnv, eventually, type TestEnv } from './support/stack.ts';
import { validForm } from '../harness/forms.ts';

const run = promisify(execFile);

/** A Sentry ingest endpoint that keeps the envelopes it is sent. */
async function fakeSentry(): Promise<{
  server: Server;
  port: number;
  envelopes: { path: string; items: unknown[] }[];
  raw: string[];
}> {
  const envelopes: { path: string; items: unknown[] }[] = [];
  const raw: string[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
      const text = body.toString('utf8');
      raw.push(text);
      envelopes.push({
        path: req.url ?? '',
        items: text
          .split('\n')
          .filter((l) => l.trim() !== '')
          .map((l) => JSON.parse(l) as unknown),
      });
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, envelopes, raw };
}

describe('error reporting (Sentry)', () => {
  const emulator = useEmulator();
  let t: TestEnv;
  let web: WebService | undefined;
  beforeEach(async () => {
    t = await createTestEnv(emulator.endpoint);
  });
  afterEach(async () => {
    await web?.stop();
    web = undefined;
    await t.cleanup();
  });

  it('sends an unexpected error to the DSN with the service, environment and request id, and no form values', async () => {
    const sentry = await fakeSentry();
    try {
      const config = t.with({ SENTRY_DSN: `http://publickey@127.0.0.1:${sentry.port}/42`, SENTRY_ENVIRONMENT: 'ci' });
      web = await createWebService(config, {
        sender: {
          send: () => Promise.reject(new TypeError('sender bug for the test')),
          close: () => Promise.resolve(),
        },
      });
      const base = `http://127.0.0.1:${await web.listen()}`;
      const reply = await post(base, '/form/', jsonBody(validForm({ contact_name: 'Private Person Name' })));
      expect(reply.status).to.equal(500);
      expect(JSON.stringify(reply.body)).to.not.include('sender bug');
      const requestId = (reply.body as { request_id: string }).request_id;
      const envelope = await eventually(
        async () => sentry.envelopes.find((e) => e.items.some((i) => (i as { type?: string }).type === 'event')),
        10_000,
        'an event envelope',
      );
      expect(envelope.path).to.match(/^\/api\/42\/envelope\/\?.*sentry_key=publickey/);
      const event = envelope.items[envelope.items.findIndex((i) => (i as { type?: string }).type === 'event') + 1] as {
        exception: { values: { type: string; value: string; stacktrace?: { frames: { filename?: string }[] } }[] };
        tags: Record<string, string>;
        environment: string;
        extra: Record<string, unknown>;
      };
      expect(event.exception.values.at(-1)).to.include({ type: 'TypeError', value: 'sender bug for the test' });
      // Parsed stack frames, so Sentry can group and show the code.
      expect(
        event.exception.values.at(-1)!.stacktrace?.frames.some((f) => f.filename?.endsWith('error-reporting.test.ts')),
      ).to.equal(true);
      expect(event.tags.service).to.equal('web');
      expect(event.environment).to.equal('ci');
      expect(event.extra.requestId).to.equal(requestId);
      for (const text of sentry.raw) expect(text).to.not.include('Private Person Name');
    } finally {
      await web?.stop();
      web = undefined;
      await new Promise((resolve) => sentry.server.close(resolve));
    }
  });

  it('the worker reports a batch it failed to handle because of a bug, with the message ids, and leaves the messages to come back', async () => {
    const captured: { error: unknown; context: Record<string, unknown> | undefined }[] = [];
    const reporter: ErrorReporter = {
      capture: (error, context) => captured.push({ error, context }),
      close: () => Promise.resolve(),
    };
    const logger = createLogger('silent', 'test');
    const sqs = createSqsClient(t.config.sqs);
    const db = createDatabase(t.config.database);
    const urls = await t.queueUrls();
    const queue = new WorkerQueue(sqs, urls);
    class BuggyHandler extends BatchHandler {
      override store(): Promise<StoredBatch> {
        return Promise.reject(new TypeError('a bug in batch handling'));
      }
    }
    const consumer = new Consumer({
      queue,
      handler: new BuggyHandler({
        queue,
        repository: new FormRepository(db, 5000),
        logger,
        backoffBaseSeconds: 1,
        backoffMaxSeconds: 5,
      }),
      logger,
      reporter,
      concurrency: 1,
      checkDatabase: () => Promise.resolve(),
      waitTimeSeconds: 1,
      maxNumberOfMessages: 10,
      visibilityTimeoutSeconds: 30,
    });
    try {
      const sent = await t.sqs.send(
        new SendMessageCommand({ QueueUrl: urls.form, MessageBody: JSON.stringify({ data: validForm() }) }),
      );
      const backoff = once(consumer, 'backoff');
      consumer.start();
      const [event] = (await backoff) as [{ kind: string }];
      expect(event.kind).to.equal('error');
      expect(captured).to.have.length(1);
      expect(captured[0]!.error).to.be.instanceOf(TypeError);
      expect(captured[0]!.context).to.deep.equal({ messageIds: [sent.MessageId] });
      expect(await queueCounts(t.sqs, urls.form)).to.include({ inFlight: 1 });
    } finally {
      await consumer.stop();
      sqs.destroy();
      await db.destroy();
    }
  });

  it('loads no Sentry code without SENTRY_DSN, and does with it', async function () {
    this.timeout(60_000);
    const probe = async (env: Record<string, string>): Promise<{ status: number; resolved: string[] }> => {
      const { stdout } = await run(process.execPath, ['test/support/sentry-probe.ts'], {
        env: { PATH: process.env.PATH ?? '', ...t.env, DISABLE_SIGNATURE_CHECK: 'true', LOG_LEVEL: 'silent', ...env },
      });
      return JSON.parse(stdout.trim().split('\n').at(-1)!) as { status: number; resolved: string[] };
    };
    const without = await probe({});
    expect(without).to.deep.equal({ status: 500, resolved: [] });
    const sentry = await fakeSentry();
    try {
      const withDsn = await probe({ SENTRY_DSN: `http://publickey@127.0.0.1:${sentry.port}/7` });
      expect(withDsn.status).to.equal(500);
      expect(withDsn.resolved).to.include('@sentry/core');
      await eventually(async () => (sentry.envelopes.length > 0 ? true : undefined), 10_000, 'the child’s event');
    } finally {
      await new Promise((resolve) => sentry.server.close(resolve));
    }
  });
});
