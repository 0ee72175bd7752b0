/**
 * Metrics and logs of the real services (fauxqs through the AWS SDK, PostgreSQL):
 * what operators see on /metrics, and one form traced by its request id from
 * the POST to the worker's line for its row.
 */
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { expect } from 'chai';
import { createWebService, type WebService } from '../services/web/service.ts';
import { createWorkerService, type WorkerService } from '../services/worker/service.ts';
import { jsonBody, post, sign } from '../harness/http.ts';
import { captureLogger, scrape, valueOf, type Line, type Sample } from './support/observe.ts';
import { useEmulator } from './support/emulator.ts';
import { createTestEnv, eventually, type TestEnv } from './support/stack.ts';
import { validForm } from '../harness/forms.ts';
import { startTcpProxy, type TcpProxy } from '../harness/tcp-proxy.ts';
import { freePort } from '../harness/ports.ts';
import { startProcess } from '../harness/process.ts';
import { rawRequest } from './support/raw-http.ts';
import { INVALID_REASONS } from '../services/common/message.ts';
import { OUTCOMES } from '../services/worker/metrics.ts';

/** Values no log line may contain at info level (they are personal data). */
const PERSONAL = {
  contact_name: 'Zelda Quux-Observability',
  email_address1: 'zelda.quux@personal.example',
  email_address2: 'ZELDA.QUUX@personal.example',
  phone_number: '+44 7700 900123',
};

describe('observability: metrics and logs of the real services', () => {
  const emulator = useEmulator();
  let t: TestEnv;
  let sqsProxy: TcpProxy;
  let web: WebService | undefined;
  let worker: WorkerService | undefined;
  beforeEach(async () => {
    const upstream = new URL(emulator.endpoint);
    sqsProxy = await startTcpProxy(upstream.hostname, Number(upstream.port));
    t = await createTestEnv(emulator.endpoint, { QUEUE_METRICS_INTERVAL_SECONDS: '1' });
  });
  afterEach(async () => {
    await web?.stop();
    await worker?.stop();
    web = undefined;
    worker = undefined;
    await sqsProxy.close();
    await t.cleanup();
  });

  /** Config whose SQS traffic goes through the cuttable proxy. */
  const throughProxy = (more: Record<string, string> = {}) =>
    t.with({
      SQS_ENDPOINT_URL: `http://127.0.0.1:${sqsProxy.port}`,
      SQS_MAX_ATTEMPTS: '1',
      SQS_REQUEST_TIMEOUT_MS: '500',
      ...more,
    });

  describe('web /metrics', () => {
    it('counts requests by route, method and status, accepted forms and refusals by reason', async () => {
      web = await createWebService(t.config);
      const base = `http://127.0.0.1:${await web.listen()}`;
      expect((await post(base, '/form/', jsonBody(validForm()))).status).to.equal(202);
      expect(
        (await post(base, '/form/', jsonBody(validForm({ email_address1: 'not an address', agree_terms: 'yes' }))))
          .status,
      ).to.equal(400);
      expect((await post(base, '/form/', '{"data": {', { type: 'application/json' })).status).to.equal(400);
      expect((await post(base, '/form/', jsonBody(validForm()), { signature: 'f'.repeat(64) })).status).to.equal(401);
      expect((await post(base, '/form/', 'data=1', { type: 'text/plain' })).status).to.equal(415);
      expect((await post(base, '/form/', jsonBody(validForm({ notes: 'x'.repeat(70_000) })))).status).to.equal(413);
      expect((await fetch(`${base}/no/such/path/42`)).status).to.equal(404);

      const m = await scrape(`${base}/metrics`);
      expect(valueOf(m, 'form_data_forms_accepted_total')).to.equal(1);
      expect(valueOf(m, 'form_data_http_requests_total', { route: '/form/', method: 'POST', status: '202' })).to.equal(
        1,
      );
      expect(valueOf(m, 'form_data_http_requests_total', { route: '/form/', method: 'POST', status: '400' })).to.equal(
        2,
      );
      expect(valueOf(m, 'form_data_http_requests_total', { route: 'other', method: 'GET', status: '404' })).to.equal(1);
      for (const [reason, count] of Object.entries({
        invalid: 1,
        malformed: 1,
        signature: 1,
        unsupported_media_type: 1,
        too_large: 1,
      })) {
        expect(valueOf(m, 'form_data_forms_refused_total', { reason }), reason).to.equal(count);
      }
      expect(valueOf(m, 'form_data_forms_enqueue_failed_total')).to.equal(0);
      expect(valueOf(m, 'form_data_http_request_duration_seconds_count', { route: '/form/', method: 'POST' })).to.equal(
        7 - 1,
      );
      expect(valueOf(m, 'form_data_sqs_send_duration_seconds_count', { result: 'ok' })).to.equal(1);
      expect(valueOf(m, 'form_data_sqs_send_batch_size_count')).to.equal(1);
      expect(valueOf(m, 'process_resident_memory_bytes')).to.be.greaterThan(0);
      expectBoundedLabels(m);
    });

    it('counts and logs the requests the HTTP server refuses before the app sees them', async () => {
      const webLog = captureLogger('web');
      web = await createWebService(t.config, { logger: webLog.logger });
      const port = await web.listen();
      const answer = await rawRequest(
        port,
        'POST /form/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: abc\r\n\r\n{}',
      );
      expect(answer.status).to.equal(400);
      const m = await scrape(`http://127.0.0.1:${port}/metrics`);
      expect(valueOf(m, 'form_data_http_requests_total', { route: 'other', method: 'other', status: '400' })).to.equal(
        1,
      );
      expect(webLog.lines.find((l) => l.msg === 'request refused by the HTTP server')).to.deep.include({
        status: 400,
        code: 'HPE_INVALID_CONTENT_LENGTH',
        level: 30,
      });
    });

    it('counts a form SQS did not take as an enqueue failure (503), not a refusal', async () => {
      web = await createWebService(throughProxy());
      const base = `http://127.0.0.1:${await web.listen()}`;
      sqsProxy.cut();
      expect((await post(base, '/form/', jsonBody(validForm()))).status).to.equal(503);
      const m = await scrape(`${base}/metrics`);
      expect(valueOf(m, 'form_data_forms_enqueue_failed_total')).to.equal(1);
      expect(valueOf(m, 'form_data_forms_accepted_total')).to.equal(0);
      expect(m.filter((s) => s.name === 'form_data_forms_refused_total')).to.deep.equal([]);
      expect(valueOf(m, 'form_data_sqs_send_duration_seconds_count', { result: 'failed' })).to.equal(1);
    });
  });

  describe('worker /metrics', () => {
    it('counts receipts, outcomes, invalid messages by reason, message age and reads both queues’ depth', async () => {
      const { logger } = captureLogger('worker', 'silent');
      worker = await createWorkerService(t.config, { logger });
      const metricsUrl = `http://127.0.0.1:${await worker.start()}/metrics`;
      const urls = await t.queueUrls();
      web = await createWebService(t.config);
      const base = `http://127.0.0.1:${await web.listen()}`;
      const accepted = await post(base, '/form/', jsonBody(validForm()));
      expect(accepted.status).to.equal(202);
      await t.sqs.send(new SendMessageCommand({ QueueUrl: urls.form, MessageBody: 'not json at all' }));
      await t.sqs.send(
        new SendMessageCommand({
          QueueUrl: urls.form,
          MessageBody: JSON.stringify({ data: { agree_terms: 'maybe' }, request_id: 'r1' }),
        }),
      );

      const m = await eventually(
        async () => {
          const samples = await scrape(metricsUrl);
          return valueOf(samples, 'form_data_sqs_messages_visible', { queue: t.invalidQueue }) === 2 &&
            valueOf(samples, 'form_data_worker_messages_total', { outcome: 'stored' }) === 1
            ? samples
            : undefined;
        },
        20_000,
        'the form stored and the invalid queue depth read as 2',
      );
      expect(valueOf(m, 'form_data_worker_messages_received_total')).to.equal(3);
      expect(valueOf(m, 'form_data_worker_messages_total', { outcome: 'invalid' })).to.equal(2);
      expect(valueOf(m, 'form_data_worker_invalid_messages_total', { reason: 'not_json' })).to.equal(1);
      expect(valueOf(m, 'form_data_worker_invalid_messages_total', { reason: 'validation' })).to.equal(1);
      expect(valueOf(m, 'form_data_worker_message_age_seconds_count')).to.equal(3);
      expect(valueOf(m, 'form_data_sqs_messages_visible', { queue: t.formQueue })).to.be.a('number');
      expect(valueOf(m, 'form_data_sqs_messages_in_flight', { queue: t.invalidQueue })).to.equal(0);
      expect(valueOf(m, 'form_data_worker_sqs_requests_total', { action: 'GetQueueAttributes' })).to.be.greaterThan(0);
      expect(valueOf(m, 'form_data_worker_poll_loops')).to.equal(t.config.worker.concurrency);
      expect(valueOf(m, 'form_data_worker_poll_loops_busy')).to.be.within(1, t.config.worker.concurrency);
      expect(valueOf(m, 'form_data_worker_last_poll_age_seconds')).to.be.within(0, t.config.sqs.waitTimeSeconds + 5);
      expect(valueOf(m, 'form_data_worker_last_poll_timestamp_seconds')).to.be.closeTo(
        Date.now() / 1000,
        t.config.sqs.waitTimeSeconds + 5,
      );
      expect(valueOf(m, 'form_data_worker_dependency_up', { dependency: 'database' })).to.equal(1);
      expect(valueOf(m, 'form_data_worker_dependency_up', { dependency: 'sqs' })).to.equal(1);
      const messageId = (accepted.body as { id: string }).id;
      expect(
        m.some((s) => Object.values(s.labels).includes(messageId)),
        'no message id as a label value',
      ).to.equal(false);
      expectBoundedLabels(m);
      // Anything else on the worker's port is a problem, written as the web writes its own.
      const unknown = await fetch(metricsUrl.replace('/metrics', '/nowhere'));
      expect(unknown.status).to.equal(404);
      expect(unknown.headers.get('content-type')).to.equal('application/problem+json');
      expect(await unknown.json()).to.deep.equal({
        type: 'about:blank',
        title: 'Not Found',
        status: 404,
        detail: 'no resource at /nowhere',
      });
    });

    it('exports every outcome and invalid reason at 0 before the first message (increase() sees the first)', async () => {
      worker = await createWorkerService(t.config, { logger: captureLogger('worker', 'silent').logger });
      const samples = await scrape(`http://127.0.0.1:${await worker.start()}/metrics`);
      for (const outcome of OUTCOMES) {
        expect(valueOf(samples, 'form_data_worker_messages_total', { outcome }), outcome).to.equal(0);
      }
      for (const reason of INVALID_REASONS) {
        expect(valueOf(samples, 'form_data_worker_invalid_messages_total', { reason }), reason).to.equal(0);
      }
    });

    it('counts SQS errors by operation, reports SQS down and drops stale queue depths while SQS is cut', async () => {
      const { logger } = captureLogger('worker', 'silent');
      worker = await createWorkerService(throughProxy({ QUEUE_METRICS_INTERVAL_SECONDS: '1' }), { logger });
      const metricsUrl = `http://127.0.0.1:${await worker.start()}/metrics`;
      await eventually(
        async () => valueOf(await scrape(metricsUrl), 'form_data_sqs_messages_visible', { queue: t.formQueue }),
        10_000,
        'a first depth read',
      );
      sqsProxy.cut();
      const m = await eventually(
        async () => {
          const samples = await scrape(metricsUrl);
          const receiveErrors =
            valueOf(samples, 'form_data_worker_sqs_errors_total', { operation: 'ReceiveMessage' }) ?? 0;
          const depthErrors =
            valueOf(samples, 'form_data_worker_sqs_errors_total', { operation: 'GetQueueAttributes' }) ?? 0;
          const stale = samples.some((s) => s.name === 'form_data_sqs_messages_visible');
          return receiveErrors > 0 && depthErrors > 0 && !stale ? samples : undefined;
        },
        20_000,
        'receive and depth errors counted, depth gauges removed',
      );
      expect(valueOf(m, 'form_data_worker_dependency_up', { dependency: 'sqs' })).to.equal(0);
      expect(valueOf(m, 'form_data_worker_backoffs_total', { reason: 'sqs' })).to.be.greaterThan(0);
      sqsProxy.restore();
    });

    it('counts database errors and reports the database down while it is cut', async () => {
      const pg = new URL(t.database.url);
      const dbProxy = await startTcpProxy(pg.hostname, Number(pg.port || 5432));
      try {
        const url = new URL(t.database.url);
        url.host = `127.0.0.1:${dbProxy.port}`;
        const { logger } = captureLogger('worker', 'silent');
        worker = await createWorkerService(t.with({ DATABASE_URL: url.toString(), DATABASE_TIMEOUT_MS: '500' }), {
          logger,
        });
        const port = await worker.start();
        dbProxy.cut();
        const urls = await t.queueUrls();
        await t.sqs.send(
          new SendMessageCommand({
            QueueUrl: urls.form,
            MessageBody: JSON.stringify({ data: validForm(), request_id: 'db-down' }),
          }),
        );
        const m = await eventually(
          async () => {
            const samples = await scrape(`http://127.0.0.1:${port}/metrics`);
            return (valueOf(samples, 'form_data_worker_database_errors_total') ?? 0) > 0 &&
              valueOf(samples, 'form_data_worker_dependency_up', { dependency: 'database' }) === 0
              ? samples
              : undefined;
          },
          20_000,
          'database errors counted',
        );
        expect(valueOf(m, 'form_data_worker_messages_total', { outcome: 'retried' })).to.equal(1);
        expect(valueOf(m, 'form_data_worker_backoffs_total', { reason: 'database' })).to.be.greaterThan(0);
        dbProxy.restore();
        await worker.stop();
        worker = undefined;
      } finally {
        await dbProxy.close();
      }
    });
  });

  describe('logs', () => {
    it('traces one form by its request id from the POST to the worker line for its row, with no form values logged', async () => {
      const webLog = captureLogger('web');
      const workerLog = captureLogger('worker');
      web = await createWebService(t.config, { logger: webLog.logger });
      worker = await createWorkerService(t.config, { logger: workerLog.logger });
      await worker.start();
      const base = `http://127.0.0.1:${await web.listen()}`;
      const body = jsonBody(validForm(PERSONAL));
      const response = await fetch(`${base}/form/?utm_source=${encodeURIComponent(PERSONAL.email_address1)}`, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          'X-Signature': sign(`/form/?utm_source=${encodeURIComponent(PERSONAL.email_address1)}`, body),
          'X-Request-Id': 'trace-me-42',
        },
        body,
      });
      expect(response.status).to.equal(202);
      expect(response.headers.get('x-request-id')).to.equal('trace-me-42');
      const { id: messageId } = (await response.json()) as { id: string };

      const stored = await eventually(
        async () => workerLog.lines.find((l) => l.msg === 'form stored' && l.requestId === 'trace-me-42'),
        20_000,
        'the worker line for the row',
      );
      expect(stored).to.include({ messageId, level: 30, service: 'worker' });
      const requests = webLog.lines.filter((l) => l.msg === 'request completed');
      expect(requests).to.have.length(1);
      expect(requests[0]).to.deep.include({
        requestId: 'trace-me-42',
        route: '/form/',
        messageId,
        level: 30,
        service: 'web',
        req: { method: 'POST', path: '/form/' },
        res: { status: 202 },
      });
      expect(requests[0]!.durationMs).to.be.a('number');
      expect(await t.db('form_form').where({ sqs_message_id: messageId }).first()).to.not.equal(undefined);

      // An invalid form and an invalid queue message: their lines carry reasons, never values.
      const invalid = await post(base, '/form/', jsonBody(validForm({ ...PERSONAL, agree_terms: 'perhaps' })));
      expect(invalid.status).to.equal(400);
      const urls = await t.queueUrls();
      await t.sqs.send(
        new SendMessageCommand({
          QueueUrl: urls.form,
          MessageBody: JSON.stringify({ data: { ...PERSONAL, email_address1: 42 }, request_id: 'bad-one' }),
        }),
      );
      const moved = await eventually(
        async () => workerLog.lines.find((l) => l.msg === 'invalid message moved to the invalid queue'),
        20_000,
        'the invalid message line',
      );
      expect(moved.requestId).to.equal('bad-one');
      for (const raw of [...webLog.raw, ...workerLog.raw]) {
        for (const value of Object.values(PERSONAL)) expect(raw, 'a form value in a log line').to.not.include(value);
        expect(raw).to.not.include('x-signature');
      }
    });

    it('LOG_FORMAT=pretty writes readable lines (pino-pretty) from the real web process, to the last one on SIGTERM', async () => {
      const port = await freePort();
      const child = startProcess(process.execPath, ['services/web/main.ts'], {
        ...t.env,
        PORT: String(port),
        LOG_LEVEL: 'info',
        LOG_FORMAT: 'pretty',
      });
      try {
        await eventually(
          async () => ((await fetch(`http://127.0.0.1:${port}/healthz/ready`)).status === 200 ? true : undefined),
          20_000,
          'the web ready',
        );
        const response = await post(`http://127.0.0.1:${port}`, '/form/', jsonBody(validForm()));
        expect(response.status).to.equal(202);
        await eventually(
          async () => (child.text.some((l) => l.includes('request completed')) ? true : undefined),
          10_000,
          'a pretty request line',
        );
        child.kill('SIGTERM');
        expect((await child.exited).code).to.equal(0);
        const lines = child.text.join('\n');
        expect(lines).to.include('web stopped');
        expect(child.logs, 'no JSON lines').to.deep.equal([]);
        expect(lines).to.match(/INFO.*request completed/);
        expect(lines).to.include(response.headers.get('x-request-id'));
      } finally {
        await child.ensureStopped();
      }
    });

    it('makes a request id when none (or an unusable one) is given, and logs 5xx at warn', async () => {
      const webLog = captureLogger('web');
      web = await createWebService(throughProxy(), { logger: webLog.logger });
      const base = `http://127.0.0.1:${await web.listen()}`;
      const given = await fetch(`${base}/metrics`, { headers: { 'X-Request-Id': 'has spaces and ; semicolons' } });
      const generated = given.headers.get('x-request-id');
      expect(generated).to.match(/^[0-9a-f-]{36}$/);
      sqsProxy.cut();
      const failed = await post(base, '/form/', jsonBody(validForm()));
      expect(failed.status).to.equal(503);
      const lines = await eventually(async () => {
        const completed = webLog.lines.filter((l) => l.msg === 'request completed' || l.msg === 'request failed');
        return completed.length === 2 ? completed : undefined;
      });
      expect(lines[0]).to.include({ requestId: generated, route: '/metrics', level: 30 });
      expect(lines[1]).to.include({ msg: 'request failed', route: '/form/', level: 40, status: 503 });
      expect(lines[1]!.err, 'the cause is logged where it happened, not repeated with a stack').to.equal(undefined);
      expect(
        webLog.lines.some(
          (l: Line) => l.level === 40 && typeof l.err === 'object' && l.requestId === lines[1]!.requestId,
        ),
        'the SQS failure logged with the request id',
      ).to.equal(true);
    });
  });
});

/** Label values are from fixed sets: nothing long, nothing that looks like an id. */
function expectBoundedLabels(samples: readonly Sample[]): void {
  for (const sample of samples) {
    for (const [name, value] of Object.entries(sample.labels)) {
      expect(value.length, `${sample.name}{${name}}`).to.be.below(64);
      expect(value, `${sample.name}{${name}}`).to.not.match(/^[0-9a-f]{8}-[0-9a-f]{4}-/);
    }
  }
}
