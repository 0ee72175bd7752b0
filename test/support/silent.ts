/**
 * What the silent-fault tests (the proxy's and the network namespace's)
 * share: forms queued straight onto the form queue, the check that each is
 * stored once, and waiting for a probe's answer.
 */
import { expect } from 'chai';
import { SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { validForm } from '../../harness/forms.ts';
import { queueCounts } from '../../harness/sqs.ts';
import { eventually, type TestEnv } from './stack.ts';

/** Queues `count` distinct forms named `<label> <i>` as the web would (an envelope); resolves with their names. */
export async function sendForms(t: TestEnv, count: number, label: string): Promise<string[]> {
  const { form } = await t.queueUrls();
  const names = Array.from({ length: count }, (_, i) => `${label} ${i}`);
  for (let i = 0; i < count; i += 10) {
    const entries = names.slice(i, i + 10).map((name, j) => ({
      Id: String(j),
      MessageBody: JSON.stringify({
        data: validForm({ company_name: name }),
        received_at: new Date().toISOString(),
        request_id: label.replace(/[^A-Za-z0-9._-]/g, '-'),
      }),
    }));
    await t.sqs.send(new SendMessageBatchCommand({ QueueUrl: form, Entries: entries }));
  }
  return names;
}

/** Waits until the form queue is empty, then checks that every company name in `names` has exactly one row, and nothing else is stored. */
export async function storedOnce(t: TestEnv, names: readonly string[]): Promise<void> {
  const { form } = await t.queueUrls();
  await eventually(
    async () => {
      const c = await queueCounts(t.sqs, form);
      return c.visible + c.inFlight + c.delayed === 0 ? true : undefined;
    },
    60_000,
    'the form queue empty',
  );
  const rows = (await t.db('form_form').select(t.db.raw("data->>'company_name' as name"))) as { name: string }[];
  const counts = new Map<string, number>();
  for (const r of rows) counts.set(r.name, (counts.get(r.name) ?? 0) + 1);
  expect(
    names.filter((n) => counts.get(n) !== 1),
    'forms not stored exactly once',
  ).to.deep.equal([]);
  expect(rows.length, 'rows').to.equal(names.length);
}

/** The status of a GET of `url`. */
export async function status(url: string): Promise<number> {
  return (await fetch(url)).status;
}

/** Polls `url` until it answers `expected`; resolves with performance.now() at that answer. */
export function untilStatus(url: string, expected: number, timeoutMs: number): Promise<number> {
  return eventually(
    async () => ((await status(url)) === expected ? performance.now() : undefined),
    timeoutMs,
    `${url} to answer ${expected}`,
  );
}
