/** The worker's retry backoff: doubling per receive from the base, capped, never below the base. */
import { expect } from 'chai';
import { backoffSeconds } from '../../services/worker/batch.ts';

describe('retry backoff (SQS_RETRY_BACKOFF_BASE_SECONDS, SQS_RETRY_BACKOFF_MAX_SECONDS)', () => {
  it('is the base at the first receive and doubles at each further one', () => {
    expect([1, 2, 3, 4, 5].map((n) => backoffSeconds(n, 5, 300))).to.deep.equal([5, 10, 20, 40, 80]);
  });

  it('stops at the cap', () => {
    expect(backoffSeconds(7, 5, 300)).to.equal(300);
    expect(backoffSeconds(1000, 5, 300)).to.equal(300);
  });

  it('treats a missing or zero receive count as the first receive', () => {
    expect(backoffSeconds(0, 5, 300)).to.equal(5);
  });

  it('stays finite for any receive count (the doublings are bounded)', () => {
    expect(backoffSeconds(Number.MAX_SAFE_INTEGER, 1, 43_200)).to.equal(43_200);
  });
});
