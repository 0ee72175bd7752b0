import { expect } from 'chai';
import { ConfigError } from '../services/common/errors.ts';
import { computeSignature } from '../services/web/signature.ts';
import { createWebService, type WebService, type WebServiceOptions } from '../services/web/service.ts';
import { formEncodedBody, jsonBody, post, sign, type Reply } from '../harness/http.ts';
import { queueCounts, receiveAll } from '../harness/sqs.ts';
import { useEmulator } from './support/emulator.ts';
import { createTestEnv, type TestEnv } from './support/stack.ts';
import { TEST_SECRET, validForm } from '../harness/forms.ts';
import { startTcpProxy, type TcpProxy } from '../harness/tcp-proxy.ts';
import { SUBMISSION_ID } from '../services/common/message.ts';

const FORM_TYPE = 'application/x-www-form-urlencoded';

interface Running {
  t: TestEnv;
  web: WebService;
  base: string;
  formUrl: string;
}

/** Checks an RFC 9457 answer: status, problem+json, a detail naming the problem, nothing internal. */
function expectProblem(reply: Reply, status: number, detail: string | RegExp): Record<string, unknown> {
  expect(reply.status, reply.text).to.equal(status);
  expect(reply.headers.get('content-type')).to.match(/^application\/problem\+json/);
  const body = reply.body as Record<string, unknown>;
  expect(body).to.include({ type: 'about:blank', status });
  expect(body.title).to.be.a('string');
  if (typeof detail === 'string') expect(body.detail).to.include(detail);
  else expect(body.detail).to.match(detail);
  expectNoInternals(reply.text);
  return body;
}

function expectNoInternals(text: string): void {
  expect(text).not.to.match(/\bat .+:\d+:\d+|\.ts\b|node_modules|node:internal|SqsError|ECONNRE|stack/i);
}

function fieldsOf(reply: Reply): string[] {
  return ((reply.body as { errors?: { field: string }[] }).errors ?? []).map((e) => e.field);
}

async function queued(r: Running): Promise<number> {
  const c = await queueCounts(r.t.sqs, r.formUrl);
  return c.visible + c.inFlight + c.delayed;
}

describe('web service', function () {
  const emulator = useEmulator();
  const started: Running[] = [];

  async function start(overrides: Record<string, string> = {}, options: WebServiceOptions = {}): Promise<Running> {
    const t = await createTestEnv(emulator.endpoint, overrides, { migrate: false });
    try {
      const web = await createWebService(t.config, options);
      const base = `http://127.0.0.1:${await web.listen()}`;
      const running = { t, web, base, formUrl: (await t.queueUrls()).form };
      started.push(running);
      return running;
    } catch (error) {
      await t.cleanup();
      throw error;
    }
  }
  afterEach(async () => {
    for (const r of started.splice(0)) {
      await r.web.stop();
      await r.t.cleanup();
    }
  });

  describe('signatures', () => {
    it('accepts a signed request and refuses the same request unsigned or wrongly signed, enqueuing nothing', async () => {
      const r = await start();
      const body = jsonBody(validForm());
      const missing = await post(r.base, '/form/', body, { signature: null });
      expectProblem(missing, 401, 'X-Signature header is missing');
      const wrong = await post(r.base, '/form/', body, { signature: sign('/form/', body, 'another-secret') });
      expectProblem(wrong, 401, 'X-Signature does not match');
      const truncated = await post(r.base, '/form/', body, { signature: sign('/form/', body).slice(0, 40) });
      expectProblem(truncated, 401, 'X-Signature does not match');
      expect(await queued(r)).to.equal(0);
      const ok = await post(r.base, '/form/', body);
      expect(ok.status, ok.text).to.equal(202);
      expect(await queued(r)).to.equal(1);
    });

    it('matches a vector computed with sha256sum, and the server accepts that signature', async () => {
      // printf '%s' '/form/{}test-ui-secret-of-at-least-32-characters' | sha256sum
      const vector = '68f62d8860623672b0bd55fce2d8adeab8e8429ffe02ab78c7ad4ee685a62ba6';
      expect(computeSignature('/form/', Buffer.from('{}'), TEST_SECRET)).to.equal(vector);
      expect(sign('/form/', '{}')).to.equal(vector);
      const r = await start();
      // Past the signature check: the body itself is refused (no data), not the signature.
      expectProblem(await post(r.base, '/form/', '{}', { signature: vector }), 400, 'data');
      expectProblem(await post(r.base, '/form/', '{}', { signature: vector.toUpperCase() }), 401, 'does not match');
    });

    it('signs the path with its query string: a signature over another path or query is refused', async () => {
      const r = await start();
      const body = jsonBody(validForm());
      expectProblem(
        await post(r.base, '/form/?lang=en', body, { signature: sign('/form/', body) }),
        401,
        'does not match',
      );
      expectProblem(
        await post(r.base, '/form/', body, { signature: sign('/form/?lang=en', body) }),
        401,
        'does not match',
      );
      expectProblem(await post(r.base, '/form', body, { signature: sign('/form/', body) }), 401, 'does not match');
      expectProblem(
        await post(r.base, '/form/?lang=de', body, { signature: sign('/form/?lang=en', body) }),
        401,
        'does not match',
      );
      expect(await queued(r)).to.equal(0);
      expect((await post(r.base, '/form/?lang=en', body)).status).to.equal(202);
      expect((await post(r.base, '/form', body)).status).to.equal(202);
    });

    it('serves /metrics on METRICS_PORT alone when it is set, so a network policy can separate scrapers', async () => {
      const r = await start({ METRICS_PORT: '0' });
      const metricsPort = r.web.metricsPort();
      expect(metricsPort)
        .to.be.a('number')
        .and.not.equal(Number(new URL(r.base).port));
      const scraped = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
      expect(scraped.status).to.equal(200);
      expect(await scraped.text()).to.contain('form_data_http_requests_total');
      const onFormPort = await fetch(`${r.base}/metrics`);
      expect(onFormPort.status, '/metrics is not on the form port').to.equal(404);
      await onFormPort.text();
      for (const [path, method, status] of [
        ['/form/', 'POST', 404],
        ['/healthz/ready', 'GET', 404],
        ['/metrics', 'POST', 405],
      ] as const) {
        const res = await fetch(`http://127.0.0.1:${metricsPort}${path}`, { method });
        expect(res.status, `${method} ${path}`).to.equal(status);
        expect(res.headers.get('content-type')).to.match(/^application\/problem\+json/);
        await res.text();
      }
      expect((await fetch(`${r.base}/healthz/ready`)).status).to.equal(200);
    });

    it('needs no signature on health and metrics endpoints', async () => {
      const r = await start();
      for (const path of ['/healthz/live', '/healthz/ready', '/metrics']) {
        const res = await fetch(r.base + path);
        expect(res.status, path).to.equal(200);
        await res.text();
      }
    });

    it('accepts unsigned requests with DISABLE_SIGNATURE_CHECK=true (even without UI_SECRET)', async () => {
      const r = await start({ DISABLE_SIGNATURE_CHECK: 'true', UI_SECRET: '' });
      const reply = await post(r.base, '/form/', jsonBody(validForm()), { signature: null });
      expect(reply.status, reply.text).to.equal(202);
    });

    it('refuses to start without UI_SECRET', async () => {
      const t = await createTestEnv(emulator.endpoint, { UI_SECRET: '' }, { migrate: false });
      try {
        let caught: unknown;
        await createWebService(t.config).catch((error: unknown) => (caught = error));
        expect(caught).to.be.instanceOf(ConfigError);
        expect((caught as ConfigError).variable).to.equal('UI_SECRET');
      } finally {
        await t.cleanup();
      }
    });
  });

  describe('accepted submissions', () => {
    const encodings: { name: string; body: string; type: string }[] = [
      { name: 'form-encoded data=<JSON string>', body: formEncodedBody(validForm()), type: FORM_TYPE },
      { name: 'JSON with data as an object', body: jsonBody(validForm()), type: 'application/json' },
      {
        name: 'JSON with data as a string holding one',
        body: JSON.stringify({ data: JSON.stringify(validForm()) }),
        type: 'application/json',
      },
      { name: 'JSON with a charset parameter', body: jsonBody(validForm()), type: 'application/json; charset=UTF-8' },
    ];
    for (const e of encodings) {
      it(`answers 202 with the message id, submission id and validated data, and queues {data, received_at, request_id, submission_id}: ${e.name}`, async () => {
        const r = await start();
        const reply = await post(r.base, '/form/', e.body, { type: e.type });
        expect(reply.status, reply.text).to.equal(202);
        expect(reply.headers.get('content-type')).to.match(/^application\/json/);
        const {
          id,
          data,
          submission_id: submissionId,
        } = reply.body as { id: string; data: unknown; submission_id: string };
        expect(data).to.deep.equal(validForm());
        expect(submissionId).to.match(SUBMISSION_ID);
        const messages = await receiveAll(r.t.sqs, r.formUrl);
        expect(messages).to.have.length(1);
        expect(messages[0]!.MessageId).to.equal(id);
        const message = JSON.parse(messages[0]!.Body!) as Record<string, unknown>;
        expect(Object.keys(message).sort()).to.deep.equal([
          'data',
          'received_at',
          'request_id',
          'submission_id',
          'submission_source',
        ]);
        expect(message.submission_id).to.equal(submissionId);
        expect(message.data).to.deep.equal(validForm());
        expect(new Date(message.received_at as string).toISOString()).to.equal(message.received_at);
        expect(message.request_id).to.equal(reply.headers.get('x-request-id'));
      });
    }

    it('keeps other fields and queues only the validated copy', async () => {
      const r = await start();
      const reply = await post(
        r.base,
        '/form/',
        JSON.stringify({ data: validForm({ marketing_source_other: 'a friend' }), ignored: 'top-level extra' }),
      );
      expect(reply.status, reply.text).to.equal(202);
      const [message] = await receiveAll(r.t.sqs, r.formUrl);
      const body = JSON.parse(message!.Body!) as { data: Record<string, unknown> };
      expect(body.data).to.deep.equal(validForm({ marketing_source_other: 'a friend' }));
      expect(message!.Body).not.to.include('top-level extra');
    });
  });

  describe('validation over HTTP', () => {
    it('answers 400 naming each failing field', async () => {
      const r = await start();
      const cases: [Record<string, unknown>, string[]][] = [
        [{ company_name: '' }, ['data.company_name']],
        [{ contact_name: 'x'.repeat(256) }, ['data.contact_name']],
        [{ email_address1: 'nope', email_address2: 'nope' }, ['data.email_address1', 'data.email_address2']],
        [{ email_address2: 'other@example.com' }, ['data.email_address2']],
        [{ website: 42 }, ['data.website']],
        [{ phone_number: 'x'.repeat(256) }, ['data.phone_number']],
        [{ exporting: 'yes' }, ['data.exporting']],
        [{ agree_terms: false }, ['data.agree_terms']],
        [{ marketing_source: [1] }, ['data.marketing_source']],
        [{ opt_in: 'yes' }, ['data.opt_in']],
        [{ note: 'x'.repeat(2001) }, ['data.note']],
        [{ company_name: 'A\u0000' }, ['data.company_name']],
        [{ contact_name: '\ud800' }, ['data.contact_name']],
        [
          { company_name: undefined, agree_terms: 'True', opt_in: 1 },
          ['data.company_name', 'data.agree_terms', 'data.opt_in'],
        ],
      ];
      for (const [overrides, fields] of cases) {
        const reply = await post(r.base, '/form/', jsonBody(validForm(overrides)));
        const problem = expectProblem(reply, 400, 'the form is not valid');
        expect(fieldsOf(reply), JSON.stringify(overrides).slice(0, 60)).to.have.members(fields);
        for (const field of fields) expect(problem.detail).to.include(field.slice('data.'.length));
      }
      expect(await queued(r)).to.equal(0);
    });
  });

  describe('refusals', () => {
    let r: Running;
    beforeEach(async () => {
      r = await start({ MAX_BODY_BYTES: '4096' });
    });
    afterEach(async () => {
      expect(await queued(r)).to.equal(0);
    });

    it('answers 400 for malformed JSON', async () => {
      expectProblem(await post(r.base, '/form/', '{"data": {'), 400, 'malformed JSON');
      expectProblem(await post(r.base, '/form/', '"just a string"'), 400, 'must be an object');
      expectProblem(
        await post(r.base, '/form/', JSON.stringify({ data: '{"broken": ' })),
        400,
        'data is a string that is not JSON',
      );
    });

    it('answers 400 for malformed form encoding', async () => {
      expectProblem(await post(r.base, '/form/', 'data=%7B%ZZ', { type: FORM_TYPE }), 400, 'not JSON');
      expectProblem(await post(r.base, '/form/', 'data=1&data=2', { type: FORM_TYPE }), 400, 'data must be given once');
      expectProblem(await post(r.base, '/form/', 'nodata', { type: FORM_TYPE }), 400, 'data is missing');
    });

    it('answers 413 over the body limit', async () => {
      const body = jsonBody(validForm({ note: 'x'.repeat(5000) }));
      expectProblem(await post(r.base, '/form/', body), 413, 'larger than 4096 bytes');
    });

    it('answers 415 for other content types', async () => {
      const body = jsonBody(validForm());
      for (const type of [
        'text/plain',
        'multipart/form-data; boundary=x',
        'application/xml',
        'application/json; charset=latin1',
        'application/vnd.api+json',
      ]) {
        expectProblem(await post(r.base, '/form/', body, { type }), 415, /content type|charset/);
      }
      expectProblem(await post(r.base, '/form/', body, { type: null }), 415, 'content type');
    });

    it('answers 405 with Allow for other methods', async () => {
      for (const method of ['GET', 'PUT', 'DELETE', 'PATCH', 'PROPFIND']) {
        const res = await fetch(`${r.base}/form/`, { method, ...(method === 'GET' ? {} : { body: '{}' }) });
        const reply: Reply = { status: res.status, headers: res.headers, text: await res.text(), body: undefined };
        reply.body = JSON.parse(reply.text);
        expectProblem(reply, 405, `${method} is not allowed`);
        expect(res.headers.get('allow'), method).to.equal('POST');
      }
    });

    it('answers 404 for unknown paths, with no Allow header whatever the method', async () => {
      for (const path of ['/', '/forms/', '/form/x', '/healthz']) {
        for (const method of ['GET', 'PROPFIND']) {
          const res = await fetch(r.base + path, { method });
          const text = await res.text();
          expectProblem(
            { status: res.status, headers: res.headers, text, body: JSON.parse(text) },
            404,
            `no resource at ${path}`,
          );
          expect(res.headers.has('allow'), `${method} ${path}`).to.equal(false);
        }
      }
    });
  });

  describe('SQS unavailable', () => {
    let proxy: TcpProxy | undefined;
    afterEach(async () => {
      await proxy?.close();
      proxy = undefined;
    });

    it('answers 503 quickly when SQS does not accept the message, and recovers without restart', async () => {
      const target = new URL(emulator.endpoint);
      proxy = await startTcpProxy(target.hostname, Number(target.port));
      const r = await start({
        SQS_ENDPOINT_URL: `http://127.0.0.1:${proxy.port}`,
        SQS_REQUEST_TIMEOUT_MS: '500',
        SQS_MAX_ATTEMPTS: '2',
      });
      const body = jsonBody(validForm());
      expect((await post(r.base, '/form/', body)).status).to.equal(202);

      proxy.cut();
      const t0 = Date.now();
      const refused = await post(r.base, '/form/', body);
      const elapsed = Date.now() - t0;
      expectProblem(refused, 503, 'may not have been queued');
      expect(refused.headers.get('retry-after')).to.equal('5');
      expect(elapsed).to.be.below(500 * 2 + 1000);

      proxy.restore();
      const again = await post(r.base, '/form/', body);
      expect(again.status, again.text).to.equal(202);
      expect(await queued(r)).to.equal(2);
    });
  });

  describe('health', () => {
    it('answers 200 on /healthz/live and /healthz/ready, and 503 on readiness once stop() begins', async () => {
      const r = await start({ SHUTDOWN_DELAY_MS: '1000' });
      expect((await fetch(`${r.base}/healthz/live`)).status).to.equal(200);
      expect((await fetch(`${r.base}/healthz/ready`)).status).to.equal(200);
      const stopping = r.web.stop();
      try {
        const ready = await fetch(`${r.base}/healthz/ready`);
        expect(ready.status).to.equal(503);
        expectNoInternals(await ready.text());
        expect((await fetch(`${r.base}/healthz/live`)).status).to.equal(200);
      } finally {
        await stopping;
        started.splice(started.indexOf(r), 1);
        await r.t.cleanup();
      }
    });
  });
});
