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

const ROOT = fileURLToPath(new URL('..', import.meta.url));

interface Summary extends LogLine {
  chaos: 'summary';
  ok: boolean;
  forms_sent: number;
  accepted_202: number;
  rows_stored: number;
  accepted_with_exactly_one_row: number;
  accepted_missing: number;
  duplicates: number;
  content_duplicates: number;
  answers_lost: number;
  data_mismatches: number;
  poison_injected: number;
  poison_found_unchanged: number;
  forms_dead_lettered: number;
  worker_kills: number;
  worker_kills_survived: number;
  sigterms: number;
  sigterms_clean: number;
  longest_drain_ms: number;
  db_outages: number;
  db_outages_survived: number;
  sqs_outages: number;
  sqs_outages_survived: number;
  answered_503: number;
  failures: string[];
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

    expect(s.forms_sent).to.be.at.least(300);
    expect(s.accepted_202).to.be.greaterThan(0);
    expect(s.accepted_with_exactly_one_row).to.equal(s.accepted_202);
    expect(s.accepted_missing).to.equal(0);
    expect(s.duplicates).to.equal(0);
    expect(s.content_duplicates, 'a submission stored twice').to.equal(0);
    expect(s.answers_lost, 'the run lost SQS answers to the web').to.be.greaterThan(0);
    expect(s.data_mismatches).to.equal(0);
    expect(s.rows_stored).to.be.at.least(s.accepted_202);

    expect(s.poison_injected).to.be.at.least(4);
    expect(s.poison_found_unchanged).to.equal(s.poison_injected);
    expect(s.forms_dead_lettered).to.equal(0);

    expect(s.worker_kills).to.be.at.least(1);
    expect(s.worker_kills_survived).to.equal(s.worker_kills);
    // One SIGTERM mid-run, and one per worker at the end.
    expect(s.sigterms).to.be.at.least(3);
    expect(s.sigterms_clean).to.equal(s.sigterms);
    expect(s.db_outages_survived).to.equal(1);
    expect(s.sqs_outages_survived).to.equal(1);
    // Silent windows beside the cut: the web's path to SQS accepts and never answers, then stalls mid-answer.
    expect(s.silent_sqs_windows_survived, 'silent SQS windows (blackhole, stall)').to.equal(2);
    for (const b of s.silent_sqs_bounds as { slowest_503_ms: number; bound_ms: number }[])
      expect(b.slowest_503_ms).to.be.greaterThan(0).and.at.most(b.bound_ms);
    // And on the workers' paths: SQS (the poll gives up) and PostgreSQL (readiness answers 503).
    expect(s.silent_worker_windows_survived, "silent windows on the workers' paths").to.equal(2);
    expect(s.answered_503).to.be.greaterThan(0);
    passed = true;
  });
});
