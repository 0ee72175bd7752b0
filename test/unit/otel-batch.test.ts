/** The OTEL_BSP_* variables as the services read them for the BatchSpanProcessor (services/common/otel-batch.ts). */
import { expect } from 'chai';
import { readFile } from 'node:fs/promises';
import { ConfigError } from '../../services/common/errors.ts';
import { BATCH_SETTINGS, batchOptions } from '../../services/common/otel-batch.ts';
import { tableRows } from '../support/markdown.ts';

describe('OTEL_BSP_* (span batching)', () => {
  it("is the specification's defaults when unset or empty", () => {
    expect(batchOptions({})).to.deep.equal({
      scheduledDelayMillis: 5000,
      exportTimeoutMillis: 30000,
      maxQueueSize: 2048,
      maxExportBatchSize: 512,
    });
    expect(batchOptions({ OTEL_BSP_SCHEDULE_DELAY: ' ' }).scheduledDelayMillis).to.equal(5000);
  });

  it('reads each variable into its option', () => {
    expect(
      batchOptions({
        OTEL_BSP_SCHEDULE_DELAY: '200',
        OTEL_BSP_EXPORT_TIMEOUT: '1000',
        OTEL_BSP_MAX_QUEUE_SIZE: '64',
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '8',
      }),
    ).to.deep.equal({ scheduledDelayMillis: 200, exportTimeoutMillis: 1000, maxQueueSize: 64, maxExportBatchSize: 8 });
    expect(BATCH_SETTINGS.map((s) => s.name)).to.have.length(4);
  });

  it('refuses a malformed or out-of-range value, naming the variable', () => {
    for (const [name, value] of [
      ['OTEL_BSP_SCHEDULE_DELAY', 'soon'],
      ['OTEL_BSP_SCHEDULE_DELAY', '-1'],
      ['OTEL_BSP_EXPORT_TIMEOUT', '1.5'],
      ['OTEL_BSP_MAX_QUEUE_SIZE', '0'],
    ] as const) {
      expect(() => batchOptions({ [name]: value }), `${name}=${value}`)
        .to.throw(ConfigError)
        .with.property('variable', name);
    }
  });

  it('refuses a batch larger than the queue', () => {
    expect(() => batchOptions({ OTEL_BSP_MAX_QUEUE_SIZE: '10', OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '11' }))
      .to.throw(ConfigError)
      .with.property('variable', 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE');
  });
});

describe('docs/tracing.md: the span batching table', () => {
  it('lists every OTEL_BSP_* setting with its default and description', async () => {
    const markdown = await readFile(new URL('../../docs/tracing.md', import.meta.url), 'utf8');
    const rows = tableRows(
      markdown
        .split('\n')
        .map((l) => l.trimStart())
        .join('\n'),
    ).filter(([name]) => name?.startsWith('`OTEL_BSP_'));
    const documented = rows.map(([name, def, , what]) => ({ name: name!.replace(/`/g, ''), def, what }));
    expect(documented).to.deep.equal(
      BATCH_SETTINGS.map((s) => ({ name: s.name, def: String(s.default), what: s.description })),
    );
  });
});
