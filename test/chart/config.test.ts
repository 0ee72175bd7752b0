/**
 * The chart's configuration matches the code's: the ConfigMap and Secret set
 * exactly the environment variables services/common/config.ts declares (plus
 * the AWS SDK's own credential variables), with the code's defaults and ranges.
 */
import { expect } from 'chai';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse } from 'yaml';
import { SETTINGS } from '../../services/common/config.ts';
import { CHART, find, render } from './helm.ts';

/** Read by the AWS SDK itself, not declared in SETTINGS. */
const AWS_SDK_VARIABLES = ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'];
const SECRET_SETTINGS = ['DATABASE_URL', 'UI_SECRET', 'UI_SECRET_NEXT', 'SENTRY_DSN'];

describe('chart configuration matches services/common/config.ts', function () {
  this.timeout(60_000);

  const declared = new Set(SETTINGS.flatMap((s) => s.names));
  const primary = SETTINGS.map((s) => s.names[0]!);

  async function renderedVariables(): Promise<{ config: Record<string, string>; secret: Record<string, string> }> {
    const manifests = await render({
      set: {
        'secrets.DATABASE_URL': 'postgres://u:p@db:5432/x',
        'secrets.UI_SECRET': 's',
        'secrets.UI_SECRET_NEXT': 'n',
        'secrets.WORKER_DATABASE_URL': 'postgres://w:p@db:5432/x',
        'secrets.AWS_ACCESS_KEY_ID': 'a',
        'secrets.AWS_SECRET_ACCESS_KEY': 'b',
        'secrets.SENTRY_DSN': 'https://key@sentry.example/1',
        'config.SQS_ENDPOINT_URL': 'http://sqs:4566',
        'config.SQS_ORIGINAL_QUEUE_NAME': 'directory-form-data-invalid',
        'config.SENTRY_ENVIRONMENT': 'staging',
        'config.DATABASE_WORKER_ROLE': 'form_data_worker',
        'config.DATABASE_EXPORT_ROLE': 'form_data_export',
      },
    });
    return {
      config: find(manifests, 'ConfigMap', 'form-data').data,
      // A Secret per component (docs/security.md); together they hold every secret setting.
      secret: {
        ...find(manifests, 'Secret', 'form-data-web').data,
        ...find(manifests, 'Secret', 'form-data-worker').data,
      },
    };
  }

  it('sets only declared settings (or the AWS SDK credentials) in the ConfigMap and Secret', async () => {
    const { config, secret } = await renderedVariables();
    for (const name of Object.keys(config))
      expect(declared.has(name), `ConfigMap key ${name} is not a setting`).to.equal(true);
    for (const name of Object.keys(secret))
      expect(declared.has(name) || AWS_SDK_VARIABLES.includes(name), `Secret key ${name}`).to.equal(true);
    expect(Object.keys(secret).sort()).to.deep.equal([...SECRET_SETTINGS, ...AWS_SDK_VARIABLES].sort());
    for (const name of SECRET_SETTINGS)
      expect(config, `${name} must not be in the ConfigMap`).to.not.have.property(name);
  });

  it('exposes every declared setting, non-secret ones in the ConfigMap', async () => {
    const { config, secret } = await renderedVariables();
    for (const name of primary) {
      const where = SECRET_SETTINGS.includes(name) ? secret : config;
      expect(where, `setting ${name}`).to.have.property(name);
    }
  });

  it('defaults to the code defaults', async () => {
    const values = parse(await readFile(path.join(CHART, 'values.yaml'), 'utf8')) as {
      config: Record<string, unknown>;
      web: { port: number; metricsPort: number };
      worker: { healthPort: number };
    };
    const chartDefaults: Record<string, string> = Object.fromEntries(
      Object.entries(values.config).map(([k, v]) => [k, String(v)]),
    );
    chartDefaults.PORT = String(values.web.port);
    chartDefaults.HEALTH_PORT = String(values.worker.healthPort);
    // The chart turns METRICS_PORT on (docs/security.md#network); the code's default keeps /metrics on PORT.
    expect(String(values.web.metricsPort)).to.match(/^\d+$/);
    for (const setting of SETTINGS) {
      const name = setting.names[0]!;
      if (SECRET_SETTINGS.includes(name) || name === 'METRICS_PORT') continue;
      const expected = setting.default === 'none' ? '' : setting.default;
      expect(chartDefaults[name], `values.yaml default of ${name}`).to.equal(expected);
    }
  });

  it('checks the same ranges and choices in values.schema.json', async () => {
    const schema = JSON.parse(await readFile(path.join(CHART, 'values.schema.json'), 'utf8')) as {
      properties: {
        config: { properties: Record<string, { type?: string; minimum?: number; maximum?: number; enum?: string[] }> };
      };
    };
    const props = schema.properties.config.properties;
    for (const setting of SETTINGS) {
      const name = setting.names[0]!;
      if ([...SECRET_SETTINGS, 'PORT', 'HEALTH_PORT', 'METRICS_PORT'].includes(name)) continue; // secrets; ports come from web.port / .metricsPort / worker.healthPort
      const prop = props[name];
      expect(prop, `schema of config.${name}`).to.not.equal(undefined);
      if (setting.kind === 'int') {
        expect(prop!.type, name).to.equal('integer');
        expect([prop!.minimum, prop!.maximum], name).to.deep.equal([setting.min, setting.max]);
      } else if (setting.kind === 'bool') {
        expect(prop!.type, name).to.equal('boolean');
      } else if (setting.kind === 'oneOf') {
        expect(prop!.enum, name).to.deep.equal([...setting.values]);
      } else {
        expect(prop!.type, name).to.equal('string');
      }
    }
    expect(Object.keys(props).sort()).to.deep.equal(
      primary.filter((n) => ![...SECRET_SETTINGS, 'PORT', 'HEALTH_PORT', 'METRICS_PORT'].includes(n)).sort(),
    );
  });
});
