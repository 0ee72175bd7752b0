import { expect } from 'chai';
import { readFile } from 'node:fs/promises';
import {
  allowedOf,
  assertWebConfig,
  loadConfig,
  MIN_SECRET_LENGTH,
  SETTINGS,
  type Setting,
} from '../../services/common/config.ts';
import { redactValue } from '../../services/common/env.ts';
import { ConfigError } from '../../services/common/errors.ts';
import { createWebMetrics } from '../../services/web/metrics.ts';
import { createWorkerMetrics } from '../../services/worker/metrics.ts';
import type { Registry } from 'prom-client';
import { section, settingRow, settingsTable, tableRows } from '../support/markdown.ts';

const readDoc = (file: string): Promise<string> => readFile(new URL(`../../${file}`, import.meta.url), 'utf8');

async function tableOf(file: string, title: string): Promise<string[][]> {
  return tableRows(section(await readDoc(file), title));
}

describe('configuration', () => {
  it('defaults to the values of the replaced service', () => {
    const c = loadConfig({});
    expect(c.sqs).to.include({
      region: 'eu-west-1',
      formQueueName: 'directory-form-data',
      invalidQueueName: 'directory-form-data-invalid',
      waitTimeSeconds: 20,
      maxNumberOfMessages: 10,
      visibilityTimeoutSeconds: 21600,
      endpoint: undefined,
      createQueues: false,
    });
    expect(c.database.url).to.equal('postgres://test:test@localhost:5432/directory-form-data-test');
    expect(c.web).to.include({ port: 8000, uiSecret: undefined, signatureCheck: true });
    expect(c.healthPort).to.equal(8001);
    expect(c.database.poolMax).to.equal(2);
    expect(c.worker).to.include({ insertMaxRows: 100, insertWindowMs: 2 });
    expect(loadConfig({ WORKER_CONCURRENCY: '3' }).database.poolMax).to.equal(2);
    expect(loadConfig({ DATABASE_POOL_MAX: '4' }).database.poolMax).to.equal(4);
  });

  it('reads the misspelt invalid queue variable first and the corrected one too', () => {
    expect(loadConfig({ SQS_INVALID_MESSAGES_QUEUE_NAME: 'fixed' }).sqs.invalidQueueName).to.equal('fixed');
    expect(
      loadConfig({ SQS_INVALID_MESAGES_QUEUE_NAME: 'sic', SQS_INVALID_MESSAGES_QUEUE_NAME: 'fixed' }).sqs
        .invalidQueueName,
    ).to.equal('sic');
  });

  const refused: Array<[Record<string, string>, string]> = [
    [{ SQS_WAIT_TIME: '21' }, 'SQS_WAIT_TIME="21" is not allowed; expected an integer from 0 to 20'],
    [{ DATABASE_POOL_MAX: '0' }, 'DATABASE_POOL_MAX="0" is not allowed; expected an integer from 1 to 100'],
    [{ WORKER_INSERT_MAX_ROWS: '1001' }, 'an integer from 1 to 1000'],
    [{ SQS_WAIT_TIME: 'ten' }, 'SQS_WAIT_TIME="ten"'],
    [{ SQS_MAX_NUMBER_OF_MESSAGES: '0' }, 'an integer from 1 to 10'],
    [{ SQS_VISIBILITY_TIMEOUT: '43201' }, 'an integer from 0 to 43200'],
    [{ SQS_VISIBILITY_TIMEOUT: '1.5' }, 'SQS_VISIBILITY_TIMEOUT'],
    [{ PORT: '70000' }, 'PORT="70000"'],
    [{ SQS_CREATE_QUEUES: 'maybe' }, 'true or false'],
    [{ LOG_LEVEL: 'loud' }, 'one of fatal, error'],
    [{ SQS_ENDPOINT_URL: 'localhost:4566' }, 'a URL starting with http: or https:'],
    [{ DATABASE_URL: 'mysql://u:secret@h/db' }, 'DATABASE_URL="mysql://u:***@h/db"'],
    [{ SQS_FORM_DATA_QUEUE_NAME: 'no spaces' }, 'queue name'],
    [{ SQS_RETRY_BACKOFF_BASE_SECONDS: '10', SQS_RETRY_BACKOFF_MAX_SECONDS: '5' }, 'SQS_RETRY_BACKOFF_MAX_SECONDS'],
  ];
  for (const [env, message] of refused) {
    it(`refuses ${JSON.stringify(env)} naming the variable, the value and what is allowed`, () => {
      expect(() => loadConfig(env)).to.throw(ConfigError, message);
    });
  }

  it('never shows a database password in an error', () => {
    expect(() => loadConfig({ DATABASE_URL: 'mysql://user:hunter2@host/db' }))
      .to.throw(ConfigError)
      .with.property('message')
      .that.does.not.contain('hunter2');
  });

  it('refuses to run the web without UI_SECRET unless signatures are explicitly off', () => {
    expect(() => assertWebConfig(loadConfig({}))).to.throw(ConfigError, 'UI_SECRET');
    expect(() => assertWebConfig(loadConfig({ DISABLE_SIGNATURE_CHECK: 'true' }))).not.to.throw();
    expect(() => assertWebConfig(loadConfig({ UI_SECRET: 's'.repeat(MIN_SECRET_LENGTH) }))).not.to.throw();
  });

  it('refuses a secret shorter than the minimum unless allowed for compatibility, and then says why in a warning', () => {
    const short = 's'.repeat(MIN_SECRET_LENGTH - 1);
    for (const env of [{ UI_SECRET: short }, { UI_SECRET: 'x'.repeat(MIN_SECRET_LENGTH), UI_SECRET_NEXT: short }]) {
      expect(() => assertWebConfig(loadConfig(env)))
        .to.throw(ConfigError, `at least ${MIN_SECRET_LENGTH} characters`)
        .with.property('message')
        .that.does.not.contain(short);
    }
    const warnings = assertWebConfig(loadConfig({ UI_SECRET: short, UI_SECRET_ALLOW_SHORT: 'true' }));
    expect(warnings).to.have.length(1);
    expect(warnings[0]).to.include({ code: 'FD_SHORT_SECRET_ALLOWED' });
    expect(warnings[0]!.message).to.contain('UI_SECRET').and.not.contain(short);
  });

  it('reads the accepted signature schemes and bounds the v1 tolerance by the idempotency window', () => {
    const secret = { UI_SECRET: 'x'.repeat(MIN_SECRET_LENGTH) };
    expect(loadConfig(secret).web.signatureSchemes).to.deep.equal(['legacy', 'v1']);
    expect(loadConfig({ SIGNATURE_SCHEMES: ' V1 ' }).web.signatureSchemes).to.deep.equal(['v1']);
    expect(() => loadConfig({ SIGNATURE_SCHEMES: 'v1,hmac' })).to.throw(ConfigError, 'one or more of legacy, v1');
    expect(() => loadConfig({ SIGNATURE_SCHEMES: ',' })).to.throw(ConfigError, 'SIGNATURE_SCHEMES');
    expect(() =>
      assertWebConfig(loadConfig({ ...secret, IDEMPOTENCY_WINDOW_SECONDS: '60', SIGNATURE_TOLERANCE_SECONDS: '61' })),
    ).to.throw(ConfigError, 'SIGNATURE_TOLERANCE_SECONDS');
    expect(() =>
      assertWebConfig(
        loadConfig({
          ...secret,
          IDEMPOTENCY_WINDOW_SECONDS: '60',
          SIGNATURE_TOLERANCE_SECONDS: '61',
          SIGNATURE_SCHEMES: 'legacy',
        }),
      ),
    ).not.to.throw();
  });

  // The reproductions of issue 20: each printed the secret.
  const leaks: [Record<string, string>, string][] = [
    [{ DATABASE_URL: 'postgresql+psycopg2://:hunter2@db/x' }, 'DATABASE_URL'],
    [{ DATABASE_URL: 'mysql://user:hun@ter2@db/x' }, 'DATABASE_URL'],
    [{ DATABASE_URL: 'mysql://db/x?password=hunter2' }, 'DATABASE_URL'],
    [{ DATABASE_URL: 'mysql://db/x?sslmode=require&sslpassword=hunter2' }, 'DATABASE_URL'],
    [{ DATABASE_URL: 'user:hunter2@db/x' }, 'DATABASE_URL'],
    [{ SENTRY_DSN: 'htps://hunter2@o1.ingest.sentry.io/42' }, 'SENTRY_DSN'],
    [{ SENTRY_DSN: 'https://o1.ingest.sentry.io/hunter2' }, 'SENTRY_DSN'],
    [{ SQS_ENDPOINT_URL: 'ftp://u:hunter2@sqs' }, 'SQS_ENDPOINT_URL'],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'ftp://u:hunter2@collector' }, 'OTEL_EXPORTER_OTLP_ENDPOINT'],
    [{ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'ftp://collector/?token=hunter2' }, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'],
    [{ OTEL_EXPORTER_OTLP_HEADERS: 'api-key=hunter2,broken' }, 'OTEL_EXPORTER_OTLP_HEADERS'],
  ];
  for (const [env, variable] of leaks) {
    it(`names ${variable} but never shows the secret in ${JSON.stringify(Object.values(env)[0])}`, () => {
      expect(() => loadConfig(env))
        .to.throw(ConfigError, variable)
        .with.property('message')
        .that.does.not.match(/hunter2|hun@ter2|ter2/);
    });
  }

  it('keeps what is not a credential visible in a refused URL', () => {
    expect(() => loadConfig({ DATABASE_URL: 'mysql://user:hunter2@db:5432/x?sslmode=require' })).to.throw(
      ConfigError,
      'DATABASE_URL="mysql://user:***@db:5432/x?sslmode=require"',
    );
    expect(redactValue('DATABASE_URL', 'postgresql+psycopg2://:hunter2@db/x')).to.equal(
      'postgresql+psycopg2://:***@db/x',
    );
    expect(redactValue('DATABASE_URL', 'mysql://user:hun@ter2@db/x')).to.equal('mysql://user:***@db/x');
    expect(redactValue('DATABASE_URL', 'mysql://db/x?password=hunter2&a=b')).to.equal('mysql://db/x?password=***&a=b');
    expect(redactValue('UI_SECRET', 'anything')).to.equal('***');
  });

  it('README configuration table matches the settings the code reads', async () => {
    expect(settingsTable(await readDoc('README.md'), 'Configuration')).to.deep.equal(
      SETTINGS.map((s) => settingRow(s, allowedOf(s))),
    );
  });

  it('enforces the bounds SETTINGS declares: a changed bound changes what loadConfig accepts', () => {
    const ints = SETTINGS.filter((s): s is Extract<Setting, { kind: 'int' }> => s.kind === 'int');
    expect(ints.length).to.be.greaterThan(10);
    // The backoff cap must be at least the base: the base at its floor and the cap at its ceiling unless tried.
    const base = { SQS_RETRY_BACKOFF_BASE_SECONDS: '1', SQS_RETRY_BACKOFF_MAX_SECONDS: '43200' };
    for (const setting of ints) {
      const name = setting.names[0]!;
      const env = { ...base, [name]: String(setting.max) };
      expect(() => loadConfig(env), `${name}=${setting.max} as declared`).not.to.throw();
      const lowered = SETTINGS.map((s) => (s === setting ? { ...setting, max: setting.max - 1 } : s));
      expect(() => loadConfig(env, lowered), `${name}=${setting.max} once its max is ${setting.max - 1}`).to.throw(
        ConfigError,
        `${name}="${setting.max}" is not allowed; expected an integer from ${setting.min} to ${setting.max - 1}`,
      );
      const below = { ...base, [name]: String(setting.min - 1) };
      expect(() => loadConfig(below), `${name}=${setting.min - 1} as declared`).to.throw(ConfigError, name);
      if (name === 'SQS_RETRY_BACKOFF_MAX_SECONDS') continue; // below the base's floor whatever its own bounds
      const widened = SETTINGS.map((s) => (s === setting ? { ...setting, min: setting.min - 1 } : s));
      expect(loadConfig(below, widened), `${name}=${setting.min - 1} once its min is ${setting.min - 1}`).to.be.an(
        'object',
      );
    }
    const choices = SETTINGS.map((s) => (s.names[0] === 'LOG_FORMAT' ? { ...s, values: ['json'] } : s));
    expect(() => loadConfig({ LOG_FORMAT: 'pretty' }, choices)).to.throw(ConfigError, 'expected one of json');
  });

  it('every default in the table is accepted by the code', () => {
    const env = Object.fromEntries(SETTINGS.filter((s) => s.default !== 'none').map((s) => [s.names[0]!, s.default]));
    expect(() => loadConfig(env)).not.to.throw();
  });

  it('the metrics table of docs/metrics.md lists exactly the metrics the services register, with their types and labels', async () => {
    const rows = await tableOf('docs/metrics.md', 'Metrics');
    const documented = rows
      .map(
        ([name, service, type, labels]) =>
          `${service}:${name!.replaceAll('`', '')} ${type} ${labels === '—' ? '' : labels}`,
      )
      .sort();
    const sources = {
      loops: () => 1,
      busyLoops: () => 0,
      lastPollAt: () => 0,
      up: () => ({ sqs: true, database: true }),
    };
    const own = async (service: string, registry: Registry): Promise<string[]> => {
      const metrics = await registry.getMetricsAsJSON();
      return metrics
        .filter((m) => m.name.startsWith('form_data_'))
        .map((m) => {
          const labels = (registry.getSingleMetric(m.name) as unknown as { labelNames: string[] }).labelNames;
          return `${service}:${m.name} ${String(m.type)} ${labels.join(', ')}`;
        });
    };
    const web = await own('web', createWebMetrics(false).registry);
    const worker = await own('worker', createWorkerMetrics(sources, false).registry);
    expect(documented).to.deep.equal([...web, ...worker].sort());
  });
});
