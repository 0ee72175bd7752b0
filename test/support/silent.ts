/**
 * What the silent-fault tests (the proxy's and the network namespace's)
 * share: their settings, forms queued straight onto the form queue, the check
 * that each is stored once, and the worker's liveness across an outage.
 */
import { expect } from 'chai';
import { SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import type { Config } from '../../services/common/config.ts';
import { validForm } from '../../harness/forms.ts';
import { queueCounts } from '../../harness/sqs.ts';
import { bounds, expectWithin } from './bounds.ts';
import { eventually, type TestEnv } from './stack.ts';

/** Small settings so each bound is a few seconds. */
export const SILENT_FAULT_SETTINGS = {
  SQS_REQUEST_TIMEOUT_MS: '500',
  SQS_MAX_ATTEMPTS: '2',
  SQS_WAIT_TIME: '1',
  SQS_VISIBILITY_TIMEOUT: '3',
  SQS_RETRY_BACKOFF_BASE_SECONDS: '1',
  SQS_RETRY_BACKOFF_MAX_SECONDS: '2',
  DATABASE_TIMEOUT_MS: '800',
  WORKER_CONCURRENCY: '2',
  // Longer than each check of a 200 takes after the first failed call, short enough to wait for.
  WORKER_LIVENESS_OUTAGE_SECONDS: '6',
};

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

/**
 * The worker's liveness at `url` across an outage of `target` that started at `t0` (performance.now()): 503 no
 * sooner than WORKER_LIVENESS_OUTAGE_SECONDS after it and within its bound (the first failed call, the poll's or
 * the insert's, then the outage); after `heal`, 200 within its bound. Records both figures.
 */
export async function livenessAcrossOutage(options: {
  url: string;
  config: Config;
  t0: number;
  fault: string;
  target: 'SQS' | 'PostgreSQL';
  heal: () => Promise<void> | void;
}): Promise<void> {
  const { url, config, fault, target } = options;
  const bound = bounds(config);
  const redMs = (await untilStatus(url, 503, 60_000)) - options.t0;
  const call = target === 'SQS' ? bound.poll : bound.insert;
  expectWithin(
    { fault, target, part: 'worker liveness 503', measuredMs: redMs, bound: bound.livenessRed(call) },
    config.worker.livenessOutageMs,
  );
  // The answer names the rule and the dependency, and carries no error text of it.
  const answer = await fetch(url);
  const body = (await answer.json()) as { details?: Record<string, unknown> };
  expect(answer.status).to.equal(503);
  expect(Object.keys(body.details ?? {}).sort()).to.deep.equal(['boundMs', 'check', 'failing', 'outageMs', 'reason']);
  expect(body.details).to.deep.include({
    check: 'dependency-outage',
    failing: [target === 'SQS' ? 'sqs' : 'database'],
    boundMs: config.worker.livenessOutageMs,
  });
  await options.heal();
  const healedAt = performance.now();
  const greenMs = (await untilStatus(url, 200, 60_000)) - healedAt;
  expectWithin({
    fault,
    target,
    part: 'worker liveness 200 after the heal',
    measuredMs: greenMs,
    bound: target === 'SQS' ? bound.livenessGreenSqs : bound.livenessGreenDatabase,
  });
}
