/**
 * What a chaos run must show, declared once: each invariant names the figure
 * it reads (a key of the summary line), what is expected and when it holds.
 * The table, the failures, the summary's `invariants` and test/chaos.test.ts
 * all come from this list.
 */

/** The figures of a run, by their key in the summary line. */
export interface Figures {
  forms_requested: number;
  forms_sent: number;
  submissions: number;
  accepted_202: number;
  answered_503: number;
  no_answer: number;
  other_answers: number;
  forms_never_accepted: number;
  rows_stored: number;
  accepted_with_exactly_one_row: number;
  accepted_missing: number;
  duplicates: number;
  stored_under_other_copy: number;
  data_mismatches: number;
  foreign_rows: number;
  redeliveries_skipped: number;
  content_duplicates: number;
  content_duplicates_after_retry: number;
  rows_without_202: number;
  /** 1 when the form queue emptied at the end (nothing visible, in flight or delayed), else 0. */
  queue_emptied: number;
  lost_answer_windows: number;
  lost_answer_windows_ok: number;
  answers_lost: number;
  poison_injected: number;
  poison_found_unchanged: number;
  poison_with_attributes: number;
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
  /** 202 answers while the web's SQS path was cut (must be none). */
  accepted_during_sqs_outage: number;
  answered_503_during_sqs_outage: number;
  /** Windows in which the web's path to SQS accepted and never answered, or stopped mid-answer. */
  silent_sqs_windows: number;
  silent_sqs_windows_survived: number;
  /** Windows in which the workers' path to SQS or to PostgreSQL went silent. */
  silent_worker_windows: number;
  silent_worker_windows_survived: number;
}

export type FigureKey = keyof Figures;

export interface Invariant {
  key: FigureKey;
  label: string;
  /** What is expected, as printed. */
  expected(f: Figures): string;
  holds(f: Figures): boolean;
  /** Whether it is about what PostgreSQL holds (a fault is survived only if all of these hold). */
  storage?: true;
  /** Which examples of chaos/verify.ts's checkStorage explain a failure. */
  examples?: 'missing' | 'duplicates' | 'mismatches' | 'contentDuplicates' | 'unexpected';
}

type Extra = Pick<Invariant, 'storage' | 'examples'>;

const zero = (key: FigureKey, label: string, extra: Extra = {}): Invariant => ({
  key,
  label,
  expected: () => '0',
  holds: (f) => f[key] === 0,
  ...extra,
});

const equals = (key: FigureKey, label: string, other: FigureKey, extra: Extra = {}): Invariant => ({
  key,
  label,
  expected: (f) => `${f[other]} (${other})`,
  holds: (f) => f[key] === f[other],
  ...extra,
});

const atLeast = (key: FigureKey, label: string, min: FigureKey | number): Invariant => ({
  key,
  label,
  expected: (f) => (typeof min === 'number' ? `≥ ${min}` : `≥ ${f[min]} (${min})`),
  holds: (f) => f[key] >= (typeof min === 'number' ? min : f[min]),
});

/** Every invariant of a run, in the order of the table. */
export const INVARIANTS: readonly Invariant[] = [
  atLeast('forms_sent', 'forms sent (distinct)', 'forms_requested'),
  atLeast('accepted_202', '202 accepted', 1),
  zero('other_answers', 'answers neither 202 nor 503', { examples: 'unexpected' }),
  equals('accepted_with_exactly_one_row', 'accepted ids with exactly 1 row', 'accepted_202', { storage: true }),
  zero('accepted_missing', 'accepted but missing from PostgreSQL', { storage: true, examples: 'missing' }),
  zero('duplicates', 'duplicates (rows per message id or submission id > 1)', {
    storage: true,
    examples: 'duplicates',
  }),
  zero('content_duplicates', 'content duplicates (same chaos_id)', { storage: true, examples: 'contentDuplicates' }),
  zero('data_mismatches', 'rows differing from their 202 data', { storage: true, examples: 'mismatches' }),
  zero('foreign_rows', 'rows that are not forms of this run (poison stored?)', { storage: true }),
  atLeast('rows_stored', 'rows stored', 'accepted_202'),
  {
    key: 'queue_emptied',
    label: 'form queue empty at the end (1 = yes)',
    expected: () => '1',
    holds: (f) => f.queue_emptied === 1,
    storage: true,
  },
  atLeast('answers_lost', 'SQS answers lost to the web', 1),
  equals('lost_answer_windows_ok', 'lost-answer windows: every 202 stored once', 'lost_answer_windows'),
  atLeast('poison_injected', 'poison injected', 1),
  equals('poison_found_unchanged', 'poison in the invalid queue, body unchanged', 'poison_injected'),
  equals('poison_with_attributes', '  with original_message_id + reason', 'poison_injected'),
  zero('forms_dead_lettered', 'forms dead-lettered'),
  atLeast('worker_kills', 'worker SIGKILLs', 1),
  equals('worker_kills_survived', 'worker SIGKILLs survived', 'worker_kills'),
  atLeast('sigterms', 'worker SIGTERMs', 1),
  equals('sigterms_clean', 'worker SIGTERMs drained, exit 0', 'sigterms'),
  atLeast('db_outages', 'database outages', 1),
  equals('db_outages_survived', 'database outages survived', 'db_outages'),
  atLeast('sqs_outages', 'SQS outages', 1),
  equals('sqs_outages_survived', 'SQS outages survived', 'sqs_outages'),
  zero('accepted_during_sqs_outage', '202 while the web could not reach SQS'),
  atLeast('answered_503_during_sqs_outage', '503 while the web could not reach SQS', 1),
  atLeast('silent_sqs_windows', 'silent SQS windows (blackhole, stall)', 1),
  equals('silent_sqs_windows_survived', 'silent SQS windows survived', 'silent_sqs_windows'),
  atLeast('silent_worker_windows', "silent windows on the workers' paths", 1),
  equals('silent_worker_windows_survived', "silent windows on the workers' paths survived", 'silent_worker_windows'),
];

/** One invariant as the summary line carries it. */
export interface InvariantResult {
  key: FigureKey;
  label: string;
  value: number;
  expected: string;
  ok: boolean;
}

/** Every invariant checked against `figures`. */
export function checkInvariants(figures: Figures): InvariantResult[] {
  return INVARIANTS.map((i) => ({
    key: i.key,
    label: i.label,
    value: figures[i.key],
    expected: i.expected(figures),
    ok: i.holds(figures),
  }));
}

/** Whether every invariant about what PostgreSQL holds holds. */
export function storageHolds(figures: Figures): boolean {
  return INVARIANTS.filter((i) => i.storage).every((i) => i.holds(figures));
}
