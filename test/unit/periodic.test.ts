/** The services' one periodic-task helper (services/common/periodic.ts). */
import { expect } from 'chai';
import { PeriodicTask } from '../../services/common/periodic.ts';
import { eventually } from '../support/eventually.ts';

describe('PeriodicTask', () => {
  it('runs at once, then again an interval after each run ends, never two runs at once', async () => {
    let runs = 0;
    let running = 0;
    let overlap = false;
    const task = new PeriodicTask(async () => {
      running += 1;
      overlap ||= running > 1;
      runs += 1;
      await new Promise((r) => setTimeout(r, 5));
      running -= 1;
    }, 1);
    task.start();
    task.start();
    expect(runs).to.equal(1);
    await eventually(async () => (runs >= 3 ? true : undefined), 2000, 'three runs');
    await task.stop();
    expect(overlap).to.equal(false);
  });

  it('stop waits for the run under way and no run starts after it', async () => {
    let release = (): void => undefined;
    let runs = 0;
    let finished = false;
    const task = new PeriodicTask(async () => {
      runs += 1;
      await new Promise<void>((r) => (release = r));
      finished = true;
    }, 1);
    task.start();
    const stopping = task.stop();
    release();
    await stopping;
    expect(finished).to.equal(true);
    await new Promise((r) => setTimeout(r, 20));
    expect(runs).to.equal(1);
  });

  it('never runs with an interval of 0', async () => {
    let runs = 0;
    const task = new PeriodicTask(async () => {
      runs += 1;
    }, 0);
    task.start();
    await task.stop();
    expect(runs).to.equal(0);
  });
});
