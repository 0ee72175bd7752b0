/**
 * Everything the registration UI accepts is accepted: forms that Django's own
 * validators accept (Django 3.2 from PyPI, in the original's virtualenv;
 * harness/original/python/ui_forms.py declares the UI's form fields and
 * writes what they clean to) are posted as the UI posts them, form-encoded
 * `data=json.dumps(cleaned_data)` with the legacy signature; each must be
 * answered 202 and stored as posted. UI_FORMS_SEED and UI_FORMS_COUNT repeat
 * or widen a run.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PYTHON_DIR } from '../harness/original/original.ts';
import { post } from '../harness/http.ts';
import { createWebService, type WebService } from '../services/web/service.ts';
import { createWorkerService, type WorkerService } from '../services/worker/service.ts';
import { useEmulator } from './support/emulator.ts';
import { useOriginal } from './support/original.ts';
import { createTestEnv, eventually, type TestEnv } from './support/stack.ts';

const run = promisify(execFile);
const FORM_TYPE = 'application/x-www-form-urlencoded';

describe("forms the registration UI's Django form accepts", function () {
  this.timeout(600_000);
  const emulator = useEmulator();
  const original = useOriginal();
  let t: TestEnv;
  let web: WebService | undefined;
  let worker: WorkerService | undefined;

  beforeEach(async () => {
    t = await createTestEnv(emulator.endpoint);
  });
  afterEach(async () => {
    await web?.stop();
    await worker?.stop();
    web = worker = undefined;
    await t.cleanup();
  });

  it('are each answered 202 and stored as posted', async () => {
    const seed = Number(process.env.UI_FORMS_SEED ?? randomInt(1, 2 ** 31));
    const count = Number(process.env.UI_FORMS_COUNT ?? 300);
    const generated = await run(
      original.python.python,
      [join(PYTHON_DIR, 'ui_forms.py'), String(count), String(seed), String(t.config.web.maxBodyBytes)],
      { maxBuffer: 256 * 1024 * 1024 },
    );
    const lines = generated.stdout.split('\n').filter((l) => l !== '');
    const summary = JSON.parse(generated.stderr.trim().split('\n').pop()!) as {
      emails: Record<string, number>;
      long_marketing_text: number;
      astral: number;
    };
    // Not vacuous: the kinds the issue names are among them.
    expect(lines.length).to.equal(count);
    expect(summary.emails.idn ?? 0, 'internationalised domains').to.be.above(0);
    expect((summary.emails.ipv4 ?? 0) + (summary.emails.ipv6 ?? 0), 'domain literals').to.be.above(0);
    expect(summary.long_marketing_text, 'marketing texts over 2,000 characters').to.be.above(0);

    web = await createWebService(t.config);
    const base = `http://127.0.0.1:${await web.listen()}`;
    worker = await createWorkerService(t.config);
    await worker.start();

    const posted = new Map<string, unknown>();
    const failures: { status: number; detail: string; data: string }[] = [];
    for (const line of lines) {
      const reply = await post(base, '/form/', new URLSearchParams({ data: line }).toString(), { type: FORM_TYPE });
      const body = reply.body as { submission_id?: string; detail?: string };
      if (reply.status === 202 && body.submission_id) posted.set(body.submission_id, JSON.parse(line));
      else failures.push({ status: reply.status, detail: body.detail ?? reply.text, data: line.slice(0, 500) });
    }
    const rows = await eventually(
      async () => {
        const found = await t
          .db('form_form')
          .whereIn('submission_id', [...posted.keys()])
          .select<{ submission_id: string; data: unknown }[]>('submission_id', 'data');
        return found.length === posted.size ? found : undefined;
      },
      120_000,
      'every accepted form stored',
    );
    const changed = rows.filter(
      (r) => JSON.stringify(sorted(r.data)) !== JSON.stringify(sorted(posted.get(r.submission_id))),
    );
    console.log(
      `      UI forms (seed ${seed}): ${lines.length} generated that Django accepts (${JSON.stringify(summary)}); ` +
        `202 ${posted.size}, stored ${rows.length}, stored changed ${changed.length}, failures ${failures.length}`,
    );
    expect(failures, 'forms Django accepts that the web refused').to.deep.equal([]);
    expect(
      changed.map((r) => r.submission_id),
      'forms stored otherwise than posted',
    ).to.deep.equal([]);
  });
});

/** The value with object keys in order, for comparing JSON regardless of key order. */
function sorted(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sorted);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.keys(value)
      .sort()
      .map((k) => [k, sorted((value as Record<string, unknown>)[k])]),
  );
}
