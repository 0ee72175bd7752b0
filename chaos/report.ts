/**
 * The end of a chaos run on paper: the figures (chaos/invariants.ts's keys)
 * from what was stored and what each fault saw, the invariants checked once,
 * the failures and warnings, the printed table and the summary line.
 */
import type { Message } from '@aws-sdk/client-sqs';
import type {
  DbOutageResult,
  FaultResult,
  KillResult,
  LostAnswersResult,
  PoisonResult,
  SigtermResult,
  SqsOutageResult,
} from './faults.ts';
import { silentWindowReport } from './faults.ts';
import type { FormRecord } from './load.ts';
import { checkInvariants, INVARIANTS, storageHolds, type Figures, type InvariantResult } from './invariants.ts';
import { checkPoison, checkStorage, type StoredRow } from './verify.ts';

export interface RunEnd {
  runId: string;
  /** Forms the run was asked to send. */
  formsRequested: number;
  records: readonly FormRecord[];
  rows: readonly StoredRow[];
  /** What the invalid queue held at the end. */
  invalid: readonly Message[];
  results: readonly FaultResult[];
  queueEmptied: boolean;
  /** Deliveries of stored messages skipped (the workers' FD_DUPLICATE_DELIVERY lines). */
  redeliveriesSkipped: number;
  /** Failures seen while running (the web's exit, …). */
  failures: readonly string[];
}

export interface RunReport {
  figures: Figures;
  invariants: InvariantResult[];
  failures: string[];
  warnings: string[];
  /** The table to print: the invariants, then the figures that explain them. */
  table: string;
  /** Each silent window's measured bounds (silent_sqs_bounds, silent_worker_bounds). */
  silent: Record<string, unknown>;
}

interface Row {
  label: string;
  value: string | number;
  expected?: string;
  ok?: boolean;
}

function printTable(rows: readonly Row[]): string {
  const w1 = Math.max(...rows.map((r) => r.label.length));
  const w2 = Math.max(...rows.map((r) => String(r.value).length));
  const w3 = Math.max(8, ...rows.map((r) => (r.expected ?? '').length));
  const line = `+-${'-'.repeat(w1)}-+-${'-'.repeat(w2)}-+-${'-'.repeat(w3)}-+------+`;
  const out = [line, `| ${'figure'.padEnd(w1)} | ${'value'.padStart(w2)} | ${'expected'.padEnd(w3)} | ok   |`, line];
  for (const r of rows) {
    const ok = r.ok === undefined ? '' : r.ok ? 'yes' : 'NO';
    out.push(
      `| ${r.label.padEnd(w1)} | ${String(r.value).padStart(w2)} | ${(r.expected ?? '').padEnd(w3)} | ${ok.padEnd(4)} |`,
    );
  }
  out.push(line);
  return out.join('\n');
}

const ofKind = <K extends FaultResult['kind']>(results: readonly FaultResult[], kind: K) =>
  results.filter((r): r is Extract<FaultResult, { kind: K }> => r.kind === kind);

/** Figures, invariants, failures, warnings and the table of a finished run. */
export function reportRun(end: RunEnd): RunReport {
  const storage = checkStorage(end.records, end.rows, end.runId);
  const poisonInjected = ofKind(end.results, 'poison').flatMap((r: PoisonResult) => r.messages);
  const poison = checkPoison(poisonInjected, end.invalid, end.runId);
  const kills: KillResult[] = ofKind(end.results, 'sigkill');
  const sigterms: SigtermResult[] = ofKind(end.results, 'sigterm');
  const dbOutages: DbOutageResult[] = ofKind(end.results, 'db-outage');
  const sqsOutages: SqsOutageResult[] = ofKind(end.results, 'sqs-outage');
  const lostAnswers: LostAnswersResult[] = ofKind(end.results, 'lost-answers');
  const s = storage.figures;
  const killed = kills.reduce((n, k) => n + k.workers.length, 0);

  const figures: Figures = {
    forms_requested: end.formsRequested,
    forms_sent: s.formsSent,
    submissions: s.attempts,
    accepted_202: s.accepted,
    answered_503: s.answered503,
    no_answer: s.noAnswer,
    other_answers: s.unexpectedAnswers,
    forms_never_accepted: s.gaveUp,
    rows_stored: s.rowsStored,
    accepted_with_exactly_one_row: s.acceptedWithOneRow,
    accepted_missing: s.acceptedMissing,
    duplicates: s.duplicates,
    stored_under_other_copy: s.storedUnderOtherCopy,
    data_mismatches: s.dataMismatches,
    foreign_rows: s.foreignRows,
    redeliveries_skipped: end.redeliveriesSkipped,
    content_duplicates: s.contentDuplicates,
    content_duplicates_after_retry: s.contentDuplicatesAfterRetry,
    rows_without_202: s.rowsWithoutAccepted,
    queue_emptied: end.queueEmptied ? 1 : 0,
    lost_answer_windows: lostAnswers.length,
    lost_answer_windows_ok: lostAnswers.filter((q) => q.ok).length,
    answers_lost: lostAnswers.reduce((n, q) => n + q.lost, 0),
    poison_injected: poison.injected,
    poison_found_unchanged: poison.foundUnchanged,
    poison_with_attributes: poison.withAttributes,
    forms_dead_lettered: poison.formsDeadLettered,
    worker_kills: killed,
    worker_kills_survived: 0,
    sigterms: sigterms.length,
    sigterms_clean: sigterms.filter((t) => t.ok).length,
    longest_drain_ms: Math.max(0, ...sigterms.map((t) => t.drainMs ?? 0)),
    db_outages: dbOutages.length,
    db_outages_survived: 0,
    sqs_outages: sqsOutages.length,
    sqs_outages_survived: 0,
    accepted_during_sqs_outage: sqsOutages.reduce((n, q) => n + q.answered202, 0),
    answered_503_during_sqs_outage: sqsOutages.reduce((n, q) => n + q.answered503, 0),
    silent_sqs_windows: 0,
    silent_sqs_windows_survived: 0,
    silent_worker_windows: 0,
    silent_worker_windows_survived: 0,
  };
  // A fault is survived when it went as it should and nothing stored was lost, doubled or changed.
  const stored = storageHolds(figures);
  figures.worker_kills_survived = stored && kills.every((k) => k.restarted) ? killed : 0;
  figures.db_outages_survived = stored ? dbOutages.filter((d) => d.ok).length : 0;
  figures.sqs_outages_survived = stored ? sqsOutages.filter((q) => q.ok).length : 0;
  const silent = silentWindowReport(end.results, stored);
  const {
    silent_sqs_windows,
    silent_sqs_windows_survived,
    silent_worker_windows,
    silent_worker_windows_survived,
    ...silentBounds
  } = silent.summary;
  Object.assign(figures, {
    silent_sqs_windows,
    silent_sqs_windows_survived,
    silent_worker_windows,
    silent_worker_windows_survived,
  });

  const invariants = checkInvariants(figures);
  const failures = [...end.failures];
  for (const [i, result] of invariants.entries()) {
    if (result.ok) continue;
    const examples = INVARIANTS[i]!.examples;
    const detail = examples ? storage.examples[examples] : undefined;
    failures.push(
      `${result.label}: ${result.value}, expected ${result.expected}${detail?.length ? ` (e.g. ${detail.join('; ')})` : ''}`,
    );
  }
  // What each fault saw go wrong, to explain the invariants above.
  for (const k of kills) if (!k.restarted) failures.push(`worker restart after SIGKILL failed: ${k.error ?? ''}`);
  for (const t of sigterms)
    if (!t.ok)
      failures.push(
        `${t.worker}: SIGTERM not clean (exit ${t.exitCode}, signal ${t.signal}, drained logged ${t.drainedLogged}, stopped logged ${t.stoppedLogged}${t.error ? `, ${t.error}` : ''})`,
      );
  for (const d of dbOutages) for (const p of d.problems) failures.push(`database outage: ${p}`);
  for (const q of sqsOutages) for (const p of q.problems) failures.push(`SQS outage: ${p}`);
  for (const q of lostAnswers) for (const p of q.problems) failures.push(`lost answers: ${p}`);
  failures.push(...silent.failures);
  if (poison.missing.length > 0) failures.push(`poison missing from the invalid queue: ${poison.missing.join(', ')}`);

  const warnings: string[] = [];
  if (poison.copiedTwice.length > 0)
    warnings.push(`poison copied to the invalid queue more than once: ${poison.copiedTwice.join(', ')}`);
  if (poison.withoutAttributes.length > 0)
    warnings.push(
      `poison copies without original_message_id/reason attributes: ${poison.withoutAttributes.join(', ')}`,
    );
  if (s.gaveUp > 0) warnings.push(`${s.gaveUp} forms were never accepted (clients gave up after 40 tries)`);

  const db = dbOutages[0];
  const sqs = sqsOutages[0];
  const explaining: Row[] = [
    { label: '  of which probes (SQS outage, lost answers)', value: s.formsSent - end.formsRequested },
    { label: 'submissions (tries)', value: s.attempts },
    { label: '503 answered', value: s.answered503 },
    { label: 'no answer (connection error)', value: s.noAnswer },
    { label: 'forms never accepted', value: s.gaveUp },
    { label: "accepted, stored under another copy's message id", value: s.storedUnderOtherCopy },
    { label: 'redeliveries skipped as already stored', value: end.redeliveriesSkipped },
    { label: 'content duplicates after a client retry', value: s.contentDuplicatesAfterRetry },
    { label: 'rows without a 202 (503 but queued)', value: s.rowsWithoutAccepted },
    {
      label: 'lost-answer windows: answers lost / tries 202 / 503',
      value: lostAnswers.length
        ? lostAnswers.map((q) => `${q.lost} / ${q.answered202} / ${q.answered503}`).join(', ')
        : '-',
    },
    { label: 'longest drain (ms)', value: figures.longest_drain_ms },
    {
      label: 'database down (ms) / workers ready again after (ms)',
      value: db ? `${db.downMs} / ${db.recoveryMs ?? '-'}` : '-',
    },
    { label: '  first row stored after the restart (ms)', value: db?.storingAgainMs ?? '-' },
    {
      label: '  not-ready probes / liveness failures',
      value: db
        ? `${db.probes.reduce((n, p) => n + p.notReady, 0)} / ${db.probes.reduce((n, p) => n + p.liveFailed, 0)}`
        : '-',
    },
    {
      label: '  ReceiveMessage/s per worker while down',
      value: db ? db.probes.map((p) => p.receivesPerSecond ?? '?').join(', ') : '-',
    },
    {
      label: '  messages handed back / longest backoff (ms)',
      value: db ? `${db.handedBack} / ${db.longestBackoffMs}` : '-',
    },
    {
      label: 'SQS outage: slowest 503 (ms) / first 202 after (ms)',
      value: sqs ? `${sqs.slowest503Ms} / ${sqs.recoveryMs ?? '-'}` : '-',
    },
  ];
  // The windows' counts are invariants above; each window's measured bound explains them.
  const silentRows = silent.rows
    .filter((r) => r.label.startsWith('  '))
    .map((r) => ({ ...r, label: `silent ${r.label.trim()}` }));
  const table = printTable([
    ...invariants.map((r) => ({ label: r.label, value: r.value, expected: r.expected, ok: r.ok })),
    ...explaining,
    ...silentRows,
  ]);
  return { figures, invariants, failures, warnings, table, silent: silentBounds };
}
