/**
 * The chaos run's clients: a stream of distinct forms, paced, from concurrent
 * clients. Each form carries a unique `chaos_id`. A client that gets a 503 or
 * no answer retries the same form after a pause, as a user would; every try
 * is a new submission to the web (the web's at-least-once boundary).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { jsonBody, sign } from '../harness/http.ts';
import { validForm } from '../harness/forms.ts';

/** One POST of a form. */
export interface Attempt {
  /** Milliseconds since the run's epoch. */
  start: number;
  end: number;
  /** HTTP status, or 0 for no answer (connection error or client timeout). */
  status: number;
  error?: string;
}

export interface FormRecord {
  index: number;
  chaosId: string;
  attempts: Attempt[];
  /** SQS message id from the 202 reply. */
  acceptedId?: string;
  /** Submission id from the 202 reply: the id the stored row carries. */
  acceptedSubmissionId?: string;
  /** `data` from the 202 reply. */
  acceptedData?: unknown;
  /** Statuses other than 202/503/no answer end the form's tries. */
  unexpected?: { status: number; body: string };
}

export interface LoadOptions {
  baseUrl: string;
  secret: string;
  runId: string;
  forms: number;
  clients: number;
  /** Forms started per second (first tries). */
  rate: number;
  /** Tries per form before giving up. */
  maxTries: number;
  /** The run's clock. */
  now: () => number;
}

export interface Load {
  records: FormRecord[];
  /** Share of the stream's forms whose first try has started, 0–1. */
  progress(): number;
  /**
   * Submits one more distinct form now, outside the paced stream (a fault's
   * probe), with the same retries; resolves when it is accepted or given up.
   */
  extra(): Promise<FormRecord>;
  done: Promise<void>;
  /** Stops starting forms and tries (tries in flight finish). */
  abort(): void;
}

const PATH = '/form/';

/** Starts the clients. */
export function startLoad(options: LoadOptions): Load {
  const records: FormRecord[] = [];
  let next = 0;
  let aborted = false;
  const t0 = options.now();

  const submit = async (record: FormRecord, body: string): Promise<void> => {
    for (let tryNo = 1; tryNo <= options.maxTries && !aborted; tryNo++) {
      const start = options.now();
      let attempt: Attempt;
      let text = '';
      try {
        const res = await fetch(options.baseUrl + PATH, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-signature': sign(PATH, body, options.secret) },
          body,
          signal: AbortSignal.timeout(15_000),
        });
        text = await res.text();
        attempt = { start, end: options.now(), status: res.status };
      } catch (error) {
        attempt = {
          start,
          end: options.now(),
          status: 0,
          error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
        };
      }
      record.attempts.push(attempt);
      if (attempt.status === 202) {
        const reply = JSON.parse(text) as { id: string; submission_id: string; data: unknown };
        record.acceptedId = reply.id;
        record.acceptedSubmissionId = reply.submission_id;
        record.acceptedData = reply.data;
        return;
      }
      if (attempt.status !== 503 && attempt.status !== 0) {
        record.unexpected = { status: attempt.status, body: text.slice(0, 500) };
        return;
      }
      await sleep(Math.min(250 * tryNo, 1000));
    }
  };

  let started = 0;
  let extras = 0;
  const send = async (index: number): Promise<FormRecord> => {
    const chaosId = `${options.runId}-${index}`;
    const record: FormRecord = { index, chaosId, attempts: [] };
    records.push(record);
    const form = validForm({ chaos_id: chaosId, company_name: `Chaos Co ${index}`, contact_name: `Tester ${index}` });
    await submit(record, jsonBody(form));
    return record;
  };

  const client = async (): Promise<void> => {
    while (!aborted && next < options.forms) {
      const index = next++;
      const due = t0 + (index / options.rate) * 1000;
      const wait = due - options.now();
      if (wait > 0) await sleep(wait);
      if (aborted) return;
      started += 1;
      await send(index);
    }
  };

  const done = Promise.all(Array.from({ length: options.clients }, () => client())).then(() => undefined);
  return {
    records,
    progress: () => Math.min(1, started / options.forms),
    extra: () => send(options.forms + extras++),
    done,
    abort: () => {
      aborted = true;
    },
  };
}
