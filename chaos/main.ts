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
  type SilentKind,
  terminateWorker,
  type FaultContext,
  type FaultResult,
} from './faults.ts';
import { ROOT, startStack, type Stack } from './stack.ts';
import { readRows } from './verify.ts';
import { reportRun } from './report.ts';
import { LOG_CODES } from '../services/common/log-codes.ts';

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

    // Deliveries of messages already stored (a worker died between INSERT and DELETE): skipped by the unique message id.
    const redeliveriesSkipped = s.workers
      .flatMap((w) => w.history)
      .flatMap((h) => h.handle.logs)
      .filter((l) => l.code === LOG_CODES.duplicateDelivery)
      .reduce((n, l) => n + (Array.isArray(l.messageIds) ? l.messageIds.length : 1), 0);
    const report = reportRun({
      runId,
      formsRequested: options.forms,
      records: l.records,
      rows: await readRows(s.databaseUrl),
      invalid: await receiveAll(s.sqs, s.invalidQueueUrl, 10_000),
      results,
      queueEmptied: empty,
      redeliveriesSkipped,
      failures,
    });
    failures.splice(0, failures.length, ...report.failures);
    warnings.push(...report.warnings);
    process.stdout.write(`\n${report.table}\n`);
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
      ...report.figures,
      ...report.silent,
      invariants: report.invariants,
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
