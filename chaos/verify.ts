/**
 * The end of a chaos run: read what PostgreSQL and the invalid queue hold and
 * check the promise of a 202 against it.
 */
import { isDeepStrictEqual } from 'node:util';
import pg from 'pg';
import type { Message } from '@aws-sdk/client-sqs';
import type { FormRecord } from './load.ts';
import type { PoisonMessage } from './faults.ts';

export interface StoredRow {
  sqs_message_id: string | null;
  submission_id: string | null;
  data: Record<string, unknown>;
}

export async function readRows(databaseUrl: string): Promise<StoredRow[]> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const out = await client.query<StoredRow>('SELECT sqs_message_id, submission_id, data FROM form_form');
    return out.rows;
  } finally {
    await client.end();
  }
}

export interface StorageFigures {
  formsSent: number;
  attempts: number;
  accepted: number;
  answered503: number;
  noAnswer: number;
  unexpectedAnswers: number;
  /** Forms never accepted (tries exhausted). */
  gaveUp: number;
  rowsStored: number;
  /** How many accepted submissions (the 202's submission_id) have exactly one row. */
  acceptedWithOneRow: number;
  acceptedMissing: number;
  /** Rows sharing an sqs_message_id, or a submission_id, beyond the first. */
  duplicates: number;
  /** Accepted submissions stored under another copy's message id than the one their 202 named (a lost answer's first copy). */
  storedUnderOtherCopy: number;
  /** Accepted forms whose row differs from the data of the 202 reply. */
  dataMismatches: number;
  /** Extra rows with a chaos_id already stored under another message id. */
  contentDuplicates: number;
  /** …of those, for forms a client re-sent after a 503 or no answer. */
  contentDuplicatesAfterRetry: number;
  /** Rows whose submission id no 202 reported (a send that reached SQS but whose answer, and every retry's, was lost). */
  rowsWithoutAccepted: number;
  /** Rows that are not forms of this run (poison must never be stored). */
  foreignRows: number;
}

export function checkStorage(
  records: readonly FormRecord[],
  rows: readonly StoredRow[],
  runId: string,
): { figures: StorageFigures; examples: Record<string, string[]> } {
  const byMessageId = new Map<string, StoredRow[]>();
  const bySubmissionId = new Map<string, StoredRow[]>();
  const byChaosId = new Map<string, StoredRow[]>();
  let foreignRows = 0;
  for (const row of rows) {
    const id = row.sqs_message_id ?? '';
    byMessageId.set(id, [...(byMessageId.get(id) ?? []), row]);
    if (row.submission_id)
      bySubmissionId.set(row.submission_id, [...(bySubmissionId.get(row.submission_id) ?? []), row]);
    const chaosId = typeof row.data.chaos_id === 'string' ? row.data.chaos_id : undefined;
    if (!chaosId?.startsWith(`${runId}-`)) {
      foreignRows += 1;
      continue;
    }
    byChaosId.set(chaosId, [...(byChaosId.get(chaosId) ?? []), row]);
  }
  const examples: Record<string, string[]> = {
    missing: [],
    duplicates: [],
    mismatches: [],
    contentDuplicates: [],
    unexpected: [],
  };
  const note = (key: string, text: string): void => {
    const list = examples[key]!;
    if (list.length < 5) list.push(text);
  };
  const acceptedIds = new Set<string>();
  let storedUnderOtherCopy = 0;
  let attempts = 0;
  let answered503 = 0;
  let noAnswer = 0;
  let unexpectedAnswers = 0;
  let gaveUp = 0;
  let acceptedWithOneRow = 0;
  let acceptedMissing = 0;
  let dataMismatches = 0;
  let contentDuplicates = 0;
  let contentDuplicatesAfterRetry = 0;
  for (const r of records) {
    attempts += r.attempts.length;
    answered503 += r.attempts.filter((a) => a.status === 503).length;
    noAnswer += r.attempts.filter((a) => a.status === 0).length;
    if (r.unexpected) {
      unexpectedAnswers += 1;
      note('unexpected', `${r.chaosId}: ${r.unexpected.status} ${r.unexpected.body}`);
    }
    const stored = byChaosId.get(r.chaosId) ?? [];
    if (stored.length > 1) {
      contentDuplicates += stored.length - 1;
      if (r.attempts.length > 1) contentDuplicatesAfterRetry += stored.length - 1;
      note(
        'contentDuplicates',
        `${r.chaosId}: ${stored.length} rows (message ids ${stored.map((s) => s.sqs_message_id).join(', ')}; tries ${r.attempts.map((a) => a.status).join(',')})`,
      );
    }
    if (r.acceptedId === undefined) {
      if (!r.unexpected) gaveUp += 1;
      continue;
    }
    const submission = r.acceptedSubmissionId ?? r.acceptedId;
    acceptedIds.add(submission);
    const mine =
      (r.acceptedSubmissionId ? bySubmissionId.get(r.acceptedSubmissionId) : byMessageId.get(r.acceptedId)) ?? [];
    if (mine.length > 0 && mine[0]!.sqs_message_id !== r.acceptedId) storedUnderOtherCopy += 1;
    if (mine.length === 0) {
      acceptedMissing += 1;
      note('missing', `${r.chaosId} (message ${r.acceptedId}, submission ${submission})`);
    } else if (mine.length === 1) acceptedWithOneRow += 1;
    if (mine.length > 0 && !isDeepStrictEqual(mine[0]!.data, r.acceptedData)) {
      dataMismatches += 1;
      note('mismatches', `${r.chaosId} (message ${r.acceptedId})`);
    }
  }
  let duplicates = 0;
  let rowsWithoutAccepted = 0;
  for (const [id, list] of byMessageId) {
    if (list.length > 1) {
      duplicates += list.length - 1;
      note('duplicates', `message ${id}: ${list.length} rows`);
    }
  }
  for (const [id, list] of bySubmissionId) {
    if (list.length > 1) {
      duplicates += list.length - 1;
      note('duplicates', `submission ${id}: ${list.length} rows`);
    }
  }
  for (const row of rows) {
    if (!acceptedIds.has(row.submission_id ?? row.sqs_message_id ?? '')) rowsWithoutAccepted += 1;
  }
  const accepted = acceptedIds.size;
  return {
    figures: {
      formsSent: records.length,
      attempts,
      accepted,
      answered503,
      noAnswer,
      unexpectedAnswers,
      gaveUp,
      rowsStored: rows.length,
      acceptedWithOneRow,
      acceptedMissing,
      duplicates,
      storedUnderOtherCopy,
      dataMismatches,
      contentDuplicates,
      contentDuplicatesAfterRetry,
      rowsWithoutAccepted,
      foreignRows,
    },
    examples,
  };
}

export interface PoisonFigures {
  injected: number;
  /** Copies in the invalid queue whose body equals an injected body byte for byte. */
  foundUnchanged: number;
  /** …of those, with original_message_id equal to the injected id and a reason. */
  withAttributes: number;
  /** Injected messages with no unchanged copy. */
  missing: string[];
  /** Injected messages whose copy lacks the attributes. */
  withoutAttributes: string[];
  /** Injected messages copied more than once. */
  copiedTwice: string[];
  /** Messages in the invalid queue that are forms of this run (dead-lettered by the redrive policy). */
  formsDeadLettered: number;
  /** Other messages in the invalid queue. */
  other: number;
}

export function checkPoison(
  injected: readonly PoisonMessage[],
  invalid: readonly Message[],
  runId: string,
): PoisonFigures {
  const figures: PoisonFigures = {
    injected: injected.length,
    foundUnchanged: 0,
    withAttributes: 0,
    missing: [],
    withoutAttributes: [],
    copiedTwice: [],
    formsDeadLettered: 0,
    other: 0,
  };
  const matched = new Set<Message>();
  for (const p of injected) {
    const copies = invalid.filter((m) => m.Body !== undefined && Buffer.from(m.Body).equals(Buffer.from(p.body)));
    copies.forEach((c) => matched.add(c));
    if (copies.length === 0) {
      figures.missing.push(p.kind);
      continue;
    }
    figures.foundUnchanged += 1;
    if (copies.length > 1) figures.copiedTwice.push(p.kind);
    const copy = copies[0]!;
    const original = copy.MessageAttributes?.original_message_id?.StringValue;
    const reason = copy.MessageAttributes?.reason?.StringValue;
    if (original === p.messageId && reason) figures.withAttributes += 1;
    else figures.withoutAttributes.push(p.kind);
  }
  for (const m of invalid) {
    if (matched.has(m)) continue;
    if (m.Body?.includes(`"chaos_id":"${runId}-`)) figures.formsDeadLettered += 1;
    else figures.other += 1;
  }
  return figures;
}
