/** Unit tests of the submission identity (services/web/submission.ts); the pipeline tests are in exactly-once.test.ts. */
import { expect } from 'chai';
import { SUBMISSION_ID } from '../../services/common/message.ts';
import { ProblemError } from '../../services/web/problem.ts';
import { idempotencyKey, MAX_IDEMPOTENCY_KEY, RecentSubmissions, submissionOf } from '../../services/web/submission.ts';

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

  it('derives stable ids from the key or the request, never equal across the two, and random ones otherwise', () => {
    const body = Buffer.from('{"data":{}}');
    const byKey = submissionOf({ key: 'k1', path: '/form/', rawBody: body }, true);
    expect(byKey).to.deep.equal(submissionOf({ key: 'k1', path: '/form', rawBody: Buffer.from('other') }, false));
    expect(byKey.source).to.equal('key');
    const byContent = submissionOf({ key: undefined, path: '/form/', rawBody: body }, true);
    expect(byContent.source).to.equal('content');
    expect(byContent.id).to.equal(
      submissionOf({ key: undefined, path: '/form/', rawBody: Buffer.from(body) }, true).id,
    );
    expect(byContent.id).not.to.equal(submissionOf({ key: undefined, path: '/form', rawBody: body }, true).id);
    expect(byContent.id).not.to.equal(
      submissionOf({ key: undefined, path: '/form/', rawBody: Buffer.from('{"data":{} }') }, true).id,
    );
    const random = [
      submissionOf({ key: undefined, path: '/form/', rawBody: body }, false),
      submissionOf({ key: undefined, path: '/form/', rawBody: body }, false),
    ];
    expect(random.map((s) => s.source)).to.deep.equal(['random', 'random']);
    expect(random[0]!.id).not.to.equal(random[1]!.id);
    for (const s of [byKey, byContent, ...random]) expect(s.id).to.match(SUBMISSION_ID);
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
