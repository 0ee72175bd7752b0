/**
 * `npm run export`: the CSV of stored forms, checked by parsing it back, over
 * a real PostgreSQL database with the real migrations.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { migrationConfig } from '../migrations/config.ts';
import { createDatabase, type Knex } from '../services/common/db.ts';
import { parseExportArguments, parseInstant } from '../services/export/arguments.ts';
import { exportCommand, EXIT_PIPE_CLOSED } from '../services/export/command.ts';
import { InstantError, InterruptedError, UsageError } from '../services/export/errors.ts';
import { createExportDatabase } from '../services/export/repository.ts';
import { runExport, type ExportDependencies } from '../services/export/run.ts';
import { parseCsv, parseCsvObjects } from './support/csv.ts';
import { freePort } from '../harness/ports.ts';
import { runToEnd } from '../harness/process.ts';
import { createTestDatabase, type TestDatabase } from '../harness/postgres.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MAIN = path.join(ROOT, 'services/export/main.ts');

interface Collector {
  stream: PassThrough;
  text(): string;
}

function collector(isTTY = false): Collector & { stream: PassThrough & { isTTY: boolean } } {
  const stream = Object.assign(new PassThrough(), { isTTY });
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the export's entry point as a child process with exactly `env` (plus PATH and HOME). */
function runCli(args: readonly string[], env: Record<string, string>): Promise<CliResult> {
  return runToEnd(process.execPath, [MAIN, ...args], env, { cwd: ROOT });
}

describe('export: arguments', () => {
  it('reads dates as midnight UTC and timestamps with their zone', () => {
    expect(parseInstant('2016-07-21').iso).to.equal('2016-07-21T00:00:00.000000+00:00');
    expect(parseInstant('2016-07-21T10:00:00+01:00').epochMicros).to.equal(
      parseInstant('2016-07-21T09:00:00Z').epochMicros,
    );
    expect(parseInstant('2016-07-21T10:00+0130').iso).to.equal('2016-07-21T10:00:00.000000+01:30');
    expect(
      parseInstant('2016-07-21T10:00:00.5Z').epochMicros - parseInstant('2016-07-21T10:00:00Z').epochMicros,
    ).to.equal(500_000n);
    expect(parseInstant('2016-07-21 10:00:00.000001-05:00').iso).to.equal('2016-07-21T10:00:00.000001-05:00');
    expect(parseInstant('2016-02-29').iso).to.equal('2016-02-29T00:00:00.000000+00:00');
  });

  it('refuses impossible dates, a timestamp without a zone and other formats', () => {
    for (const text of [
      '2017-02-29',
      '2016-13-01',
      '2016-00-10',
      '0000-01-01',
      '2016-07-21T24:00Z',
      '2016-07-21T10:60Z',
      '2016-07-21T10:00:00',
      '2016-07-21T10:00+16:00',
      '21/07/2016',
      '2016-7-21',
      '',
      'yesterday',
      '2016-07-21T10:00:00.1234567Z',
    ]) {
      expect(() => parseInstant(text), text).to.throw(InstantError);
    }
    expect(() => parseInstant('2016-07-21T10:00:00')).to.throw(/no time zone/);
  });

  it('parses the options, with formula escaping on and the BOM off by default', () => {
    const parsed = parseExportArguments(['--since', '2016-07-21', '--until=2017-01-01', '-o', 'x.csv']);
    expect(parsed.kind).to.equal('export');
    if (parsed.kind !== 'export') return;
    expect(parsed.args).to.include({ output: 'x.csv', bom: false, escapeFormulas: true });
    expect(parsed.args.until?.iso).to.equal('2017-01-01T00:00:00.000000+00:00');
    const other = parseExportArguments(['--since', '2016-07-21', '--output', '-', '--bom', '--no-escape-formulas']);
    expect(other.kind === 'export' && other.args).to.include({ output: undefined, bom: true, escapeFormulas: false });
    expect(parseExportArguments(['--since', 'nonsense', '--help']).kind).to.equal('help');
  });

  it('refuses missing, unknown, extra and contradictory arguments', () => {
    for (const argv of [
      [],
      ['--since'],
      ['--since', 'x'],
      ['--since', '2017-01-01', '--until', '2017-01-01'],
      ['--since', '2017-01-01', '--until', '2016-01-01'],
      ['--since', '2017-01-01', 'extra'],
      ['--since', '2017-01-01', '--bogus'],
      ['--since', '2017-01-01', '--output', ''],
    ]) {
      expect(() => parseExportArguments(argv), argv.join(' ')).to.throw(UsageError);
    }
  });
});

describe('export', function () {
  this.timeout(60_000);
  let database: TestDatabase;
  let db: Knex;

  beforeEach(async () => {
    database = await createTestDatabase();
    db = createDatabase({ url: database.url, poolMax: 2, timeoutMs: 5000 });
    await db.migrate.latest(migrationConfig());
  });
  afterEach(async () => {
    await db?.destroy();
    await database?.drop();
  });

  /** A row as the worker writes it: `data` a JSON object. */
  async function insertObject(created: string, data: Record<string, unknown>): Promise<number> {
    const [row] = await db('form_form')
      .insert({ created, data: JSON.stringify(data) })
      .returning<{ id: number }[]>('id');
    return row!.id;
  }

  /** A row as the replaced service wrote it: `data` a JSON string holding `text`. */
  async function insertLegacy(created: string, text: string): Promise<number> {
    const [row] = await db('form_form')
      .insert({ created, data: db.raw('to_jsonb(?::text)', [text]) })
      .returning<{ id: number }[]>('id');
    return row!.id;
  }

  /** A row whose `data` is the given JSON text (any JSON type). */
  async function insertJson(created: string, json: string): Promise<number> {
    const [row] = await db('form_form').insert({ created, data: json }).returning<{ id: number }[]>('id');
    return row!.id;
  }

  async function exportCsv(
    bounds: { since: string; until?: string; bom?: boolean; escapeFormulas?: boolean },
    deps: Partial<Pick<ExportDependencies, 'afterKeyPass' | 'progress'>> = {},
  ) {
    const out = collector();
    const err = collector();
    const exportDb = createExportDatabase({ url: database.url, poolMax: 1, timeoutMs: 5000 });
    try {
      const summary = await runExport(
        {
          since: parseInstant(bounds.since),
          until: bounds.until === undefined ? undefined : parseInstant(bounds.until),
          bom: bounds.bom,
          escapeFormulas: bounds.escapeFormulas,
        },
        { db: exportDb, output: out.stream, stderr: err.stream, ...deps },
      );
      const text = out.text();
      return { summary, text, stderr: err.text(), ...parseCsvObjects(text) };
    } finally {
      await exportDb.destroy();
    }
  }

  it('writes created, then the sorted union of the data keys; a key a form lacks is an empty cell', async () => {
    await insertObject('2017-01-01T00:00:00Z', { b: 'b1', a: 'a1', B: 'B1' });
    await insertObject('2017-01-02T00:00:00Z', { é: 'e2', a: 'a2', '😀': 'smile', Ａ: 'fullwidth', '': 'empty key' });
    const { header, rows, summary, text } = await exportCsv({ since: '2016-07-21' });
    // Code point order, as Python's sorted: U+FF21 (Ａ) before U+1F600 (😀), unlike UTF-16 order.
    expect(header).to.deep.equal(['created', '', 'B', 'a', 'b', 'é', 'Ａ', '😀']);
    expect(rows).to.deep.equal([
      { created: '2017-01-01T00:00:00.000000Z', '': '', B: 'B1', a: 'a1', b: 'b1', é: '', Ａ: '', '😀': '' },
      {
        created: '2017-01-02T00:00:00.000000Z',
        '': 'empty key',
        B: '',
        a: 'a2',
        b: '',
        é: 'e2',
        Ａ: 'fullwidth',
        '😀': 'smile',
      },
    ]);
    expect(summary).to.deep.include({ rows: 2, columns: 8, skipped: 0, skippedRows: [] });
    expect(text.startsWith('"created",')).to.equal(true, 'no BOM by default');
    expect(text.endsWith('\r\n')).to.equal(true);
  });

  it('writes only the header when no row is in the bounds', async () => {
    await insertObject('2015-01-01T00:00:00Z', { a: '1' });
    const { text, summary } = await exportCsv({ since: '2016-07-21' });
    expect(text).to.equal('"created"\r\n');
    expect(summary).to.deep.include({ rows: 0, columns: 1 });
  });

  it('reads both storage shapes: a JSON object and the legacy JSON string holding one', async () => {
    await insertObject('2017-01-01T00:00:00Z', { company_name: 'New Ltd', opt_in: true });
    await insertLegacy(
      '2016-08-01T00:00:00Z',
      JSON.stringify({ company_name: 'Old Ltd', exporting: 'True', legacy_only: 'x' }),
    );
    const { header, rows } = await exportCsv({ since: '2016-07-21' });
    expect(header).to.deep.equal(['created', 'company_name', 'exporting', 'legacy_only', 'opt_in']);
    expect(rows).to.deep.equal([
      {
        created: '2016-08-01T00:00:00.000000Z',
        company_name: 'Old Ltd',
        exporting: 'True',
        legacy_only: 'x',
        opt_in: '',
      },
      {
        created: '2017-01-01T00:00:00.000000Z',
        company_name: 'New Ltd',
        exporting: '',
        legacy_only: '',
        opt_in: 'true',
      },
    ]);
  });

  it("reads the rows of the original v1.0.4's worker (the whole message body) into the same columns as new rows", async () => {
    const form = { company_name: 'Body Ltd', exporting: 'True', employees: 12 };
    // v1.0.4: {"data": "<the form as a JSON string>"} (its form/tests/test_queue.py); a body whose data is an object;
    // one of this project's messages stored whole (the original's worker reading the form queue).
    await insertObject('2016-09-01T00:00:00Z', { data: JSON.stringify(form) });
    await insertObject('2016-09-02T00:00:00Z', { data: { ...form, company_name: 'Object Body Ltd' } });
    await insertObject('2016-09-03T00:00:00Z', {
      data: { ...form, company_name: 'New Message Ltd' },
      received_at: '2026-01-01T00:00:00.000Z',
      request_id: 'r1',
      submission_id: '5f0c6a1e-8f3a-4a8e-9d57-0c1f3b1f7a10',
    });
    await insertObject('2017-01-01T00:00:00Z', { ...form, company_name: 'New Ltd' });
    // A form with a key "data" among its own keys is a form, not a body.
    await insertObject('2017-01-02T00:00:00Z', { company_name: 'Has Data Key Ltd', data: 'kept' });
    const notJson = await insertObject('2017-01-03T00:00:00Z', { data: 'not json' });
    const { header, rows, summary } = await exportCsv({ since: '2016-07-21' });
    expect(header).to.deep.equal(['created', 'company_name', 'data', 'employees', 'exporting']);
    expect(rows.map((r) => [r.company_name, r.employees, r.exporting, r.data])).to.deep.equal([
      ['Body Ltd', '12', 'True', ''],
      ['Object Body Ltd', '12', 'True', ''],
      ['New Message Ltd', '12', 'True', ''],
      ['New Ltd', '12', 'True', ''],
      ['Has Data Key Ltd', '', '', 'kept'],
    ]);
    expect(summary.skippedRows).to.deep.equal([
      { id: notJson, reason: 'data holds a message body whose data is a string that is not JSON' },
    ]);
  });

  it('exports since (inclusive) until (exclusive), ordered by created then id, with created in UTC to the microsecond', async () => {
    await insertObject('2016-07-20T23:59:59.999999Z', { n: 'before since' });
    const second = await insertObject('2016-07-21T00:00:00Z', { n: 'at since (second id)' });
    const first = await insertObject('2016-07-21T00:00:00Z', { n: 'at since (first id)' });
    await insertObject('2016-12-31T23:59:59.999999Z', { n: 'last before until' });
    await insertObject('2017-01-01T00:00:00Z', { n: 'at until' });
    await insertObject('2016-09-01T12:30:00.123456+02:00', { n: 'offset' });
    expect(first).to.be.greaterThan(second);
    const { rows } = await exportCsv({ since: '2016-07-21', until: '2017-01-01' });
    expect(rows.map((r) => [r.created, r.n])).to.deep.equal([
      ['2016-07-21T00:00:00.000000Z', 'at since (second id)'],
      ['2016-07-21T00:00:00.000000Z', 'at since (first id)'],
      ['2016-09-01T10:30:00.123456Z', 'offset'],
      ['2016-12-31T23:59:59.999999Z', 'last before until'],
    ]);
    const stamps = await exportCsv({ since: '2016-07-21T01:00:00+01:00', until: '2016-09-01T10:30:00.123457Z' });
    expect(stamps.rows.map((r) => r.n)).to.deep.equal(['at since (second id)', 'at since (first id)', 'offset']);
    const open = await exportCsv({ since: '2016-12-31T23:59:59.999999Z' });
    expect(open.rows.map((r) => r.n)).to.deep.equal(['last before until', 'at until']);
  });

  it('writes lists joined, objects and lists of objects as JSON, booleans and numbers as text, null as empty', async () => {
    await insertJson(
      '2017-01-01T00:00:00Z',
      JSON.stringify({
        marketing_source: ['Social media', 'Print'],
        numbers: [1, 2.5],
        mixed: ['a', null, true],
        empty_list: [],
        people: [{ name: 'Ann' }, { name: 'Bob' }],
        nested: { a: { b: [1, 'x'] } },
        agree: true,
        opt_in: false,
        nothing: null,
        count: 42,
        negative: -5,
      }).replace('"count":42', '"count":42,"decimal":1.50,"big":12345678901234567890'),
    );
    const { rows } = await exportCsv({ since: '2016-07-21' });
    expect(rows[0]).to.deep.equal({
      created: '2017-01-01T00:00:00.000000Z',
      agree: 'true',
      big: '12345678901234567890',
      count: '42',
      decimal: '1.50',
      empty_list: '',
      marketing_source: 'Social media, Print',
      mixed: 'a, , true',
      negative: '-5',
      nested: '{"a":{"b":[1,"x"]}}',
      nothing: '',
      numbers: '1, 2.5',
      opt_in: 'false',
      people: '[{"name":"Ann"},{"name":"Bob"}]',
    });
  });

  it('quotes commas, quotes, newlines and keeps unicode, so every value reads back as stored', async () => {
    const values = {
      comma: 'Smith, Jones & Co',
      quote: 'The "best" Ltd',
      newline: 'line one\nline two',
      crlf: 'first\r\nsecond',
      unicode: 'Zoë Ünïcødé — 東京 😀',
      spaces: '  padded  ',
      all: '"a, b"\n\'c\'',
    };
    await insertObject('2017-01-01T00:00:00Z', values);
    await insertLegacy('2017-01-02T00:00:00Z', JSON.stringify(values));
    const { rows, text } = await exportCsv({ since: '2016-07-21' });
    for (const row of rows) expect(row).to.deep.equal({ created: row.created, ...values });
    expect(text)
      .to.contain('"Smith, Jones & Co"')
      .and.contain('"The ""best"" Ltd"')
      .and.contain('"line one\nline two"');
  });

  it('prefixes cells a spreadsheet would run with a quote by default, and not with escapeFormulas false', async () => {
    await insertObject('2017-01-01T00:00:00Z', {
      f1: '=HYPERLINK("http://x")',
      f2: '+44 20 7946 0000',
      f3: '-1+2',
      f4: '@SUM(A1)',
      n: -5,
      safe: 'a=b',
    });
    const escaped = await exportCsv({ since: '2016-07-21' });
    expect(escaped.rows[0]).to.include({
      f1: '\'=HYPERLINK("http://x")',
      f2: "'+44 20 7946 0000",
      f3: "'-1+2",
      f4: "'@SUM(A1)",
      n: '-5',
      safe: 'a=b',
    });
    const raw = await exportCsv({ since: '2016-07-21', escapeFormulas: false });
    expect(raw.rows[0]).to.include({
      f1: '=HYPERLINK("http://x")',
      f2: '+44 20 7946 0000',
      f3: '-1+2',
      f4: '@SUM(A1)',
      n: '-5',
    });
  });

  it('starts with a UTF-8 BOM when asked', async () => {
    await insertObject('2017-01-01T00:00:00Z', { a: 'x' });
    const out = collector();
    const exportDb = createExportDatabase({ url: database.url, poolMax: 1, timeoutMs: 5000 });
    try {
      await runExport(
        { since: parseInstant('2016-07-21'), until: undefined, bom: true },
        { db: exportDb, output: out.stream, stderr: collector().stream },
      );
    } finally {
      await exportDb.destroy();
    }
    expect(out.text().startsWith('\uFEFF"created","a"\r\n')).to.equal(true);
  });

  it('renames a data key "created" so the header stays unique', async () => {
    await insertObject('2017-01-01T00:00:00Z', { created: 'by hand', a: '1' });
    const { header, rows } = await exportCsv({ since: '2016-07-21' });
    expect(header).to.deep.equal(['created', 'a', 'data.created']);
    expect(rows[0]).to.deep.equal({ created: '2017-01-01T00:00:00.000000Z', a: '1', 'data.created': 'by hand' });
  });

  it('skips, counts and names rows whose data is not a JSON object, and exports the rest', async () => {
    await insertObject('2017-01-01T00:00:00Z', { a: 'good' });
    const notJson = await insertLegacy('2017-01-02T00:00:00Z', 'not json {');
    const legacyArray = await insertLegacy('2017-01-03T00:00:00Z', '["x"]');
    const array = await insertJson('2017-01-04T00:00:00Z', '[1, 2]');
    const scalar = await insertJson('2017-01-05T00:00:00Z', '5');
    await insertLegacy('2017-01-06T00:00:00Z', JSON.stringify({ b: 'good legacy' }));
    const { rows, summary, header } = await exportCsv({ since: '2016-07-21' });
    expect(header).to.deep.equal(['created', 'a', 'b']);
    expect(rows.map((r) => r.a || r.b)).to.deep.equal(['good', 'good legacy']);
    expect(summary.skipped).to.equal(4);
    expect(summary.skippedRows).to.deep.equal([
      { id: notJson, reason: 'data is a string that is not JSON' },
      { id: legacyArray, reason: 'data is a string holding an array, not an object' },
      { id: array, reason: 'data is a JSON array, not an object' },
      { id: scalar, reason: 'data is a JSON number, not an object' },
    ]);

    const result = await runCli(['--since', '2016-07-21'], { DATABASE_URL: database.url });
    expect(result.code, result.stderr).to.equal(0);
    expect(result.stderr).to.contain(
      `export: skipped 4 rows whose data is not a JSON object: id ${notJson} (data is a string that is not JSON)`,
    );
    expect(result.stderr).to.match(/^export: 2 rows, 3 columns, 4 skipped, [\d.]+ s, written to standard output$/m);
    expect(parseCsv(result.stdout)).to.have.length(3);
  });

  it('reads both passes from one snapshot: a row inserted between them neither appears nor breaks the header', async () => {
    await insertObject('2017-01-01T00:00:00Z', { a: '1' });
    let inserted = 0;
    const result = await exportCsv(
      { since: '2016-07-21' },
      {
        afterKeyPass: async () => {
          inserted = await insertObject('2017-01-02T00:00:00Z', { late_key: 'x' });
          await db('form_form').where({ created: '2017-01-01T00:00:00Z' }).del();
        },
      },
    );
    expect(inserted).to.be.greaterThan(0);
    expect(result.header).to.deep.equal(['created', 'a']);
    expect(result.rows).to.deep.equal([{ created: '2017-01-01T00:00:00.000000Z', a: '1' }]);
    // Committed and in the bounds: an export started now sees the change.
    const later = await exportCsv({ since: '2016-07-21' });
    expect(later.header).to.deep.equal(['created', 'late_key']);
  });

  it("is not stopped by the database's statement or idle-in-transaction timeouts", async () => {
    await db.raw(`INSERT INTO form_form (created, data)
      SELECT timestamptz '2017-01-01' + g * interval '1 second', jsonb_build_object('k' || (g % 40), repeat('x', 200), 'n', g)
      FROM generate_series(1, 50000) g`);
    const name = new URL(database.url).pathname.slice(1);
    await db.raw(`ALTER DATABASE ${name} SET statement_timeout = '5ms'`);
    await db.raw(`ALTER DATABASE ${name} SET idle_in_transaction_session_timeout = '200ms'`);
    const plain = new pg.Client({ connectionString: database.url });
    await plain.connect();
    try {
      let error: unknown;
      await plain.query('SELECT pg_sleep(0.05)').catch((e: unknown) => (error = e));
      expect(String(error), 'the database default applies to a plain session').to.match(/statement timeout/);
    } finally {
      await plain.end();
    }
    // The export's session idles in its transaction between the passes for longer than the timeout.
    const idleLongEnough = async (): Promise<void> => {
      for (;;) {
        const r = await db.raw<{ rows: { idle: boolean }[] }>(
          `SELECT clock_timestamp() - state_change > interval '400 ms' AS idle FROM pg_stat_activity
           WHERE datname = current_database() AND application_name = 'form-data-export' AND state = 'idle in transaction'`,
        );
        if (r.rows.length === 0) throw new Error('the export session is gone or not idle in its transaction');
        if (r.rows[0]!.idle) return;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    const { summary } = await exportCsv({ since: '2016-07-21' }, { afterKeyPass: idleLongEnough });
    expect(summary).to.deep.include({ rows: 50000, columns: 42 });
  });

  it('draws progress on stderr only when it is a terminal, and always ends with a summary line', async () => {
    await insertObject('2017-01-01T00:00:00Z', { a: '1' });
    await insertObject('2017-01-02T00:00:00Z', { a: '2' });
    const env = { DATABASE_URL: database.url };
    const tty = { out: collector(), err: collector(true) };
    expect(
      await exportCommand({ argv: ['--since', '2016-07-21'], env, stdout: tty.out.stream, stderr: tty.err.stream }),
    ).to.equal(0);
    expect(tty.err.text())
      .to.contain('\r\u001b[Kexport: collecting the keys of 2 rows')
      .and.contain('\r\u001b[Kexport: 2 / 2 rows (100%)');
    expect(tty.err.text()).to.match(/export: 2 rows, 2 columns, 0 skipped, [\d.]+ s, written to standard output\n$/);
    expect(parseCsv(tty.out.text())).to.have.length(3);

    const pipe = { out: collector(), err: collector(false) };
    expect(
      await exportCommand({ argv: ['--since', '2016-07-21'], env, stdout: pipe.out.stream, stderr: pipe.err.stream }),
    ).to.equal(0);
    expect(pipe.err.text()).to.match(/^export: 2 rows, 2 columns, 0 skipped, [\d.]+ s, written to standard output\n$/);
    // Both on one terminal: progress would mix with the CSV.
    const screen = { out: collector(true), err: collector(true) };
    expect(
      await exportCommand({
        argv: ['--since', '2016-07-21'],
        env,
        stdout: screen.out.stream,
        stderr: screen.err.stream,
      }),
    ).to.equal(0);
    expect(screen.err.text()).to.not.contain('\r');
  });

  describe('the command line', () => {
    let dir: string;
    beforeEach(async () => {
      dir = await mkdtemp(path.join(tmpdir(), 'form-data-export-'));
    });
    afterEach(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('writes --output through a temporary file renamed at the end (end to end, as a child process)', async () => {
      await insertObject('2017-01-01T00:00:00Z', { company_name: 'A, Ltd' });
      await insertLegacy('2017-01-02T00:00:00Z', JSON.stringify({ company_name: 'B "Ltd"' }));
      const target = path.join(dir, 'forms.csv');
      await writeFile(target, 'an older export');
      const result = await runCli(['--since', '2016-07-21', '--until', '2017-01-03T00:00:00Z', '--output', target], {
        DATABASE_URL: database.url,
      });
      expect(result.code, result.stderr).to.equal(0);
      expect(result.stdout).to.equal('');
      expect(result.stderr).to.match(
        new RegExp(
          `^export: 2 rows, 2 columns, 0 skipped, [\\d.]+ s, written to ${target.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\n$`,
        ),
      );
      expect(await readdir(dir)).to.deep.equal(['forms.csv']);
      expect((await stat(target)).mode & 0o777).to.equal(0o600);
      expect(parseCsvObjects(await readFile(target, 'utf8')).rows).to.deep.equal([
        { created: '2017-01-01T00:00:00.000000Z', company_name: 'A, Ltd' },
        { created: '2017-01-02T00:00:00.000000Z', company_name: 'B "Ltd"' },
      ]);
    });

    it('exits 2 with one line and the usage on bad arguments or configuration; --help exits 0', async () => {
      const env = { DATABASE_URL: database.url };
      const cases: [string[], Record<string, string>, RegExp][] = [
        [[], env, /--since is required/],
        [['--since', '21/07/2016'], env, /--since: "21\/07\/2016" is not a date/],
        [['--since', '2017-01-01', '--until', '2016-01-01'], env, /--until .* must be after --since/],
        [['--since', '2017-01-01', '--frobnicate'], env, /frobnicate/],
        [['--since', '2017-01-01T10:00'], env, /no time zone/],
        [
          ['--since', '2017-01-01'],
          { DATABASE_URL: 'mysql://db/x' },
          /invalid configuration: DATABASE_URL="mysql:\/\/db\/x"/,
        ],
      ];
      const results = await Promise.all(cases.map(([args, e]) => runCli(args, e)));
      results.forEach((result, i) => {
        const [args, , message] = cases[i]!;
        expect(result.code, args.join(' ')).to.equal(2);
        expect(result.stdout, args.join(' ')).to.equal('');
        const lines = result.stderr.trimEnd().split('\n');
        expect(lines, args.join(' ')).to.have.length(1);
        expect(lines[0])
          .to.match(/^export: /)
          .and.match(message);
        if (i < 5) expect(lines[0]).to.contain('usage: export --since DATE');
      });
      const help = await runCli(['--help'], {});
      expect(help.code).to.equal(0);
      expect(help.stdout).to.contain('usage: export --since DATE').and.contain('Exit codes');
    });

    it('exits 1 with one line when the database cannot be reached, leaving an existing file as it was', async () => {
      const target = path.join(dir, 'forms.csv');
      await writeFile(target, 'an older export');
      const port = await freePort();
      const result = await runCli(['--since', '2016-07-21', '--output', target], {
        DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/nowhere`,
        DATABASE_TIMEOUT_MS: '2000',
      });
      expect(result.code).to.equal(1);
      expect(result.stdout).to.equal('');
      expect(result.stderr).to.match(
        /^export: database open snapshot failed: .*ECONNREFUSED.*; nothing was written to .*forms\.csv\n$/,
      );
      expect(await readdir(dir)).to.deep.equal(['forms.csv']);
      expect(await readFile(target, 'utf8')).to.equal('an older export');
    });

    it('exits 1 before reading anything when --output cannot be written', async () => {
      for (const target of [dir, path.join(dir, 'missing', 'forms.csv')]) {
        const err = collector();
        const code = await exportCommand({
          argv: ['--since', '2016-07-21', '--output', target],
          env: { DATABASE_URL: database.url },
          stdout: collector().stream,
          stderr: err.stream,
        });
        expect(code, target).to.equal(1);
        expect(err.text()).to.match(
          new RegExp(`^export: writing ${target.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} failed: .+\n$`),
        );
      }
      expect(await readdir(dir)).to.deep.equal([]);
    });

    it('leaves no file when the database fails during the export', async () => {
      await insertObject('2017-01-01T00:00:00Z', { a: '1' });
      const target = path.join(dir, 'forms.csv');
      const err = collector();
      const code = await exportCommand({
        argv: ['--since', '2016-07-21', '--output', target],
        env: { DATABASE_URL: database.url },
        stdout: collector().stream,
        stderr: err.stream,
        afterKeyPass: async () => {
          const partial = (await readdir(dir)).filter((f) => f.endsWith('.partial'));
          expect(partial, 'the temporary file exists while the export runs').to.have.length(1);
          await db.raw(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'form-data-export'",
          );
        },
      });
      expect(code).to.equal(1);
      expect(err.text()).to.match(/^export: database .*; nothing was written to .*forms\.csv\n$/);
      expect(await readdir(dir)).to.deep.equal([]);
    });

    it('stops on a signal (the abort of its signal) with 128 + its number and no file', async () => {
      await insertObject('2017-01-01T00:00:00Z', { a: '1' });
      const target = path.join(dir, 'forms.csv');
      const controller = new AbortController();
      const err = collector();
      const code = await exportCommand({
        argv: ['--since', '2016-07-21', '--output', target],
        env: { DATABASE_URL: database.url },
        stdout: collector().stream,
        stderr: err.stream,
        signal: controller.signal,
        afterKeyPass: async () => controller.abort(new InterruptedError('SIGINT')),
      });
      expect(code).to.equal(130);
      expect(err.text()).to.equal(`export: interrupted by SIGINT; nothing was written to ${target}\n`);
      expect(await readdir(dir)).to.deep.equal([]);
    });

    it('exits 141 with one line and no stack trace when the reader of stdout goes away', async () => {
      await db.raw(`INSERT INTO form_form (created, data)
        SELECT timestamptz '2017-01-01' + g * interval '1 second', jsonb_build_object('company_name', repeat('x', 200), 'n', g)
        FROM generate_series(1, 20000) g`);
      const child = spawn(process.execPath, [MAIN, '--since', '2016-07-21'], {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', DATABASE_URL: database.url },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const err: Buffer[] = [];
      child.stderr.on('data', (c: Buffer) => err.push(c));
      // Like `| head -1`: read a first chunk, then close the pipe while the export has megabytes left to write.
      child.stdout.once('data', () => child.stdout.destroy());
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      const stderr = Buffer.concat(err).toString('utf8');
      expect(code, stderr).to.equal(EXIT_PIPE_CLOSED);
      expect(stderr).to.equal('export: standard output was closed before the export finished (EPIPE)\n');
    });
  });
});
