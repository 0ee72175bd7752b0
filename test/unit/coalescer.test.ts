/** The one coalescer of the services (services/common/coalescer.ts), with a recording `run`. */
import { expect } from 'chai';
import { Coalescer, type CoalescerOptions } from '../../services/common/coalescer.ts';
import { eventually } from '../support/eventually.ts';

interface Item {
  id: string;
  weight?: number;
  size?: number;
}

/** Every coalescer a test made, closed after it (no timer of one outlives its test). */
const made: { coalescer: Coalescer<Item>; batches: { settle: () => void }[] }[] = [];

/** A coalescer whose batches wait until the test settles them. */
function recording(options: Partial<CoalescerOptions<Item>>): {
  coalescer: Coalescer<Item>;
  batches: { ids: string[]; settle: () => void }[];
} {
  const batches: { ids: string[]; settle: () => void }[] = [];
  const coalescer = new Coalescer<Item>({
    maxWeight: 10,
    windowMs: 60_000,
    weight: (i) => i.weight ?? 1,
    size: (i) => i.size ?? 0,
    ...options,
    run: (items) =>
      new Promise<void>((settle) => batches.push({ ids: items.map((i) => i.id), settle: () => settle() })),
  });
  made.push({ coalescer, batches });
  return { coalescer, batches };
}

const waitFor = (batches: unknown[], n: number): Promise<true> =>
  eventually(async () => (batches.length === n ? true : undefined), 2000, `${n} batches`);

describe('Coalescer', () => {
  afterEach(async () => {
    for (const { coalescer, batches } of made.splice(0)) {
      const closed = coalescer.close();
      // Settle what is under way, and what close starts.
      for (let settled = 0; settled < batches.length; settled++) {
        batches[settled]!.settle();
        await new Promise((r) => setImmediate(r));
      }
      await closed;
    }
  });

  it('starts a batch at once when the waiting weight fills one, whole items only', async () => {
    const { coalescer, batches } = recording({ maxWeight: 4 });
    coalescer.add({ id: 'a', weight: 3 });
    expect(batches).to.have.length(0);
    coalescer.add({ id: 'b', weight: 2 });
    await waitFor(batches, 1);
    expect(batches[0]!.ids).to.deep.equal(['a']);
    expect(coalescer.waiting).to.equal(2);
  });

  it('starts what waits after the window, and at the end of the turn with a window of 0', async () => {
    const slow = recording({ windowMs: 5 });
    slow.coalescer.add({ id: 'a' });
    slow.coalescer.add({ id: 'b' });
    expect(slow.batches).to.have.length(0);
    await waitFor(slow.batches, 1);
    expect(slow.batches[0]!.ids).to.deep.equal(['a', 'b']);
    const now = recording({ windowMs: 0 });
    now.coalescer.add({ id: 'c' });
    await new Promise((r) => setImmediate(r));
    expect(now.batches.map((b) => b.ids)).to.deep.equal([['c']]);
  });

  it('keeps each batch within maxSize: an item that would overflow starts the others', async () => {
    const { coalescer, batches } = recording({ maxSize: 100 });
    coalescer.add({ id: 'a', size: 60 });
    coalescer.add({ id: 'b', size: 30 });
    coalescer.add({ id: 'c', size: 20 });
    await waitFor(batches, 1);
    expect(batches[0]!.ids).to.deep.equal(['a', 'b']);
    expect(coalescer.waiting).to.equal(1);
  });

  it('runs at most `parallel` batches; the next starts when one settles', async () => {
    const { coalescer, batches } = recording({ maxWeight: 1, parallel: 1 });
    coalescer.add({ id: 'a' });
    coalescer.add({ id: 'b' });
    await waitFor(batches, 1);
    expect(coalescer.waiting).to.equal(1);
    batches[0]!.settle();
    await waitFor(batches, 2);
    expect(batches[1]!.ids).to.deep.equal(['b']);
  });

  it('close starts the waiting items without their window and resolves once every batch settled', async () => {
    const { coalescer, batches } = recording({});
    coalescer.add({ id: 'a' });
    let closed = false;
    const closing = coalescer.close().then(() => (closed = true));
    await waitFor(batches, 1);
    expect(closed).to.equal(false);
    batches[0]!.settle();
    await closing;
    expect(closed).to.equal(true);
  });

  it('refuses a batch limit below 1', () => {
    expect(() => new Coalescer<Item>({ maxWeight: 0, windowMs: 0, run: async () => undefined })).to.throw(RangeError);
  });
});
