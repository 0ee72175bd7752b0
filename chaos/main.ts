/**
 * `npm run chaos [-- --forms N ...]`: the fault-injection run on the real
 * processes. See docs/reliability.md.
 *
 * Starts PostgreSQL, the SQS emulator (its own process), migrates, runs the
 * web and the workers as separate processes and submits a stream of distinct
 * forms from concurrent clients, while it SIGKILLs and SIGTERMs workers, stops
 * PostgreSQL, cuts the web's path to SQS and injects poison messages. At the
 * end it waits for the queue to empty, checks that every 202 became exactly
 * one row, prints a table and a final JSON line, and exits 1 if an invariant
 * failed (2 on bad arguments).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { queueCounts, receiveAll } from '../harness/sqs.ts';
import { startLoad, type Load } from './load.ts';
import {
  databaseOutage,
  injectPoison,
  killWorkers,
  random,
  sqsOutage,
  lostAnswers,
  SILENT_KINDS,
  silentWindow,
  silentWindowReport,
  type SilentKind,
  type LostAnswersResult,
  terminateWorker,
  type FaultContext,
  type FaultResult,
  type PoisonResult,
  type SigtermResult,
} from './faults.ts';
import { ROOT, startStack, type Stack } from './stack.ts';
import { checkPoison, checkStorage, readRows } from './verify.ts';

interface Options {
  forms: number;
  clients: number;
  workers: number;
  /** Seconds over which the forms are spread. */
  duration: number;
  kills: number;
  sigterms: number;
  dbOutageMs: number;
  sqsOutageMs: number;
  lostAnswersMs: number;
  seed: number;
  jsonOut: string | undefined;
  logDir: string | undefined;
  short: boolean;
}

const USAGE = `usage: npm run chaos -- [--short] [--forms N] [--clients N] [--workers N] [--duration S]
       [--kills N] [--sigterms N] [--db-outage-ms MS] [--sqs-outage-ms MS] [--lost-answers-ms MS] [--seed N]
       [--json-out FILE] [--log-dir DIR]`;

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      short: { type: 'boolean', default: false },
      forms: { type: 'string' },
      clients: { type: 'string' },
      workers: { type: 'string' },
      duration: { type: 'string' },
      kills: { type: 'string' },
      sigterms: { type: 'string' },
      'db-outage-ms': { type: 'string' },
      'sqs-outage-ms': { type: 'string' },
      'lost-answers-ms': { type: 'string' },
      seed: { type: 'string' },
      'json-out': { type: 'string' },
      'log-dir': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const short = values.short ?? false;
  const int = (name: string, text: string | undefined, fallback: number, min: number, max: number): number => {
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new Error(`--${name} must be an integer from ${min} to ${max}`);
    return n;
  };
  return {
    short,
    forms: int('forms', values.forms, short ? 300 : 5000, 10, 1_000_000),
    clients: int('clients', values.clients, short ? 8 : 16, 1, 256),
    workers: int('workers', values.workers, 2, 2, 8),
    duration: int('duration', values.duration, short ? 16 : 100, 5, 3600),
    kills: int('kills', values.kills, short ? 1 : 5, 1, 50),
    sigterms: int('sigterms', values.sigterms, short ? 1 : 2, 1, 50),
    dbOutageMs: int('db-outage-ms', values['db-outage-ms'], short ? 4000 : 8000, 1000, 3_600_000),
    sqsOutageMs: int('sqs-outage-ms', values['sqs-outage-ms'], short ? 3000 : 5000, 1000, 3_600_000),
    lostAnswersMs: int('lost-answers-ms', values['lost-answers-ms'], short ? 2000 : 5000, 500, 3_600_000),
    seed: int('seed', values.seed, Math.floor(Math.random() * 1_000_000), 0, 2 ** 31),
    jsonOut: values['json-out'],
    logDir: values['log-dir'],
  };
}

type FaultKind = 'poison' | 'kill' | 'kill-all' | 'sigterm' | 'db' | 'sqs' | 'lost' | SilentKind;

/** Which fault happens at which share of the forms sent. */
function schedule(options: Options, rng: () => number): { at: number; kind: FaultKind }[] {
  const kinds: FaultKind[] = ['poison', 'lost', 'kill', 'db', 'sigterm', 'sqs', ...SILENT_KINDS];
  let kills = options.kills - 1;
  let sigterms = options.sigterms - 1;
  let allAtOnce = options.kills >= 3;
  while (kills > 0 || sigterms > 0) {
    if (kills > 0) {
      kinds.push(allAtOnce ? 'kill-all' : 'kill');
      allAtOnce = false;
      kills -= 1;
    }
    if (kills > 0) {
      kinds.push('kill');
      kills -= 1;
    }
    if (sigterms > 0) {
      kinds.push('sigterm');
      sigterms -= 1;
    }
  }
  const first = 0.04;
  const last = 0.85;
  const step = (last - first) / Math.max(1, kinds.length - 1);
  return kinds.map((kind, i) => ({
    kind,
    at: Math.min(0.9, Math.max(0.02, first + i * step + (rng() - 0.5) * step * 0.5)),
  }));
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

async function waitForEmptyQueue(stack: Stack, timeoutMs: number, log: (m: string) => void): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  let quiet = 0;
  let lastLog = 0;
  while (Date.now() < deadline) {
    const c = await queueCounts(stack.sqs, stack.formQueueUrl);
    if (c.visible === 0 && c.inFlight === 0 && c.delayed === 0) {
      quiet += 1;
      if (quiet >= 3) return true;
    } else quiet = 0;
    if (Date.now() - lastLog > 5000) {
      log(`queue: ${c.visible} visible, ${c.inFlight} in flight, ${c.delayed} delayed`);
      lastLog = Date.now();
    }
    await sleep(500);
  }
  return false;
}

async function main(): Promise<number> {
  let options: Options;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n${USAGE}\n`);
    return 2;
  }
  const epoch = Date.now();
  const now = (): number => Date.now() - epoch;
  const log = (message: string): void => {
    process.stdout.write(`[${(now() / 1000).toFixed(1).padStart(6)} s] ${message}\n`);
  };
  const runId =
    `${new Date().toISOString().slice(0, 19).replace(/[-:T]/g, '')}${randomBytes(2).toString('hex')}`.toLowerCase();
  const logDir = options.logDir ?? join(ROOT, '.data', 'chaos', runId);
  const rng = random(options.seed);
  const settings = { sqsRequestTimeoutMs: 2000, sqsMaxAttempts: 2, sendBatchWindowMs: 2, workerConcurrency: 4 };
  const secret = `chaos-${randomBytes(16).toString('hex')}`;
  log(
    `chaos run ${runId}: ${options.forms} forms from ${options.clients} clients over ~${options.duration} s, ${options.workers} workers, seed ${options.seed}${options.short ? ' (short)' : ''}`,
  );

  let stack: Stack | undefined;
  let load: Load | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    log(`${signal}: stopping everything`);
    load?.abort();
    stack?.killAll();
    void (stack?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const failures: string[] = [];
  const warnings: string[] = [];
  const results: FaultResult[] = [];
  try {
    stack = await startStack({
      runId,
      workers: options.workers,
      logDir,
      log,
      env: {
        SQS_WAIT_TIME: '1',
        SQS_VISIBILITY_TIMEOUT: '5',
        SQS_RETRY_BACKOFF_BASE_SECONDS: '1',
        SQS_RETRY_BACKOFF_MAX_SECONDS: '5',
        SQS_REQUEST_TIMEOUT_MS: String(settings.sqsRequestTimeoutMs),
        SQS_MAX_ATTEMPTS: String(settings.sqsMaxAttempts),
        SQS_SEND_BATCH_WINDOW_MS: String(settings.sendBatchWindowMs),
        WORKER_CONCURRENCY: String(settings.workerConcurrency),
        DATABASE_TIMEOUT_MS: '2000',
        UI_SECRET: secret,
      },
    });
    const s = stack;
    log(
      `stack up: web ${s.webUrl}, emulator ${s.emulatorEndpoint}, PostgreSQL port ${s.postgres.port}, workers ${s.workers.map((w) => `${w.name} (health ${w.healthPort})`).join(', ')}`,
    );

    load = startLoad({
      baseUrl: s.webUrl,
      secret,
      runId,
      forms: options.forms,
      clients: options.clients,
      rate: options.forms / options.duration,
      maxTries: 40,
      now,
    });
    const l = load;
    let loadDone = false;
    void l.done.then(() => {
      loadDone = true;
      log(`all ${l.records.length} forms submitted`);
    });
    const ctx: FaultContext = { stack: s, load: l, rng, now, log, settings };

    const plan = schedule(options, rng);
    log(`fault plan: ${plan.map((p) => `${p.kind}@${Math.round(p.at * 100)}%`).join(', ')}`);
    for (const step of plan) {
      while (l.progress() < step.at && !loadDone) await sleep(100);
      if (loadDone) log(`(the forms were all sent before ${step.kind}; it acts on the backlog)`);
      switch (step.kind) {
        case 'poison':
          results.push(await injectPoison(ctx));
          break;
        case 'kill':
          results.push(await killWorkers(ctx, false));
          break;
        case 'kill-all':
          results.push(await killWorkers(ctx, true));
          break;
        case 'sigterm':
          results.push(await terminateWorker(ctx, s.workers[Math.floor(rng() * s.workers.length)]!, false));
          break;
        case 'db':
          results.push(await databaseOutage(ctx, options.dbOutageMs));
          break;
        case 'sqs':
          results.push(await sqsOutage(ctx, options.sqsOutageMs));
          break;
        case 'lost':
          results.push(await lostAnswers(ctx, options.lostAnswersMs));
          break;
        default:
          results.push(await silentWindow(ctx, step.kind, options.sqsOutageMs));
      }
    }
    await l.done;

    log('waiting until the form queue is empty and nothing is in flight');
    const empty = await waitForEmptyQueue(s, options.short ? 60_000 : 180_000, log);
    if (!empty) failures.push('the form queue did not empty');

    log('stopping the workers with SIGTERM');
    for (const slot of s.workers) results.push(await terminateWorker(ctx, slot, true));
    log('stopping the web with SIGTERM');
    s.web.kill('SIGTERM');
    const webExit = await Promise.race([s.web.exited, sleep(15_000, undefined, { ref: false }).then(() => undefined)]);
    if (!webExit || webExit.code !== 0)
      failures.push(`the web did not exit 0 on SIGTERM (${webExit ? `code ${webExit.code}` : 'timeout'})`);

    const rows = await readRows(s.databaseUrl);
    const invalid = await receiveAll(s.sqs, s.invalidQueueUrl, 10_000);
    const storage = checkStorage(l.records, rows, runId);
    const poisonInjected = results.filter((r): r is PoisonResult => r.kind === 'poison').flatMap((r) => r.messages);
    const poison = checkPoison(poisonInjected, invalid, runId);
    const f = storage.figures;

    const kills = results.filter((r) => r.kind === 'sigkill');
    const killedProcesses = kills.reduce((n, k) => n + k.workers.length, 0);
    const sigterms = results.filter((r): r is SigtermResult => r.kind === 'sigterm');
    const dbOutages = results.filter((r) => r.kind === 'db-outage');
    const sqsOutages = results.filter((r) => r.kind === 'sqs-outage');
    const lostAnswerFaults = results.filter((r): r is LostAnswersResult => r.kind === 'lost-answers');
    const longestDrainMs = Math.max(0, ...sigterms.map((t) => t.drainMs ?? 0));
    // Deliveries of messages already stored (a worker died between INSERT and DELETE): skipped by the unique message id.
    const redeliveriesSkipped = s.workers
      .flatMap((w) => w.history)
      .flatMap((h) => h.handle.logs)
      .filter((l) => l.msg === 'duplicate delivery skipped; the form was already stored')
      .reduce((n, l) => n + (Array.isArray(l.messageIds) ? l.messageIds.length : 1), 0);
    const storageOk =
      f.acceptedMissing === 0 &&
      f.contentDuplicates === 0 &&
      f.duplicates === 0 &&
      f.dataMismatches === 0 &&
      f.foreignRows === 0 &&
      f.acceptedWithOneRow === f.accepted &&
      empty;

    if (f.accepted === 0) failures.push('no form was accepted');
    if (f.acceptedMissing > 0)
      failures.push(
        `${f.acceptedMissing} accepted forms missing from PostgreSQL (e.g. ${storage.examples.missing!.join('; ')})`,
      );
    if (f.duplicates > 0)
      failures.push(
        `${f.duplicates} duplicate rows for one message id (e.g. ${storage.examples.duplicates!.join('; ')})`,
      );
    if (f.dataMismatches > 0)
      failures.push(
        `${f.dataMismatches} rows differ from the data of their 202 (e.g. ${storage.examples.mismatches!.join('; ')})`,
      );
    if (f.foreignRows > 0) failures.push(`${f.foreignRows} rows are not forms of this run (poison stored?)`);
    if (f.unexpectedAnswers > 0)
      failures.push(
        `${f.unexpectedAnswers} submissions answered neither 202 nor 503 (e.g. ${storage.examples.unexpected!.join('; ')})`,
      );
    if (poison.foundUnchanged !== poison.injected)
      failures.push(
        `poison: ${poison.foundUnchanged} of ${poison.injected} found unchanged in the invalid queue (missing: ${poison.missing.join(', ')})`,
      );
    if (poison.copiedTwice.length > 0)
      warnings.push(`poison copied to the invalid queue more than once: ${poison.copiedTwice.join(', ')}`);
    if (poison.withoutAttributes.length > 0)
      warnings.push(
        `poison copies without original_message_id/reason attributes: ${poison.withoutAttributes.join(', ')}`,
      );
    if (poison.formsDeadLettered > 0)
      failures.push(`${poison.formsDeadLettered} forms were dead-lettered to the invalid queue`);
    for (const k of kills) if (!k.restarted) failures.push(`worker restart after SIGKILL failed: ${k.error ?? ''}`);
    for (const t of sigterms)
      if (!t.ok)
        failures.push(
          `${t.worker}: SIGTERM not clean (exit ${t.exitCode}, signal ${t.signal}, drained logged ${t.drainedLogged}, stopped logged ${t.stoppedLogged}${t.error ? `, ${t.error}` : ''})`,
        );
    for (const d of dbOutages) for (const p of d.problems) failures.push(`database outage: ${p}`);
    for (const q of sqsOutages) for (const p of q.problems) failures.push(`SQS outage: ${p}`);
    if (f.gaveUp > 0) warnings.push(`${f.gaveUp} forms were never accepted (clients gave up after 40 tries)`);
    if (f.contentDuplicates > 0)
      failures.push(
        `${f.contentDuplicates} content duplicates: a submission stored twice (e.g. ${storage.examples.contentDuplicates!.join('; ')})`,
      );
    for (const q of lostAnswerFaults) for (const p of q.problems) failures.push(`lost answers: ${p}`);
    const silent = silentWindowReport(results, storageOk);
    failures.push(...silent.failures);

    const sqsOutage0 = sqsOutages[0];
    const dbOutage0 = dbOutages[0];
    const table: Row[] = [
      {
        label: 'forms sent (distinct)',
        value: f.formsSent,
        expected: `≥ ${options.forms}`,
        ok: f.formsSent >= options.forms,
      },
      { label: '  of which probes (SQS outage, lost answers)', value: f.formsSent - options.forms },
      { label: 'submissions (tries)', value: f.attempts },
      { label: '202 accepted', value: f.accepted },
      { label: '503 answered', value: f.answered503 },
      { label: 'no answer (connection error)', value: f.noAnswer },
      { label: 'other answers', value: f.unexpectedAnswers, expected: '0', ok: f.unexpectedAnswers === 0 },
      { label: 'forms never accepted', value: f.gaveUp },
      { label: 'rows stored', value: f.rowsStored },
      {
        label: 'accepted ids with exactly 1 row',
        value: `${f.acceptedWithOneRow}/${f.accepted}`,
        expected: 'all',
        ok: f.acceptedWithOneRow === f.accepted,
      },
      { label: 'accepted but missing', value: f.acceptedMissing, expected: '0', ok: f.acceptedMissing === 0 },
      {
        label: 'duplicates (rows per message id or submission id > 1)',
        value: f.duplicates,
        expected: '0',
        ok: f.duplicates === 0,
      },
      {
        label: "  accepted, stored under another copy's message id",
        value: f.storedUnderOtherCopy,
        expected: 'reported',
      },
      {
        label: 'rows differing from their 202 data',
        value: f.dataMismatches,
        expected: '0',
        ok: f.dataMismatches === 0,
      },
      { label: 'redeliveries skipped as already stored', value: redeliveriesSkipped, expected: 'reported' },
      {
        label: 'content duplicates (same chaos_id)',
        value: f.contentDuplicates,
        expected: '0',
        ok: f.contentDuplicates === 0,
      },
      { label: '  of which after a client retry', value: f.contentDuplicatesAfterRetry },
      { label: 'rows without a 202 (503 but queued)', value: f.rowsWithoutAccepted, expected: 'reported' },
      {
        label: 'lost-answer windows: answers lost / tries 202 / 503',
        value: lostAnswerFaults.length
          ? lostAnswerFaults.map((q) => `${q.lost} / ${q.answered202} / ${q.answered503}`).join(', ')
          : '-',
        expected: 'n > 0',
        ok: lostAnswerFaults.length > 0 && lostAnswerFaults.every((q) => q.ok),
      },
      { label: 'poison injected', value: poison.injected },
      {
        label: 'poison in invalid queue, body unchanged',
        value: poison.foundUnchanged,
        expected: String(poison.injected),
        ok: poison.foundUnchanged === poison.injected,
      },
      {
        label: '  with original_message_id + reason',
        value: poison.withAttributes,
        expected: String(poison.injected),
        ok: poison.withAttributes === poison.injected,
      },
      {
        label: 'forms dead-lettered',
        value: poison.formsDeadLettered,
        expected: '0',
        ok: poison.formsDeadLettered === 0,
      },
      {
        label: 'worker SIGKILLs survived',
        value: `${storageOk ? killedProcesses : 0}/${killedProcesses}`,
        expected: '≥ 1',
        ok: killedProcesses > 0 && storageOk && kills.every((k) => k.restarted),
      },
      {
        label: 'worker SIGTERMs drained, exit 0',
        value: `${sigterms.filter((t) => t.ok).length}/${sigterms.length}`,
        expected: 'all',
        ok: sigterms.every((t) => t.ok),
      },
      { label: 'longest drain (ms)', value: longestDrainMs },
      {
        label: 'database outages survived',
        value: `${dbOutages.filter((d) => d.ok && storageOk).length}/${dbOutages.length}`,
        expected: 'all',
        ok: dbOutages.length > 0 && dbOutages.every((d) => d.ok) && storageOk,
      },
      {
        label: '  down (ms) / workers ready again after (ms)',
        value: dbOutage0 ? `${dbOutage0.downMs} / ${dbOutage0.recoveryMs ?? '-'}` : '-',
      },
      { label: '  first row stored after the restart (ms)', value: dbOutage0?.storingAgainMs ?? '-' },
      {
        label: '  not-ready probes / liveness failures',
        value: dbOutage0
          ? `${dbOutage0.probes.reduce((n, p) => n + p.notReady, 0)} / ${dbOutage0.probes.reduce((n, p) => n + p.liveFailed, 0)}`
          : '-',
      },
      {
        label: '  ReceiveMessage/s per worker while down',
        value: dbOutage0 ? dbOutage0.probes.map((p) => p.receivesPerSecond ?? '?').join(', ') : '-',
      },
      {
        label: '  messages handed back / longest backoff (ms)',
        value: dbOutage0 ? `${dbOutage0.handedBack} / ${dbOutage0.longestBackoffMs}` : '-',
      },
      {
        label: 'SQS outages survived',
        value: `${sqsOutages.filter((q) => q.ok && storageOk).length}/${sqsOutages.length}`,
        expected: 'all',
        ok: sqsOutages.length > 0 && sqsOutages.every((q) => q.ok) && storageOk,
      },
      {
        label: '  tries while down: 503 / 202',
        value: sqsOutage0 ? `${sqsOutage0.answered503} / ${sqsOutage0.answered202}` : '-',
        expected: 'n / 0',
        ok: sqsOutage0 ? sqsOutage0.answered202 === 0 && sqsOutage0.answered503 > 0 : false,
      },
      {
        label: '  slowest 503 (ms) / first 202 after (ms)',
        value: sqsOutage0 ? `${sqsOutage0.slowest503Ms} / ${sqsOutage0.recoveryMs ?? '-'}` : '-',
      },
      ...silent.rows,
    ];
    process.stdout.write(`\n${printTable(table)}\n`);
    for (const w of warnings) process.stdout.write(`warning: ${w}\n`);
    for (const e of failures) process.stdout.write(`FAILED: ${e}\n`);
    process.stdout.write(`logs: ${relative(process.cwd(), logDir) || logDir}\n`);

    const summary = {
      chaos: 'summary',
      ok: failures.length === 0,
      run_id: runId,
      seed: options.seed,
      short: options.short,
      duration_s: Math.round(now() / 1000),
      workers: options.workers,
      clients: options.clients,
      forms_sent: f.formsSent,
      submissions: f.attempts,
      accepted_202: f.accepted,
      answered_503: f.answered503,
      no_answer: f.noAnswer,
      forms_never_accepted: f.gaveUp,
      rows_stored: f.rowsStored,
      accepted_with_exactly_one_row: f.acceptedWithOneRow,
      accepted_missing: f.acceptedMissing,
      duplicates: f.duplicates,
      data_mismatches: f.dataMismatches,
      redeliveries_skipped: redeliveriesSkipped,
      content_duplicates: f.contentDuplicates,
      content_duplicates_after_retry: f.contentDuplicatesAfterRetry,
      stored_under_other_copy: f.storedUnderOtherCopy,
      answers_lost: lostAnswerFaults.reduce((n, q) => n + q.lost, 0),
      rows_without_202: f.rowsWithoutAccepted,
      poison_injected: poison.injected,
      poison_found_unchanged: poison.foundUnchanged,
      poison_with_attributes: poison.withAttributes,
      forms_dead_lettered: poison.formsDeadLettered,
      worker_kills: killedProcesses,
      worker_kills_survived: storageOk && kills.every((k) => k.restarted) ? killedProcesses : 0,
      sigterms: sigterms.length,
      sigterms_clean: sigterms.filter((t) => t.ok).length,
      longest_drain_ms: longestDrainMs,
      db_outages: dbOutages.length,
      db_outages_survived: dbOutages.filter((d) => d.ok && storageOk).length,
      sqs_outages: sqsOutages.length,
      sqs_outages_survived: sqsOutages.filter((q) => q.ok && storageOk).length,
      ...silent.summary,
      faults: results.map((r) =>
        r.kind === 'poison'
          ? {
              kind: r.kind,
              at: r.at,
              messages: r.messages.map((m) => ({ kind: m.kind, bytes: m.bytes, messageId: m.messageId })),
            }
          : r,
      ),
      warnings,
      failures,
    };
    if (options.jsonOut) {
      await mkdir(join(options.jsonOut, '..'), { recursive: true });
      await writeFile(options.jsonOut, `${JSON.stringify(summary, null, 2)}\n`);
    }
    // The final line leaves out the per-fault details (they are in --json-out).
    process.stdout.write(`${JSON.stringify({ ...summary, faults: undefined })}\n`);
    return failures.length === 0 ? 0 : 1;
  } catch (error) {
    log(`chaos run failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.stdout.write(
      `${JSON.stringify({ chaos: 'summary', ok: false, failures: [...failures, `run aborted: ${String(error)}`] })}\n`,
    );
    return 1;
  } finally {
    load?.abort();
    await stack?.stop();
  }
}

process.exitCode = await main();
