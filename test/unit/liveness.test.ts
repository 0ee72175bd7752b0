/** The worker's liveness rule (services/worker/liveness.ts) and the consumer's record of failing dependencies it reads. */
import { expect } from 'chai';
import { Consumer, type ConsumerOptions, type Dependency } from '../../services/worker/consumer.ts';
import { livenessFailure, type LivenessInput } from '../../services/worker/liveness.ts';

const bounds = { stalledMs: 90_000, outageMs: 300_000 };
const now = 1_000_000_000;
const input = (failing: Array<[Dependency, number]> = [], more: Partial<LivenessInput> = {}): LivenessInput => ({
  now,
  running: true,
  lastProgress: now - 1000,
  failingSince: new Map(failing),
  ...more,
});

describe('worker liveness rule', () => {
  it('is live while every dependency answers', () => {
    expect(livenessFailure(input(), bounds)).to.equal(undefined);
  });

  it('is live until a dependency has failed every call for the outage bound, then fails naming it', () => {
    expect(livenessFailure(input([['sqs', now - 299_999]]), bounds)).to.equal(undefined);
    expect(livenessFailure(input([['sqs', now - 300_000]]), bounds)).to.deep.equal({
      check: 'dependency-outage',
      failing: ['sqs'],
      outageMs: 300_000,
      boundMs: 300_000,
    });
    expect(livenessFailure(input([['database', now - 400_000]]), bounds)).to.deep.include({
      failing: ['database'],
      outageMs: 400_000,
    });
  });

  it('counts an outage from the earliest failing dependency and names every failing one', () => {
    expect(
      livenessFailure(
        input([
          ['sqs', now - 10_000],
          ['database', now - 300_000],
        ]),
        bounds,
      ),
    ).to.deep.include({ failing: ['database', 'sqs'], outageMs: 300_000 });
  });

  it('never fails for an outage when the bound is 0 (WORKER_LIVENESS_OUTAGE_SECONDS=0)', () => {
    expect(livenessFailure(input([['sqs', 0]]), { ...bounds, outageMs: 0 })).to.equal(undefined);
  });

  it('fails when the poll loops make no progress, whatever the dependencies', () => {
    expect(livenessFailure(input([], { lastProgress: now - 90_001 }), bounds)).to.deep.equal({
      check: 'poll-loop-stalled',
      idleMs: 90_001,
      boundMs: 90_000,
    });
    expect(livenessFailure(input([], { lastProgress: now - 90_000 }), bounds)).to.equal(undefined);
  });

  it('is live while the loops do not run (before start, while stopping)', () => {
    expect(livenessFailure(input([['sqs', 0]], { running: false, lastProgress: 0 }), bounds)).to.equal(undefined);
  });
});

describe("consumer's record of failing dependencies", () => {
  // The record needs none of the consumer's collaborators.
  const consumer = (): Consumer => new Consumer({} as ConsumerOptions);

  it('keeps the time of the first failure until a success, per dependency', async () => {
    const c = consumer();
    expect([...c.failingSince]).to.deep.equal([]);
    c.sqsHealthy = false;
    const first = c.failingSince.get('sqs');
    expect(first).to.be.a('number');
    await new Promise((resolve) => setTimeout(resolve, 5));
    c.sqsHealthy = false;
    expect(c.failingSince.get('sqs'), 'a later failure does not move it').to.equal(first);
    c.databaseHealthy = false;
    expect([...c.failingSince.keys()].sort()).to.deep.equal(['database', 'sqs']);
    c.sqsHealthy = true;
    expect([...c.failingSince.keys()]).to.deep.equal(['database']);
    c.databaseHealthy = true;
    expect([...c.failingSince]).to.deep.equal([]);
    expect([c.sqsHealthy, c.databaseHealthy]).to.deep.equal([true, true]);
  });
});
