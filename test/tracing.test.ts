/**
 * OpenTelemetry across the queue, against a real OTLP/HTTP receiver started
 * here (http/json and http/protobuf), the SQS emulator and PostgreSQL: one
 * trace from the caller's request to the stored row, log lines that carry
 * it, context that survives redelivery, hand-back and the invalid queue, no
 * personal data in any attribute, and nothing loaded or sent when off.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { ChangeMessageVisibilityCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { once } from 'node:events';
import * as semconv from '@opentelemetry/semantic-conventions';
import * as incubating from '@opentelemetry/semantic-conventions/incubating';
import { loadConfig } from '../services/common/config.ts';
import { ConfigError } from '../services/common/errors.ts';
import { createSqsClient } from '../services/common/sqs.ts';
import { ATTR, SQS_MAX_MESSAGE_ATTRIBUTES, withTraceAttributes } from '../services/common/tracing.ts';
import { TRACING_SETTINGS } from '../services/common/tracing-config.ts';
import { SQS_MAX_MESSAGE_BYTES } from '../services/common/sqs.ts';
import { createWebService, type WebService } from '../services/web/service.ts';
import { createWorkerService, type WorkerService } from '../services/worker/service.ts';
import { BatchingSender } from '../services/web/sender.ts';
import { createTracing } from '../services/common/tracing.ts';
import { jsonBody, post, sign } from '../harness/http.ts';
import { KIND, STATUS, startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from './support/otlp.ts';
import { startProcess, type ProcessHandle } from '../harness/process.ts';
import { receiveAll } from '../harness/sqs.ts';
import { useEmulator } from './support/emulator.ts';
import { settingRow, settingsTable } from './support/markdown.ts';
import { createTestEnv, eventually, type TestEnv } from './support/stack.ts';
import { validForm } from '../harness/forms.ts';
import { startTcpProxy } from '../harness/tcp-proxy.ts';

const run = promisify(execFile);

const hex = (bytes: number): string => randomBytes(bytes).toString('hex');

/** Every string value of a form, to look for in span attributes. */
function formValues(form: Record<string, unknown>): string[] {
  return Object.values(form).filter((v): v is string => typeof v === 'string' && v.length > 3 && v !== 'True');
}

function onlyOne(spans: ReceivedSpan[], what: string, predicate: (s: ReceivedSpan) => boolean): ReceivedSpan {
  const found = spans.filter(predicate);
  expect(found, `${what}: ${JSON.stringify(spans.map((s) => s.name))}`).to.have.length(1);
  return found[0]!;
}

function expectNoPersonalData(spans: readonly ReceivedSpan[], secrets: readonly string[]): void {
  expect(spans.length).to.be.greaterThan(0);
  for (const span of spans) {
    const values = [
      span.name,
      span.status.message,
      ...Object.values(span.attributes).map(String),
      ...Object.values(span.resource).map(String),
    ];
    for (const value of values) {
      for (const secret of secrets)
        expect(value.toLowerCase(), `${span.name} carries ${secret}`).to.not.include(secret.toLowerCase());
      expect(value, `${span.name}: an e-mail address`).to.not.match(/[^\s@]+@[^\s@]+\.[a-z]{2,}/i);
    }
  }
}

describe('tracing (OpenTelemetry)', () => {
  const emulator = useEmulator();
  let t: TestEnv;
  let receiver: OtlpReceiver;
  beforeEach(async () => {
    t = await createTestEnv(emulator.endpoint);
    receiver = await startOtlpReceiver();
  });
  afterEach(async () => {
    await receiver.close();
    await t.cleanup();
  });

  for (const protocol of ['http/protobuf', 'http/json'] as const) {
    it(`one trace from a UI-style request under a known traceparent to the stored row (${protocol}), in spans and log lines`, async function () {
      this.timeout(90_000);
      const traceId = hex(16);
      const callerSpan = hex(8);
      const env = {
        ...t.env,
        LOG_LEVEL: 'info',
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
        OTEL_EXPORTER_OTLP_HEADERS: 'x-api-key=collector%20key',
        OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=ci',
        OTEL_BSP_SCHEDULE_DELAY: '200',
      };
      const processes: ProcessHandle[] = [];
      try {
        const web = startProcess(process.execPath, ['services/web/main.ts'], env);
        const worker = startProcess(process.execPath, ['services/worker/main.ts'], env);
        processes.push(web, worker);
        const listening = await web.waitForLog((l) => l.msg === 'web listening');
        await worker.waitForLog((l) => l.msg === 'worker polling');
        const form = validForm({
          contact_name: 'Grace Hopper Private',
          email_address1: 'grace.private@example.org',
          email_address2: 'grace.private@example.org',
        });
        const body = `data=${encodeURIComponent(JSON.stringify(form))}`;
        const signature = sign('/form/', body);
        const res = await fetch(`http://127.0.0.1:${String(listening.port)}/form/`, {
          method: 'POST',
          headers: {
            'content-type': 'application/x-www-form-urlencoded',
            'x-signature': signature,
            'x-request-id': 'ui-req-0001',
            traceparent: `00-${traceId}-${callerSpan}-01`,
            tracestate: 'ui=1',
          },
          body,
        });
        expect(res.status).to.equal(202);
        const { id: messageId } = (await res.json()) as { id: string };
        await eventually(async () => t.db('form_form').where({ sqs_message_id: messageId }).first());
        const stored = await worker.waitForLog((l) => l.msg === 'form stored' && l.messageId === messageId);
        const requestLine = await web.waitForLog((l) => l.msg === 'request completed' && l.requestId === 'ui-req-0001');
        web.kill('SIGTERM');
        worker.kill('SIGTERM');
        expect((await web.exited).code).to.equal(0);
        expect((await worker.exited).code).to.equal(0);

        const spans = receiver.spans;
        expect(new Set(spans.map((s) => s.protocol))).to.deep.equal(new Set([protocol]));
        for (const r of receiver.requests) expect(r.headers['x-api-key']).to.equal('collector key');

        const server = onlyOne(spans, 'server span', (s) => s.kind === KIND.server && s.traceId === traceId);
        expect(server.parentSpanId).to.equal(callerSpan);
        expect(server.name).to.equal('POST /form/');
        expect(server.attributes).to.include({
          'http.request.method': 'POST',
          'http.route': '/form/',
          'http.response.status_code': 202,
          'form_data.request_id': 'ui-req-0001',
        });
        expect(server.resource).to.include({ 'service.name': 'form-data-web', 'deployment.environment.name': 'ci' });

        const producer = onlyOne(spans, 'producer span', (s) => s.kind === KIND.producer && s.traceId === traceId);
        expect(producer.parentSpanId).to.equal(server.spanId);
        expect(producer.attributes).to.include({
          'messaging.system': 'aws_sqs',
          'messaging.operation.type': 'send',
          'messaging.operation.name': 'SendMessageBatch',
          'messaging.destination.name': t.formQueue,
          'messaging.message.id': messageId,
          'messaging.batch.message_count': 1,
        });

        const processSpan = onlyOne(
          spans,
          'process span',
          (s) => s.kind === KIND.consumer && s.attributes['messaging.operation.type'] === 'process',
        );
        expect(processSpan.traceId).to.equal(traceId);
        expect(processSpan.parentSpanId).to.equal(producer.spanId);
        expect(processSpan.links).to.deep.include({ traceId, spanId: producer.spanId });
        expect(processSpan.attributes).to.include({
          'messaging.message.id': messageId,
          'form_data.outcome': 'stored',
          'form_data.request_id': 'ui-req-0001',
          'form_data.receive_count': 1,
        });
        expect(processSpan.resource).to.include({ 'service.name': 'form-data-worker' });

        const batch = onlyOne(
          spans,
          'batch span',
          (s) => s.kind === KIND.consumer && s.attributes['messaging.operation.type'] === 'receive',
        );
        expect(batch.parentSpanId).to.equal('');
        expect(batch.links).to.deep.include({ traceId, spanId: producer.spanId });
        expect(batch.attributes).to.include({
          'messaging.batch.message_count': 1,
          'messaging.destination.name': t.formQueue,
        });

        const insert = onlyOne(spans, 'INSERT span', (s) => s.name === 'INSERT form_form');
        expect(insert.kind).to.equal(KIND.client);
        expect(insert.traceId).to.equal(batch.traceId);
        expect(insert.parentSpanId).to.equal(batch.spanId);
        expect(insert.attributes).to.include({
          'db.system.name': 'postgresql',
          'db.operation.name': 'INSERT',
          'db.collection.name': 'form_form',
        });
        expect(
          Object.keys(insert.attributes).filter(
            (k) => k.startsWith('db.query.text') || k.startsWith('db.statement') || k.startsWith('db.query.parameter'),
          ),
        ).to.deep.equal([]);
        const deleteSpan = onlyOne(
          spans,
          'DeleteMessageBatch span',
          (s) => s.name === `DeleteMessageBatch ${t.formQueue}`,
        );
        expect(deleteSpan.parentSpanId).to.equal(batch.spanId);
        expect(deleteSpan.attributes).to.include({
          'messaging.operation.type': 'settle',
          'messaging.batch.message_count': 1,
        });

        // Logs: the request id, the trace and the row meet.
        expect(requestLine).to.include({ trace_id: traceId, span_id: server.spanId });
        expect(stored).to.include({ trace_id: traceId, span_id: processSpan.spanId, requestId: 'ui-req-0001' });

        expectNoPersonalData(spans, [...formValues(form), signature, 'collector key']);
      } finally {
        for (const p of processes) await p.ensureStopped();
      }
    });
  }

  describe('in one process', () => {
    let web: WebService | undefined;
    let worker: WorkerService | undefined;
    afterEach(async () => {
      await web?.stop();
      await worker?.stop();
      web = undefined;
      worker = undefined;
    });
    const traced = (more: Record<string, string> = {}) =>
      t.with({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, ...more });

    it('stores a form whose message has no trace attributes (the replaced service’s format), in a span under its batch', async () => {
      worker = await createWorkerService(traced());
      await worker.start();
      const urls = await t.queueUrls();
      const sent = await t.sqs.send(
        new SendMessageCommand({
          QueueUrl: urls.form,
          MessageBody: JSON.stringify({ data: JSON.stringify(validForm()) }),
        }),
      );
      await eventually(async () => t.db('form_form').where({ sqs_message_id: sent.MessageId }).first());
      await worker.stop();
      worker = undefined;
      const processSpan = onlyOne(
        receiver.spans,
        'process span',
        (s) =>
          s.attributes['messaging.message.id'] === sent.MessageId &&
          s.attributes['messaging.operation.type'] === 'process',
      );
      const batch = onlyOne(
        receiver.spans,
        'batch span',
        (s) => s.attributes['messaging.operation.type'] === 'receive',
      );
      expect(processSpan.parentSpanId).to.equal(batch.spanId);
      expect(processSpan.links).to.deep.equal([]);
      expect(processSpan.attributes['form_data.outcome']).to.equal('stored');
    });

    it('a redelivered message and one handed back after a database outage link to the same creation context', async function () {
      this.timeout(60_000);
      const pg = new URL(t.config.database.url);
      const proxy = await startTcpProxy(pg.hostname, Number(pg.port || 5432));
      const viaProxy = new URL(t.config.database.url);
      viaProxy.hostname = '127.0.0.1';
      viaProxy.port = String(proxy.port);
      const traceId = hex(16);
      const creator = hex(8);
      const urls = await t.queueUrls();
      const attributes = {
        traceparent: { DataType: 'String', StringValue: `00-${traceId}-${creator}-01` },
        tracestate: { DataType: 'String', StringValue: 'ui=1' },
      };
      const first = await t.sqs.send(
        new SendMessageCommand({
          QueueUrl: urls.form,
          MessageBody: JSON.stringify({ data: validForm() }),
          MessageAttributes: attributes,
        }),
      );
      try {
        // A redelivery: received once elsewhere and never deleted, so it comes back with receive count 2.
        const taken = await receiveAll(t.sqs, urls.form, 1);
        expect(taken.map((m) => m.MessageId)).to.deep.equal([first.MessageId]);
        await t.sqs.send(
          new ChangeMessageVisibilityCommand({
            QueueUrl: urls.form,
            ReceiptHandle: taken[0]!.ReceiptHandle,
            VisibilityTimeout: 0,
          }),
        );
        worker = await createWorkerService(
          traced({
            DATABASE_URL: viaProxy.toString(),
            DATABASE_TIMEOUT_MS: '1000',
            SQS_RETRY_BACKOFF_BASE_SECONDS: '1',
            SQS_RETRY_BACKOFF_MAX_SECONDS: '2',
            WORKER_CONCURRENCY: '1',
          }),
        );
        proxy.cut();
        const backoff = once(worker.consumer, 'backoff');
        await worker.start();
        const [event] = (await backoff) as [{ reason: string }];
        expect(event.reason).to.match(/^database unavailable/);
        proxy.restore();
        await eventually(
          async () => t.db('form_form').where({ sqs_message_id: first.MessageId }).first(),
          30_000,
          'the row',
        );
        await worker.stop();
        worker = undefined;
      } finally {
        await proxy.close();
      }
      const processSpans = receiver.spans.filter(
        (s) =>
          s.attributes['messaging.message.id'] === first.MessageId &&
          s.attributes['messaging.operation.type'] === 'process',
      );
      const outcomes = processSpans.map((s) => s.attributes['form_data.outcome']);
      expect(outcomes).to.include('retried');
      expect(outcomes.at(-1)).to.equal('stored');
      for (const s of processSpans) {
        expect(s.traceId).to.equal(traceId);
        expect(s.parentSpanId).to.equal(creator);
        expect(s.links).to.deep.equal([{ traceId, spanId: creator }]);
        expect(Number(s.attributes['form_data.receive_count'])).to.be.greaterThan(1);
      }
      const handBack = receiver.spans.find((s) => s.name === `ChangeMessageVisibilityBatch ${t.formQueue}`);
      expect(handBack?.attributes).to.include({ 'messaging.operation.type': 'settle' });
    });

    it('the invalid-queue copy keeps the trace attributes, and the send has its span', async () => {
      worker = await createWorkerService(traced());
      await worker.start();
      const urls = await t.queueUrls();
      const traceparent = `00-${hex(16)}-${hex(8)}-01`;
      const sent = await t.sqs.send(
        new SendMessageCommand({
          QueueUrl: urls.form,
          MessageBody: '{"data": {"company_name": "x"}}',
          MessageAttributes: { traceparent: { DataType: 'String', StringValue: traceparent } },
        }),
      );
      const [copy] = await eventually(async () => {
        const got = await receiveAll(t.sqs, urls.invalid, 1);
        return got.length > 0 ? got : undefined;
      });
      expect(copy!.MessageAttributes?.traceparent?.StringValue).to.equal(traceparent);
      expect(copy!.MessageAttributes?.original_message_id?.StringValue).to.equal(sent.MessageId);
      await worker.stop();
      worker = undefined;
      const processSpan = onlyOne(
        receiver.spans,
        'process span',
        (s) =>
          s.attributes['messaging.message.id'] === sent.MessageId &&
          s.attributes['messaging.operation.type'] === 'process',
      );
      expect(processSpan.attributes).to.include({
        'form_data.outcome': 'invalid',
        'form_data.invalid_reason': 'validation',
      });
      const send = onlyOne(
        receiver.spans,
        'invalid-queue send',
        (s) => s.name === `SendMessageBatch ${t.invalidQueue}`,
      );
      expect(send.kind).to.equal(KIND.producer);
      expect(send.attributes).to.include({
        'messaging.destination.name': t.invalidQueue,
        'messaging.operation.type': 'send',
      });
    });

    it('never drops a form for lack of room: the trace attributes are left out of a message that could not hold them', async () => {
      const own = Object.fromEntries(
        Array.from({ length: SQS_MAX_MESSAGE_ATTRIBUTES - 1 }, (_, i) => [
          `a${i}`,
          { DataType: 'String', StringValue: 'v' },
        ]),
      );
      expect(Object.keys(withTraceAttributes(own, { traceparent: 'tp', tracestate: 'ts' }))).to.deep.equal(
        Object.keys(own),
      );
      expect(Object.keys(withTraceAttributes({ a: 1 }, { traceparent: 'tp', tracestate: 'ts' }))).to.deep.equal([
        'a',
        'traceparent',
        'tracestate',
      ]);
      // Through the real sender and SQS: a body at SQS's limit goes without its trace attributes rather than being refused.
      const tracing = await createTracing(traced().tracing, 'web');
      const sqs = createSqsClient(t.config.sqs);
      const urls = await t.queueUrls();
      const sender = new BatchingSender(sqs, urls.form, 0, () => {}, tracing);
      try {
        const big = JSON.stringify({ data: validForm({ website: 'x'.repeat(SQS_MAX_MESSAGE_BYTES - 400) }) });
        const padded = big.replace(
          '"website":"',
          `"website":"${'y'.repeat(SQS_MAX_MESSAGE_BYTES - Buffer.byteLength(big) - 10)}`,
        );
        const small = JSON.stringify({ data: validForm() });
        const [bigId, smallId] = await Promise.all([sender.send(padded), sender.send(small)]);
        const got = await receiveAll(t.sqs, urls.form, 2);
        expect(got.find((m) => m.MessageId === bigId)?.MessageAttributes).to.equal(undefined);
        expect(got.find((m) => m.MessageId === smallId)?.MessageAttributes?.traceparent?.StringValue).to.match(
          /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/,
        );
      } finally {
        await sender.close();
        sqs.destroy();
        await tracing.close();
      }
    });

    it('an error span carries the problem status, and Sentry and OpenTelemetry both get the failure', async () => {
      const sentry = await fakeSentry();
      try {
        web = await createWebService(traced({ SENTRY_DSN: `http://publickey@127.0.0.1:${sentry.port}/42` }), {
          sender: {
            send: () => Promise.reject(new TypeError('sender bug for the test')),
            close: () => Promise.resolve(),
          },
        });
        const base = `http://127.0.0.1:${await web.listen()}`;
        const traceId = hex(16);
        const res = await fetch(`${base}/form/`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'x-signature': sign('/form/', jsonBody(validForm())),
            traceparent: `00-${traceId}-${hex(8)}-01`,
          },
          body: jsonBody(validForm()),
        });
        expect(res.status).to.equal(500);
        const refused = await post(base, '/form/', jsonBody({ company_name: 'x' }));
        expect(refused.status).to.equal(400);
        const event = await eventually(
          async () => sentry.events.find((e) => e.extra?.trace_id !== undefined),
          10_000,
          'a Sentry event',
        );
        await web.stop();
        web = undefined;
        const failed = onlyOne(receiver.spans, 'failed server span', (s) => s.traceId === traceId);
        expect(failed.status.code).to.equal(STATUS.error);
        expect(failed.attributes).to.include({ 'http.response.status_code': 500, 'error.type': '500' });
        expect(event.extra?.trace_id).to.equal(traceId);
        expect(event.extra?.span_id).to.equal(failed.spanId);
        const refusal = onlyOne(
          receiver.spans,
          '400 server span',
          (s) => s.attributes['http.response.status_code'] === 400,
        );
        expect(refusal.status.code).to.equal(STATUS.unset);
        expect(refusal.attributes['error.type']).to.equal('400');
      } finally {
        await new Promise((resolve) => sentry.server.close(resolve));
      }
    });
  });

  it('off: nothing exported and no OpenTelemetry module loaded; on: the SDK is loaded and spans arrive', async function () {
    this.timeout(90_000);
    const probe = async (
      env: Record<string, string>,
    ): Promise<{ status: number; stored: boolean; resolved: string[] }> => {
      const { stdout } = await run(process.execPath, ['test/support/tracing-probe.ts'], {
        env: { PATH: process.env.PATH ?? '', ...t.env, DISABLE_SIGNATURE_CHECK: 'true', LOG_LEVEL: 'silent', ...env },
      });
      return JSON.parse(stdout.trim().split('\n').at(-1)!) as { status: number; stored: boolean; resolved: string[] };
    };
    // prom-client requires @opentelemetry/api (its exemplars) whatever we do: the API alone, no-op without an SDK.
    const sdk = (r: { resolved: string[] }) => ({
      ...r,
      resolved: r.resolved.filter((m) => m !== '@opentelemetry/api'),
    });
    expect(sdk(await probe({}))).to.deep.equal({ status: 202, stored: true, resolved: [] });
    expect(sdk(await probe({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_SDK_DISABLED: 'true' }))).to.deep.equal({
      status: 202,
      stored: true,
      resolved: [],
    });
    expect(receiver.requests).to.have.length(0);
    const on = await probe({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.url}/v1/traces` });
    expect(on).to.include({ status: 202, stored: true });
    expect(on.resolved).to.include('@opentelemetry/sdk-trace');
    expect(receiver.spans.map((s) => s.traceId)).to.include('0af7651916cd43dd8448eb211c80319c');
  });
});

/** A Sentry ingest endpoint keeping the events it is sent. */
async function fakeSentry(): Promise<{
  server: import('node:http').Server;
  port: number;
  events: { extra?: Record<string, unknown> }[];
}> {
  const { createServer } = await import('node:http');
  const { gunzipSync } = await import('node:zlib');
  const events: { extra?: Record<string, unknown> }[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
      const items = body
        .toString('utf8')
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as { type?: string; extra?: Record<string, unknown> });
      items.forEach((item, i) => {
        if (item.type === 'event' && items[i + 1]) events.push(items[i + 1]!);
      });
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as import('node:net').AddressInfo).port, events };
}

describe('tracing configuration (OTEL_* variables)', () => {
  it('is off without an endpoint, and with OTEL_SDK_DISABLED=true', () => {
    expect(loadConfig({}).tracing.endpoint).to.equal(undefined);
    expect(
      loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' }).tracing.endpoint,
    ).to.equal(undefined);
  });

  it('reads the standard variables with their defaults', () => {
    const c = loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }).tracing;
    expect(c).to.deep.equal({
      endpoint: 'http://collector:4318/v1/traces',
      protocol: 'http/protobuf',
      headers: {},
      serviceName: undefined,
      resourceAttributes: {},
      sampler: 'parentbased_always_on',
      samplerRatio: 1,
      propagators: ['tracecontext', 'baggage'],
    });
    const d = loadConfig({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/base/',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://traces.example/custom',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
      OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json',
      OTEL_EXPORTER_OTLP_HEADERS: 'a=1,b=2',
      OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'b=3,api-key=x%3Dy',
      OTEL_SERVICE_NAME: 'forms',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=prod, team=exports',
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '0.25',
      OTEL_PROPAGATORS: 'tracecontext',
    }).tracing;
    expect(d).to.deep.equal({
      endpoint: 'https://traces.example/custom',
      protocol: 'http/json',
      headers: { a: '1', b: '3', 'api-key': 'x=y' },
      serviceName: 'forms',
      resourceAttributes: { 'deployment.environment.name': 'prod', team: 'exports' },
      sampler: 'parentbased_traceidratio',
      samplerRatio: 0.25,
      propagators: ['tracecontext'],
    });
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318/' }).tracing.endpoint).to.equal(
      'http://c:4318/v1/traces',
    );
    expect(loadConfig({ OTEL_PROPAGATORS: 'none' }).tracing.propagators).to.deep.equal([]);
  });

  const refused: [Record<string, string>, string][] = [
    [
      { OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' },
      'OTEL_EXPORTER_OTLP_PROTOCOL="grpc" is not allowed; expected one of http/protobuf, http/json',
    ],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' }, 'OTEL_EXPORTER_OTLP_ENDPOINT'],
    [{ OTEL_TRACES_SAMPLER: 'sometimes' }, 'OTEL_TRACES_SAMPLER'],
    [{ OTEL_TRACES_SAMPLER_ARG: '2' }, 'a number from 0 to 1'],
    [{ OTEL_PROPAGATORS: 'tracecontext,b3' }, 'OTEL_PROPAGATORS="b3"'],
    [{ OTEL_SDK_DISABLED: 'maybe' }, 'OTEL_SDK_DISABLED'],
    [{ OTEL_RESOURCE_ATTRIBUTES: 'novalue' }, 'OTEL_RESOURCE_ATTRIBUTES'],
  ];
  for (const [env, message] of refused) {
    it(`refuses ${JSON.stringify(env)} naming the variable`, () => {
      expect(() => loadConfig(env)).to.throw(ConfigError, message);
    });
  }

  it('never shows a header value in an error', () => {
    expect(() => loadConfig({ OTEL_EXPORTER_OTLP_HEADERS: 'api-key=hunter2,broken' }))
      .to.throw(ConfigError)
      .with.property('message')
      .that.does.not.contain('hunter2');
  });

  it('docs/tracing.md lists exactly the variables the code reads', async () => {
    const text = await readFile(new URL('../docs/tracing.md', import.meta.url), 'utf8');
    expect(settingsTable(text, 'Configuration')).to.deep.equal(TRACING_SETTINGS.map((s) => settingRow(s, s.allowed)));
  });

  it('attribute names are those of @opentelemetry/semantic-conventions', () => {
    const known = new Set<unknown>([...Object.values(semconv), ...Object.values(incubating)]);
    for (const name of Object.values(ATTR)) expect(known.has(name), name).to.equal(true);
    expect(incubating.MESSAGING_SYSTEM_VALUE_AWS_SQS).to.equal('aws_sqs');
  });
});
