/**
 * The OpenAPI document (services/web/openapi.json): valid OpenAPI 3.1, served
 * as is at GET /openapi.json, and true of the real web service (built by
 * createWebService, SQS = fauxqs). Every documented (method, path, status) is
 * answered to some request below, and each answer matches its documented
 * media type, body schema and headers; the form schema's limits agree with
 * services/common/form-schema.ts, at and past each limit.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { Validator } from '@seriousme/openapi-schema-validator';
import { describeNamedFields, LIMITS } from '../services/common/form-schema.ts';
import { createWebService, type WebService, type WebServiceOptions } from '../services/web/service.ts';
import type { Config } from '../services/common/config.ts';
import type { FormSender } from '../services/web/sender.ts';
import { jsonBody, post, sign } from '../harness/http.ts';
import { Contract } from './support/openapi.ts';
import { freePort } from '../harness/ports.ts';
import { startProcess, type ProcessHandle } from '../harness/process.ts';
import { rawRequest, type Answer } from './support/raw-http.ts';
import { startEmulator, type Emulator } from '../harness/sqs.ts';
import { createTestEnv, eventually, type TestEnv } from './support/stack.ts';
import { OPTIONAL_FIELDS, REQUIRED_FIELDS, TEST_SECRET } from '../harness/forms.ts';
import { startTcpProxy, type TcpProxy } from '../harness/tcp-proxy.ts';

type JsonObject = Record<string, unknown>;

const DOCUMENT_FILE = new URL('../services/web/openapi.json', import.meta.url);
const FORM_PATHS = ['/form/', '/form'] as const;
const FORM_TYPE = 'application/x-www-form-urlencoded';
/** Short server timeouts, so 408 comes quickly. */
const FAST_LIMITS = { headersTimeoutMs: 250, requestTimeoutMs: 750 };

function readDocument(): JsonObject {
  return JSON.parse(readFileSync(DOCUMENT_FILE, 'utf8')) as JsonObject;
}

/** Property `path` (dotted) of a document value, asserted to exist. */
function at(value: unknown, path: string): unknown {
  let current = value;
  for (const key of path.split('.')) {
    expect(typeof current === 'object' && current !== null && key in current, `${path} (at ${key})`).to.equal(true);
    current = (current as JsonObject)[key];
  }
  return current;
}

async function fetchAnswer(url: string, init: RequestInit = {}): Promise<Answer> {
  const res = await fetch(url, init);
  return { status: res.status, headers: res.headers, text: await res.text() };
}

describe('OpenAPI document (services/web/openapi.json)', function () {
  const document = readDocument();
  let contract: Contract;

  before(() => {
    contract = new Contract(document);
  });

  describe('the document', () => {
    it('is valid OpenAPI 3.1', async () => {
      const validator = new Validator();
      const result = await validator.validate(readDocument());
      expect(result.errors, JSON.stringify(result.errors, null, 1)?.slice(0, 2000)).to.equal(undefined);
      expect(result.valid).to.equal(true);
      expect(validator.version).to.equal('3.1');
    });

    it('has the version of package.json', () => {
      const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
      expect(at(document, 'info.version')).to.equal(pkg.version);
    });

    it('has examples that satisfy their schemas', () => {
      const examples = contract.examples();
      expect(examples.length).to.be.above(20);
      for (const e of examples) {
        if (e.schema !== undefined) expect(contract.errors(e.schema, e.value), e.where).to.deep.equal([]);
      }
    });

    it('states the limits of services/common/form-schema.ts', () => {
      expect(at(contract.schema('FieldText'), 'maxLength')).to.equal(LIMITS.maxFieldLength);
      expect(at(contract.schema('ExtraScalar'), 'maxLength')).to.equal(LIMITS.maxExtraStringLength);
      expect(at(contract.schema('Key'), 'maxLength')).to.equal(LIMITS.maxKeyLength);
      expect(at(contract.schema('FormData'), 'maxProperties')).to.equal(LIMITS.maxKeys);
      expect(listLimit(contract)).to.equal(LIMITS.maxArrayItems);
      expect(extraDepth(contract)).to.equal(LIMITS.maxDepth);
      for (const level of ['ExtraValue', 'ExtraValueLevel2', 'ExtraValueLevel3']) {
        expect(at(contract.schema(level), 'anyOf.1.maxItems'), level).to.equal(LIMITS.maxArrayItems);
      }
      expect(at(contract.schema('ValidationProblem'), 'properties.errors.maxItems')).to.equal(LIMITS.maxErrors);
      expect(String(at(contract.schema('FormData'), 'description'))).to.include(
        `${LIMITS.maxKeys} keys in the whole form`,
      );
    });

    it("states the yup schema's named fields: which are required, their limits, formats and allowed values", () => {
      const form = contract.schema('FormData') as JsonObject;
      const properties = at(form, 'properties') as Record<string, JsonObject>;
      const fields = describeNamedFields().fields as Record<
        string,
        { optional: boolean; type: string; oneOf: unknown[]; tests: { name?: string; params?: { max?: number } }[] }
      >;
      expect(Object.keys(properties).sort()).to.deep.equal(Object.keys(fields).sort());
      const required = Object.keys(fields).filter((name) => !fields[name]!.optional);
      expect([...(at(form, 'required') as string[])].sort()).to.deep.equal(required.sort());
      /** A property's own keyword, else its $ref's. */
      const keyword = (property: JsonObject, name: string): unknown =>
        property[name] ??
        (typeof property.$ref === 'string' ? contract.schema(property.$ref.split('/').pop()!)[name] : undefined);
      for (const [name, field] of Object.entries(fields)) {
        const property = properties[name]!;
        const max = field.tests.find((t) => t.name === 'max')?.params?.max;
        if (field.type === 'string') {
          expect(keyword(property, 'maxLength'), `${name} maxLength`).to.equal(max);
          expect(keyword(property, 'format') === 'email', `${name} format`).to.equal(
            field.tests.some((t) => t.name === 'email'),
          );
        }
        if (field.oneOf.length > 1) expect(property.enum, `${name} enum`).to.deep.equal(field.oneOf);
        if (field.oneOf.length === 1) expect(property.const, `${name} const`).to.equal(field.oneOf[0]);
      }
    });

    it('documents the signature with a vector that the test helper computes the same', () => {
      const description = String(at(document, 'components.securitySchemes.uiSignature.description'));
      const vector = /`([0-9a-f]{64})`/.exec(description)?.[1];
      expect(vector).to.be.a('string');
      expect(description).to.include(`\`${TEST_SECRET}\``);
      expect(sign('/form/', '{}', TEST_SECRET)).to.equal(vector);
    });
  });

  describe('against the real service', function () {
    let emulator: Emulator;
    let t: TestEnv;
    let proxy: TcpProxy;
    const services: WebService[] = [];
    /** The service under test: default configuration, short server timeouts. */
    let base: string;
    let port: number;
    /** Its sender throws a plain Error. */
    let failingBase: string;
    /** Its SQS goes through `proxy`, cut once the service has started. */
    let cutBase: string;

    async function start(
      config: Config,
      options: WebServiceOptions = {},
    ): Promise<{ base: string; port: number; web: WebService }> {
      const web = await createWebService(config, options);
      services.push(web);
      const listening = await web.listen();
      return { base: `http://127.0.0.1:${listening}`, port: listening, web };
    }

    before(async () => {
      emulator = await startEmulator();
      t = await createTestEnv(emulator.endpoint, {}, { migrate: false });
      ({ base, port } = await start(t.config, { limits: FAST_LIMITS }));
      const throwing: FormSender = {
        send: () => Promise.reject(new Error('unexpected failure inside the sender')),
        close: () => Promise.resolve(),
      };
      ({ base: failingBase } = await start(t.config, { sender: throwing }));
      const target = new URL(emulator.endpoint);
      proxy = await startTcpProxy(target.hostname, Number(target.port));
      ({ base: cutBase } = await start(
        t.with({
          SQS_ENDPOINT_URL: `http://127.0.0.1:${proxy.port}`,
          SQS_REQUEST_TIMEOUT_MS: '500',
          SQS_MAX_ATTEMPTS: '1',
        }),
      ));
      proxy.cut();
    });
    after(async () => {
      for (const web of services.splice(0)) await web.stop();
      await proxy?.close();
      await t?.cleanup();
      await emulator?.stop();
    });

    /** The documented request examples, as the requests that send them and the forms they carry. */
    function documentedRequests(): { name: string; type: string; body: string; form: unknown }[] {
      const content = at(document, 'components.requestBodies.Form.content') as JsonObject;
      const out: { name: string; type: string; body: string; form: unknown }[] = [];
      for (const [type, media] of Object.entries(content)) {
        for (const [name, example] of Object.entries(at(media, 'examples') as JsonObject)) {
          const value = at(example, 'value') as { data: unknown };
          const form = typeof value.data === 'string' ? (JSON.parse(value.data) as unknown) : value.data;
          const body =
            type === FORM_TYPE
              ? new URLSearchParams({ data: JSON.stringify(value.data) }).toString()
              : JSON.stringify(value);
          out.push({ name: `${type} ${name}`, type, body, form });
        }
      }
      expect(out.map((r) => r.type)).to.include.members(['application/json', FORM_TYPE]);
      return out;
    }

    function exampleForm(): JsonObject {
      return structuredClone(
        at(document, 'components.requestBodies.Form.content.application/json.examples.object.value.data') as JsonObject,
      );
    }

    it('serves exactly the file at GET /openapi.json', async () => {
      const answer = await fetchAnswer(`${base}/openapi.json`);
      contract.check('GET', '/openapi.json', answer);
      expect(answer.status).to.equal(200);
      expect(JSON.parse(answer.text)).to.deep.equal(readDocument());
    });

    for (const path of FORM_PATHS) {
      describe(`POST ${path}`, () => {
        it('202 for each documented request example, with the validated form', async () => {
          for (const request of documentedRequests()) {
            const answer = await post(base, path, request.body, { type: request.type });
            expect(answer.status, `${request.name}: ${answer.text}`).to.equal(202);
            const body = contract.check('POST', path, answer) as { data: unknown };
            expect(body.data, request.name).to.deep.equal(request.form);
          }
        });

        it('202 under an Idempotency-Key, twice: the same submission_id, and repeat on the second', async () => {
          const key = { 'idempotency-key': `"openapi-${path.length}-${Date.now()}"` };
          const first = await post(base, path, jsonBody(exampleForm()), { headers: key });
          const second = await post(base, path, jsonBody(exampleForm()), { headers: key });
          const a = contract.check('POST', path, first) as { submission_id: string; repeat?: boolean };
          const b = contract.check('POST', path, second) as { submission_id: string; repeat?: boolean };
          expect(b.submission_id).to.equal(a.submission_id);
          expect([a.repeat, b.repeat]).to.deep.equal([undefined, true]);
        });

        /** Requests that get each documented refusal, and what the answer must say beyond the schema. */
        const refusals: {
          name: string;
          status: number;
          send: () => Promise<Answer>;
          then?: (body: JsonObject, answer: Answer) => void;
        }[] = [
          {
            name: 'the form is not valid: errors name each field',
            status: 400,
            send: () =>
              post(base, path, jsonBody({ ...exampleForm(), email_address2: 'other@example.com', agree_terms: false })),
            then: (body) =>
              expect((body.errors as { field: string }[]).map((e) => e.field)).to.have.members([
                'data.email_address2',
                'data.agree_terms',
              ]),
          },
          {
            name: 'no data: errors name data',
            status: 400,
            send: () => post(base, path, '{}'),
            then: (body) => expect(body.errors).to.deep.equal([{ field: 'data', message: 'data is missing' }]),
          },
          {
            name: 'a malformed Idempotency-Key: errors name the header',
            status: 400,
            send: () => post(base, path, jsonBody(exampleForm()), { headers: { 'idempotency-key': '"unterminated' } }),
            then: (body) =>
              expect((body.errors as { field: string }[]).map((e) => e.field)).to.deep.equal(['Idempotency-Key']),
          },
          {
            name: 'malformed JSON: a problem without errors',
            status: 400,
            send: () => post(base, path, '{"data": {'),
            then: (body, answer) => {
              expect(body).not.to.have.property('errors');
              expect(body.request_id).to.equal(answer.headers.get('x-request-id'));
              expect(body.instance).to.equal(path);
            },
          },
          {
            name: 'no Host header in HTTP/1.1: a problem of the application',
            status: 400,
            send: () =>
              rawRequest(
                port,
                `POST ${path} HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`,
              ),
            then: (body) => expect(body.detail).to.include('Host'),
          },
          {
            name: 'a malformed HTTP request: written by the HTTP server, without instance, request_id or X-Request-Id',
            status: 400,
            send: () =>
              rawRequest(
                port,
                `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: abc\r\n\r\n{}`,
              ),
            then: (body, answer) => {
              expect(Object.keys(body).sort()).to.deep.equal(['detail', 'status', 'title', 'type']);
              expect(answer.headers.get('x-request-id')).to.equal(null);
            },
          },
          {
            name: 'no signature',
            status: 401,
            send: () => post(base, path, jsonBody(exampleForm()), { signature: null }),
          },
          {
            name: 'a signature made with another secret',
            status: 401,
            send: () => {
              const body = jsonBody(exampleForm());
              return post(base, path, body, { signature: sign(path, body, 'another-secret') });
            },
          },
          {
            name: 'a body that stalls',
            status: 408,
            send: () =>
              rawRequest(
                port,
                `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"data":`,
              ),
            then: (_body, answer) => expect(answer.headers.get('x-request-id')).to.equal(null),
          },
          {
            name: 'a body over MAX_BODY_BYTES',
            status: 413,
            send: () => post(base, path, jsonBody({ ...exampleForm(), note: 'x'.repeat(t.config.web.maxBodyBytes) })),
            then: (body) => expect(body.detail).to.include(`larger than ${t.config.web.maxBodyBytes} bytes`),
          },
          {
            name: 'text/plain',
            status: 415,
            send: () => post(base, path, jsonBody(exampleForm()), { type: 'text/plain' }),
          },
          {
            name: 'a charset other than UTF-8',
            status: 415,
            send: () => post(base, path, jsonBody(exampleForm()), { type: 'application/json; charset=latin1' }),
          },
          {
            name: 'Expect: 200-ok',
            status: 417,
            send: () =>
              rawRequest(
                port,
                `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nExpect: 200-ok\r\nContent-Length: 2\r\n\r\n{}`,
              ),
          },
          {
            name: 'headers over 16 kB',
            status: 431,
            send: () =>
              rawRequest(
                port,
                `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(20_000)}\r\nContent-Length: 2\r\n\r\n{}`,
              ),
          },
          {
            name: 'a sender failing with an unexpected error',
            status: 500,
            send: () => post(failingBase, path, jsonBody(exampleForm())),
          },
          {
            name: 'SQS unreachable',
            status: 503,
            send: () => post(cutBase, path, jsonBody(exampleForm())),
            then: (_body, answer) => expect(answer.headers.get('retry-after')).to.equal('5'),
          },
        ];
        for (const r of refusals) {
          it(`${r.status}: ${r.name}`, async () => {
            const answer = await r.send();
            expect(answer.status, answer.text).to.equal(r.status);
            const body = contract.check('POST', path, answer) as JsonObject;
            expect(body.status).to.equal(r.status);
            r.then?.(body, answer);
          });
        }
      });
    }

    it('405 with Allow: POST for other methods on /form/', async () => {
      for (const method of ['GET', 'PUT', 'PATCH', 'DELETE']) {
        const answer = await fetchAnswer(`${base}/form/`, { method, ...(method === 'GET' ? {} : { body: '{}' }) });
        expect(answer.status, method).to.equal(405);
        contract.check(method, '/form/', answer);
        expect(answer.headers.get('allow'), method).to.equal('POST');
      }
    });

    it('404 (NotFound) for paths the document does not list', async () => {
      for (const path of ['/forms/', '/form//', '/healthz/live?probe=1', '/openapi.yaml']) {
        const answer = await fetchAnswer(base + path);
        expect(answer.status, path).to.equal(404);
        contract.checkComponent('NotFound', answer);
      }
    });

    it('405 for CONNECT, written by the HTTP server (RawProblem, Allow)', async () => {
      const answer = await rawRequest(port, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n');
      expect(answer.status).to.equal(405);
      expect(answer.headers.get('content-type')).to.equal('application/problem+json');
      expect(contract.errors({ $ref: '#/components/schemas/RawProblem' }, JSON.parse(answer.text))).to.deep.equal([]);
      expect(answer.headers.get('allow')).to.equal('GET, HEAD, POST');
    });

    it('X-Request-Id: a valid one is echoed in the header and in request_id, another one replaced by a UUID', async () => {
      const body = jsonBody(exampleForm());
      const given = 'client-request.42_A';
      const accepted = await fetchAnswer(`${base}/form/`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-signature': sign('/form/', body), 'x-request-id': given },
        body,
      });
      contract.check('POST', '/form/', accepted);
      expect(accepted.headers.get('x-request-id')).to.equal(given);
      const longest = 'r'.repeat(64);
      const refused = await fetchAnswer(`${base}/form/`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': longest },
        body,
      });
      expect((contract.check('POST', '/form/', refused) as JsonObject).request_id).to.equal(longest);
      for (const invalid of ['r'.repeat(65), 'has space', 'semi;colon']) {
        const answer = await fetchAnswer(`${base}/form/`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-request-id': invalid },
          body,
        });
        const problem = contract.check('POST', '/form/', answer) as JsonObject;
        expect(answer.headers.get('x-request-id'), invalid).to.match(
          /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
        );
        expect(problem.request_id).to.equal(answer.headers.get('x-request-id'));
      }
    });

    it('the documented signature vector is accepted by the service', async () => {
      const description = String(at(document, 'components.securitySchemes.uiSignature.description'));
      const vector = /`([0-9a-f]{64})`/.exec(description)![1]!;
      // Past the signature check: refused for its body (no data), not for the signature.
      const answer = await post(base, '/form/', '{}', { signature: vector });
      expect(answer.status, answer.text).to.equal(400);
      contract.check('POST', '/form/', answer);
    });

    it('200 on /healthz/live and /healthz/ready', async () => {
      for (const path of ['/healthz/live', '/healthz/ready']) {
        const answer = await fetchAnswer(base + path);
        expect(answer.status, path).to.equal(200);
        contract.check('GET', path, answer);
      }
    });

    it('200 on /metrics: Prometheus text with the documented form_data_* families', async () => {
      // One accepted form first, so counters with labels have samples too.
      expect((await post(base, '/form/', jsonBody(exampleForm()))).status).to.equal(202);
      const answer = await fetchAnswer(`${base}/metrics`);
      expect(answer.status).to.equal(200);
      contract.check('GET', '/metrics', answer);
      const names = [...String(metricsDescription(document)).matchAll(/`(form_data_\w+)/g)].map((m) => m[1]!);
      expect(names.length).to.be.at.least(8);
      const exposed = [...answer.text.matchAll(/^# TYPE (form_data_\w+) /gm)].map((m) => m[1]!);
      expect(exposed.sort()).to.deep.equal([...names].sort());
      expect(answer.text).to.match(/^process_cpu_seconds_total /m);
    });

    it('the documented form schema and the server agree, at and past each documented limit', async () => {
      const formSchema = { $ref: '#/components/schemas/FormData' };
      const fieldMax = at(contract.schema('FieldText'), 'maxLength') as number;
      const extraMax = at(contract.schema('ExtraScalar'), 'maxLength') as number;
      const keyMax = at(contract.schema('Key'), 'maxLength') as number;
      const keysMax = at(contract.schema('FormData'), 'maxProperties') as number;
      const listMax = listLimit(contract);
      const depth = extraDepth(contract);
      const form = exampleForm();
      const withKeys = (count: number): JsonObject => {
        const out = { ...form };
        for (let i = 0; Object.keys(out).length < count; i++) out[`extra_${i}`] = i;
        return out;
      };
      const nest = (levels: number): unknown => (levels === 0 ? 'leaf' : { level: nest(levels - 1) });
      const without = (key: string): JsonObject => Object.fromEntries(Object.entries(form).filter(([k]) => k !== key));
      const cases: [string, JsonObject, boolean][] = [
        ['the example', form, true],
        [`company_name of ${fieldMax} characters`, { ...form, company_name: 'c'.repeat(fieldMax) }, true],
        [`company_name of ${fieldMax + 1} characters`, { ...form, company_name: 'c'.repeat(fieldMax + 1) }, false],
        [`website of ${fieldMax + 1} characters`, { ...form, website: 'w'.repeat(fieldMax + 1) }, false],
        ['an empty company_name', { ...form, company_name: '' }, false],
        ['an empty phone_number', { ...form, phone_number: '' }, true],
        ['phone_number null', { ...form, phone_number: null }, false],
        ['website a number', { ...form, website: 42 }, false],
        ['company_name with NUL', { ...form, company_name: 'A\u0000B' }, false],
        ['e-mail addresses that are not addresses', { ...form, email_address1: 'nope', email_address2: 'nope' }, false],
        ['exporting false', { ...form, exporting: false }, true],
        ['exporting "False"', { ...form, exporting: 'False' }, true],
        ['exporting "true"', { ...form, exporting: 'true' }, false],
        ['agree_terms false', { ...form, agree_terms: false }, false],
        ['agree_terms "True"', { ...form, agree_terms: 'True' }, false],
        ['opt_in "yes"', { ...form, opt_in: 'yes' }, false],
        ['marketing_source an empty list', { ...form, marketing_source: [] }, true],
        [
          `marketing_source a list of ${listMax}`,
          { ...form, marketing_source: Array.from({ length: listMax }, (_, i) => `s${i}`) },
          true,
        ],
        [
          `marketing_source a list of ${listMax + 1}`,
          { ...form, marketing_source: Array.from({ length: listMax + 1 }, (_, i) => `s${i}`) },
          false,
        ],
        ['marketing_source a list with a number', { ...form, marketing_source: ['a', 1] }, false],
        [
          `marketing_source of ${fieldMax + 1} characters`,
          { ...form, marketing_source: 'm'.repeat(fieldMax + 1) },
          false,
        ],
        [`an extra string of ${extraMax} characters`, { ...form, note: 'n'.repeat(extraMax) }, true],
        [`an extra string of ${extraMax + 1} characters`, { ...form, note: 'n'.repeat(extraMax + 1) }, false],
        [`an extra list of ${listMax + 1}`, { ...form, list: Array.from({ length: listMax + 1 }, (_, i) => i) }, false],
        [`extra objects nested ${depth} levels`, { ...form, nested: nest(depth) }, true],
        [`extra objects nested ${depth + 1} levels`, { ...form, nested: nest(depth + 1) }, false],
        [`a key of ${keyMax} characters`, { ...form, ['k'.repeat(keyMax)]: 1 }, true],
        [`a key of ${keyMax + 1} characters`, { ...form, ['k'.repeat(keyMax + 1)]: 1 }, false],
        ['a key "constructor"', { ...form, constructor: 1 }, false],
        ['a nested key "prototype"', { ...form, nested: { prototype: 1 } }, false],
        [`${keysMax} keys`, withKeys(keysMax), true],
        [`${keysMax + 1} keys`, withKeys(keysMax + 1), false],
        ...REQUIRED_FIELDS.map((key): [string, JsonObject, boolean] => [`without ${key}`, without(key), false]),
        ...OPTIONAL_FIELDS.map((key): [string, JsonObject, boolean] => [`without ${key}`, without(key), true]),
      ];
      for (const [name, data, accepted] of cases) {
        const documentSays = contract.errors(formSchema, data).length === 0;
        const answer = await post(base, '/form/', jsonBody(data));
        contract.check('POST', '/form/', answer);
        expect(
          { document: documentSays, server: answer.status === 202 },
          `${name}: ${answer.text.slice(0, 300)}`,
        ).to.deep.equal({ document: accepted, server: accepted });
      }
    });

    it('the server enforces the limits the description states beyond JSON Schema', async () => {
      const form = exampleForm();
      const fieldMax = at(contract.schema('FieldText'), 'maxLength') as number;
      // Keys of nested objects count towards the total.
      const extras: JsonObject = { holder: { a: 1, b: 2 } };
      for (let i = 0; Object.keys(form).length + Object.keys(extras).length < LIMITS.maxKeys; i++)
        extras[`extra_${i}`] = i;
      const tooManyKeys = { ...form, ...extras };
      expect(contract.errors({ $ref: '#/components/schemas/FormData' }, tooManyKeys)).to.deep.equal([]);
      // Lengths count characters (code points), as Django's max_length does: an emoji counts 1.
      const emoji = { ...form, company_name: '\u{1F600}'.repeat(fieldMax + 1) };
      // email_address2 must equal email_address1, ignoring case.
      const mismatch = { ...form, email_address2: 'someone.else@example.com' };
      for (const [name, data, field] of [
        ['nested keys', tooManyKeys, undefined],
        ['emoji', emoji, 'data.company_name'],
        ['e-mail mismatch', mismatch, 'data.email_address2'],
      ] as const) {
        const answer = await post(base, '/form/', jsonBody(data));
        expect(answer.status, name).to.equal(400);
        const problem = contract.check('POST', '/form/', answer) as { errors: { field: string; message: string }[] };
        if (field)
          expect(
            problem.errors.map((e) => e.field),
            name,
          ).to.include(field);
        else
          expect(problem.errors.map((e) => e.message).join(' '), name).to.include(`more than ${LIMITS.maxKeys} keys`);
      }
    });

    it('503 on /healthz/ready (and 200 on /healthz/live) once stop() begins', async () => {
      const { base: stopping, web } = await start(t.with({ SHUTDOWN_DELAY_MS: '1000' }));
      services.splice(services.indexOf(web), 1);
      const stopped = web.stop();
      try {
        const ready = await fetchAnswer(`${stopping}/healthz/ready`);
        expect(ready.status).to.equal(503);
        expect(contract.check('GET', '/healthz/ready', ready)).to.deep.include({
          status: 'error',
          error: { reason: 'shutting down' },
        });
        const live = await fetchAnswer(`${stopping}/healthz/live`);
        expect(live.status).to.equal(200);
        contract.check('GET', '/healthz/live', live);
      } finally {
        await stopped;
      }
    });

    it('503 on /healthz/live and /healthz/ready after SIGTERM (node services/web/main.ts)', async function () {
      this.timeout(30_000);
      const webPort = await freePort();
      const probe = (path: string): Promise<Answer> => fetchAnswer(`http://127.0.0.1:${webPort}${path}`);
      const child: ProcessHandle = startProcess(process.execPath, ['services/web/main.ts'], {
        ...t.env,
        PORT: String(webPort),
        SHUTDOWN_DELAY_MS: '3000',
        LOG_LEVEL: 'silent',
      });
      try {
        await eventually(
          async () => ((await probe('/healthz/live')).status === 200 ? true : undefined),
          15_000,
          'the web to listen',
        );
        child.kill('SIGTERM');
        const live = await eventually(
          async () => {
            const answer = await probe('/healthz/live');
            return answer.status === 503 ? answer : undefined;
          },
          5000,
          'liveness to fail',
        );
        expect(contract.check('GET', '/healthz/live', live)).to.deep.equal({ status: 'error' });
        const ready = await probe('/healthz/ready');
        expect(ready.status).to.equal(503);
        contract.check('GET', '/healthz/ready', ready);
        expect((await child.exited).code).to.equal(0);
      } finally {
        await child.ensureStopped();
      }
    });

    // Mocha runs a suite's own tests before its child suites: this one comes last.
    describe('coverage', () => {
      it('exercised every documented (method, path, status), response component and optional response header', () => {
        expect(contract.documentedTriples().length).to.be.at.least(30);
        expect(contract.missingTriples(), 'documented but never answered').to.deep.equal([]);
        expect(contract.unusedResponses(), 'response components never checked').to.deep.equal([]);
        expect(contract.unseenOptionalHeaders(), 'optional headers never seen').to.deep.equal([]);
      });
    });
  });
});

/** Items of a marketing_source list, as documented. */
function listLimit(contract: Contract): number {
  const variants = at(contract.schema('FormData'), 'properties.marketing_source.oneOf') as JsonObject[];
  const list = variants.find((v) => v.type === 'array');
  return at(list, 'maxItems') as number;
}

/** Levels of containers the documented extra values may nest (ExtraValue → … → ExtraScalar). */
function extraDepth(contract: Contract): number {
  let name = 'ExtraValue';
  for (let depth = 1; depth < 10; depth++) {
    const next = String(at(contract.schema(name), 'anyOf.2.additionalProperties.$ref'))
      .split('/')
      .at(-1)!;
    if (next === 'ExtraScalar') return depth;
    name = next;
  }
  throw new Error('ExtraValue levels do not end in ExtraScalar');
}

function metricsDescription(document: JsonObject): string {
  const paths = at(document, 'paths') as JsonObject;
  return String(at(paths['/metrics'], 'get.description'));
}
