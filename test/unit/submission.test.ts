/** Unit tests of the submission identity (services/web/submission.ts); the pipeline tests are in exactly-once.test.ts. */
import { expect } from 'chai';
import { SUBMISSION_ID } from '../../services/common/message.ts';
import { ProblemError } from '../../services/web/problem.ts';
import { idempotencyKey, MAX_IDEMPOTENCY_KEY, RecentSubmissions, submissionOf } from '../../services/web/submission.ts';
import {
  contentId,
  isRandomId,
  keyId,
  signedId,
  submissionMismatch,
  type SubmissionClaim,
  type SubmissionSource,
} from '../../services/common/submission-id.ts';
import type { FormData } from '../../services/common/form-schema.ts';
import { validForm } from '../../harness/forms.ts';
import { randomUUID } from 'node:crypto';

const header = (...values: string[]): string[] => values.flatMap((v) => ['Idempotency-Key', v]);

describe('submission identity', () => {
  it('reads a structured-field string key, with its escapes, and a bare token as the same key', () => {
    expect(idempotencyKey([])).to.equal(undefined);
    expect(idempotencyKey(['Host', 'x'])).to.equal(undefined);
    expect(idempotencyKey(header('"8e03978e-40d5"'))).to.equal('8e03978e-40d5');
    expect(idempotencyKey(header('8e03978e-40d5'))).to.equal('8e03978e-40d5');
    expect(idempotencyKey(header('"a \\"quoted\\" \\\\ key"'))).to.equal('a "quoted" \\ key');
    expect(idempotencyKey(['idempotency-key', ' "k" '])).to.equal('k');
    expect(idempotencyKey(header('k'.repeat(MAX_IDEMPOTENCY_KEY)))).to.have.length(MAX_IDEMPOTENCY_KEY);
  });

  it('refuses malformed, oversized and repeated keys with a 400 naming the header', () => {
    for (const bad of [
      header('""'),
      header('"open'),
      header('k'.repeat(MAX_IDEMPOTENCY_KEY + 1)),
      header('a b'),
      header('"k";p=1'),
      header('"\\n"'),
      header('a', 'a'),
    ]) {
      expect(() => idempotencyKey(bad), JSON.stringify(bad).slice(0, 80))
        .to.throw(ProblemError)
        .that.satisfies((e: ProblemError) => e.status === 400 && e.message.includes('Idempotency-Key'));
    }
  });

  it('derives stable ids from a signed key, the form or a v1 signature time, never equal across them, and random ones otherwise', () => {
    const data = validForm() as FormData;
    const byKey = submissionOf({ key: 'k1', data, scheme: 'v1', signedAt: 1 }, true);
    expect(byKey).to.deep.equal(
      submissionOf({ key: 'k1', data: validForm({ x: 'y' }) as FormData, scheme: undefined }, false),
    );
    expect(byKey).to.include({ source: 'key', key: 'k1' });
    const byContent = submissionOf({ key: undefined, data, scheme: 'v1', signedAt: 1 }, true);
    expect(byContent.source).to.equal('content');
    const reordered = Object.fromEntries(Object.entries(data).reverse()) as FormData;
    expect(byContent.id, 'keys in another order').to.equal(
      submissionOf({ key: undefined, data: reordered, scheme: 'legacy' }, true).id,
    );
    expect(byContent.id).not.to.equal(
      submissionOf({ key: undefined, data: validForm({ contact_name: 'B' }) as FormData, scheme: 'legacy' }, true).id,
    );
    // Under a legacy signature the key is not signed: it decides nothing.
    expect(submissionOf({ key: 'k1', data, scheme: 'legacy' }, true)).to.deep.equal(byContent);
    const signed = submissionOf({ key: undefined, data, scheme: 'v1', signedAt: 1700000000 }, false);
    expect(signed).to.include({ source: 'signed', signedAt: 1700000000 });
    expect(signed.id).to.equal(submissionOf({ key: undefined, data, scheme: 'v1', signedAt: 1700000000 }, false).id);
    expect(signed.id).not.to.equal(
      submissionOf({ key: undefined, data, scheme: 'v1', signedAt: 1700000001 }, false).id,
    );
    const random = [
      submissionOf({ key: undefined, data, scheme: 'legacy' }, false),
      submissionOf({ key: 'k1', data, scheme: 'legacy' }, false),
    ];
    expect(random.map((s) => s.source)).to.deep.equal(['random', 'random']);
    expect(random[0]!.id).not.to.equal(random[1]!.id);
    for (const s of [byKey, byContent, signed, ...random]) expect(s.id).to.match(SUBMISSION_ID);
    for (const s of random) expect(isRandomId(s.id)).to.equal(true);
    for (const s of [byKey, byContent, signed])
      expect(isRandomId(s.id), 'derived ids are not version 4').to.equal(false);
  });

  it('lets the worker recompute each derived id from the message, and refuses one that does not match', () => {
    const data = validForm() as FormData;
    const claim = (id: string, source: SubmissionSource | undefined, more: Partial<SubmissionClaim> = {}) =>
      submissionMismatch({ id, source, key: undefined, signedAt: undefined, ...more }, data);
    expect(claim(keyId('k1'), 'key', { key: 'k1' })).to.equal(undefined);
    expect(claim(keyId('k1'), 'key', { key: 'k2' })).to.be.a('string');
    expect(claim(contentId(data), 'content')).to.equal(undefined);
    expect(claim(contentId(validForm({ contact_name: 'Someone else' }) as FormData), 'content')).to.be.a('string');
    expect(claim(signedId(5, data), 'signed', { signedAt: 5 })).to.equal(undefined);
    expect(claim(signedId(5, data), 'signed', { signedAt: 6 })).to.be.a('string');
    expect(claim(randomUUID(), 'random')).to.equal(undefined);
    expect(claim(randomUUID(), undefined), 'an earlier release').to.equal(undefined);
    expect(claim(contentId(data), 'random'), 'a derived id passed off as random').to.be.a('string');
    expect(claim(keyId('k1'), undefined)).to.be.a('string');
  });

  it('remembers accepted ids with their body for the repeat hint, bounded in count and time', () => {
    const recent = new RecentSubmissions(2, 1000);
    const a = Buffer.from('a');
    recent.add('1', a, 0);
    expect(recent.seen('1', a, 999)).to.equal(true);
    expect(recent.seen('1', Buffer.from('b'), 999), 'same id, another body').to.equal(false);
    expect(recent.seen('1', a, 1000), 'past the lifetime').to.equal(false);
    recent.add('2', a, 10);
    recent.add('3', a, 20);
    expect(recent.seen('1', a, 30), 'evicted').to.equal(false);
    expect(recent.seen('3', a, 30)).to.equal(true);
  });
});
