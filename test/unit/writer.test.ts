/**
 * The worker's coalescing FormWriter with a recording inserter: its flushing rules, each caller answered for its
 * own rows, failures named per caller (test/writer.test.ts runs it over PostgreSQL and SQS).
 */
import { expect } from 'chai';
import { DatabaseError } from '../../services/common/errors.ts';
import type { FormData } from '../../services/common/form-schema.ts';
import type { FormInserter, FormRow } from '../../services/worker/repository.ts';
import { FormWriter } from '../../services/worker/writer.ts';
import { validForm } from '../../harness/forms.ts';
import { eventually } from '../support/eventually.ts';

const row = (id: string): FormRow => ({ messageId: id, data: validForm() as FormData });

/** An inserter that records each statement and settles it when the test says. */
function recording(): FormInserter & { calls: { ids: string[]; settle: (error?: Error) => void }[] } {
  const calls: { ids: string[]; settle: (error?: Error) => void }[] = [];
  return {
    calls,
    insertMany: (rows) =>
      new Promise((resolve, reject) => {
        const ids = rows.map((r) => r.messageId);
        calls.push({
          ids,
          settle: (error) => (error ? reject(error) : resolve(new Set(ids.filter((id) => !id.startsWith('dup'))))),
        });
      }),
  };
}

describe('FormWriter (unit, recording inserter)', () => {
  it('puts the rows of concurrent callers in one statement and answers each caller for its own rows', async () => {
    const inserter = recording();
    const writer = new FormWriter({ inserter, maxRows: 100, windowMs: 5, parallel: 2 });
    const a = writer.insertMany([row('a1'), row('a2')]);
    const b = writer.insertMany([row('b1'), row('dup-b2')]);
    await eventually(async () => (inserter.calls.length === 1 ? true : undefined), 2000, 'one statement');
    expect(inserter.calls[0]!.ids).to.deep.equal(['a1', 'a2', 'b1', 'dup-b2']);
    inserter.calls[0]!.settle();
    expect([...(await a)]).to.deep.equal(['a1', 'a2']);
    expect([...(await b)]).to.deep.equal(['b1']);
  });

  it('starts a statement at once when maxRows rows wait, never more than maxRows (whole callers), at most `parallel` at a time', async () => {
    const inserter = recording();
    const writer = new FormWriter({ inserter, maxRows: 4, windowMs: 60_000, parallel: 1 });
    const calls = [0, 1, 2, 3].map((i) => writer.insertMany([row(`${i}a`), row(`${i}b`)]));
    // Window of a minute: only a full statement can have started.
    await eventually(async () => (inserter.calls.length === 1 ? true : undefined), 2000, 'a full statement');
    expect(inserter.calls[0]!.ids).to.deep.equal(['0a', '0b', '1a', '1b']);
    expect(writer.waitingRows).to.equal(4);
    inserter.calls[0]!.settle();
    await Promise.all(calls.slice(0, 2));
    // The next full statement starts when the one in flight settles.
    await eventually(async () => (inserter.calls.length === 2 ? true : undefined), 2000, 'the second statement');
    expect(inserter.calls[1]!.ids).to.deep.equal(['2a', '2b', '3a', '3b']);
    inserter.calls[1]!.settle();
    await Promise.all(calls);
  });

  it('a failed statement rejects every caller with a DatabaseError naming only its own message ids', async () => {
    const inserter = recording();
    const writer = new FormWriter({ inserter, maxRows: 100, windowMs: 1, parallel: 1 });
    const a = writer.insertMany([row('a1')]).catch((e: unknown) => e);
    const b = writer.insertMany([row('b1'), row('b2')]).catch((e: unknown) => e);
    await eventually(async () => (inserter.calls.length === 1 ? true : undefined), 2000, 'one statement');
    inserter.calls[0]!.settle(
      new DatabaseError('insert into form_form', new Error('connection refused'), ['a1', 'b1', 'b2']),
    );
    const [ea, eb] = (await Promise.all([a, b])) as DatabaseError[];
    expect(ea).to.be.instanceOf(DatabaseError);
    expect(ea!.messageIds).to.deep.equal(['a1']);
    expect(eb!.messageIds).to.deep.equal(['b1', 'b2']);
    expect(String(eb!.message)).to.contain('connection refused');
  });

  it('close starts the waiting rows without their window and resolves when they are committed', async () => {
    const inserter = recording();
    const writer = new FormWriter({ inserter, maxRows: 100, windowMs: 60_000, parallel: 1 });
    const a = writer.insertMany([row('a1')]);
    expect(inserter.calls).to.have.length(0);
    const closed = writer.close();
    await eventually(async () => (inserter.calls.length === 1 ? true : undefined), 2000, 'the statement close started');
    inserter.calls[0]!.settle();
    await closed;
    expect([...(await a)]).to.deep.equal(['a1']);
  });

  it('counts a message id inserted now for its first caller only (the same message handed twice)', async () => {
    const inserter = recording();
    const writer = new FormWriter({ inserter, maxRows: 100, windowMs: 1, parallel: 1 });
    const a = writer.insertMany([row('m1')]);
    const b = writer.insertMany([row('m1')]);
    await eventually(async () => (inserter.calls.length === 1 ? true : undefined), 2000, 'one statement');
    inserter.calls[0]!.settle();
    expect([...(await a)]).to.deep.equal(['m1']);
    expect([...(await b)]).to.deep.equal([]);
  });
});
