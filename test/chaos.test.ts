/**
 * The short chaos run (`npm run chaos -- --short`) as part of `npm test`: a
 * few hundred forms while one worker is SIGKILLed and one SIGTERMed,
 * PostgreSQL is stopped and started, the web's path to SQS is cut, and
 * poison messages are injected. It runs as a child process with its own
 * PostgreSQL and emulator, and must exit 0 with every invariant kept.
 */
import { expect } from 'chai';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startProcess, type LogLine, type ProcessHandle } from '../harness/process.ts';
import { INVARIANTS, type InvariantResult } from '../chaos/invariants.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

interface Summary extends LogLine {
  chaos: 'summary';
  ok: boolean;
  invariants: InvariantResult[];
  failures: string[];
  sigterms: number;
}

describe('chaos run (short): every 202 ends up in PostgreSQL exactly once', function () {
  this.timeout(150_000);
  this.slow(60_000);
  let run: ProcessHandle | undefined;
  let logDir: string;
  let passed = false;

  before(async () => {
    logDir = await mkdtemp(join(tmpdir(), 'form-data-chaos-logs-'));
  });
  after(async () => {
    if (run && run.child.exitCode === null && run.child.signalCode === null) {
      // SIGTERM lets the run stop its own children (web, workers, emulator, PostgreSQL).
      run.kill('SIGTERM');
      const exited = await Promise.race([run.exited, new Promise((r) => setTimeout(r, 20_000, undefined).unref())]);
      if (!exited) await run.ensureStopped();
    }
    // The logs of a failed run stay for inspection.
    if (passed) await rm(logDir, { recursive: true, force: true });
    else console.log(`chaos run logs kept in ${logDir}`);
  });

  it('survives worker kills, a SIGTERM, a database outage, an SQS outage and poison messages', async () => {
    run = startProcess(process.execPath, ['chaos/main.ts', '--short', '--log-dir', logDir], {}, { cwd: ROOT });
    const { code } = await run.exited;
    const output = run.text.slice(-60).join('\n');
    const summary = run.logs.find((l): l is Summary => l.chaos === 'summary');
    expect(summary, `no summary line; output:\n${output}`).to.not.equal(undefined);
    const s = summary!;
    expect(s.failures, output).to.deep.equal([]);
    expect(code, output).to.equal(0);
    expect(s.ok).to.equal(true);

    // Every invariant of chaos/invariants.ts was checked, and held.
    expect(s.invariants.map((i) => i.key)).to.deep.equal(INVARIANTS.map((i) => i.key));
    expect(s.invariants.filter((i) => !i.ok)).to.deep.equal([]);
    // The short run's fault plan: one SIGTERM mid-run and one per worker at the end.
    expect(s.sigterms).to.be.at.least(3);
    // The short run's silent windows: two on the web's path to SQS (blackhole, stall), two on the workers' paths.
    expect(s.silent_sqs_windows, 'silent SQS windows (blackhole, stall)').to.equal(2);
    for (const b of s.silent_sqs_bounds as { slowest_503_ms: number; bound_ms: number }[])
      expect(b.slowest_503_ms).to.be.greaterThan(0).and.at.most(b.bound_ms);
    expect(s.silent_worker_windows, "silent windows on the workers' paths").to.equal(2);
    passed = true;
  });
});
