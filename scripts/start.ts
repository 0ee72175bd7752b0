/**
 * `npm start`: the whole pipeline on a machine with nothing installed.
 *
 * Without DATABASE_URL an embedded PostgreSQL runs from `.data/postgres`;
 * without SQS_ENDPOINT_URL the fauxqs emulator runs in this process. Then the
 * queues are created and the database migrated (harness/pipeline.ts), and the
 * web and the worker run as child processes, exactly as their containers would. Ctrl-C drains both and
 * stops everything.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../services/common/config.ts';
import { ConfigError } from '../services/common/errors.ts';
import { computeSignature } from '../services/web/signature.ts';
import { startEmbeddedPostgres } from '../harness/embedded-postgres.ts';
import { freePort } from '../harness/ports.ts';
import { preparePipeline, ROOT, SERVICES } from '../harness/pipeline.ts';

const DATA_DIR = join(ROOT, '.data', 'postgres');
/** Preferred local ports (away from the standard ones); a free one is used when taken. */
const PG_PORT = 54329;
const SQS_PORT = 4566;

const say = (line = ''): void => {
  process.stdout.write(`${line}\n`);
};

/** Waits until `url` answers 200, so the printed command works when pasted at once (at most 30 s). */
async function untilReady(url: string, gaveUp: () => boolean): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!gaveUp() && Date.now() < deadline) {
    const ok = await fetch(url, { signal: AbortSignal.timeout(1000) }).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Stoppable {
  name: string;
  stop(): Promise<void>;
}

async function startLocalPostgres(): Promise<{ url: string } & Stoppable> {
  if (!existsSync(join(DATA_DIR, 'data', 'PG_VERSION')))
    say('Initialising an embedded PostgreSQL in .data/postgres ...');
  const pg = await startEmbeddedPostgres({
    dir: DATA_DIR,
    port: await freePort(PG_PORT),
    onError: (error: unknown) => process.stderr.write(`postgres: ${String(error)}\n`),
  });
  return { name: 'PostgreSQL', url: await pg.createDatabase('form_data'), stop: () => pg.stop() };
}

async function startEmulator(): Promise<{ endpoint: string } & Stoppable> {
  const { startFauxqs } = await import('fauxqs');
  const server = await startFauxqs({ port: await freePort(SQS_PORT), logger: false });
  return { name: 'SQS emulator', endpoint: server.address, stop: () => server.stop() };
}

function run(args: readonly string[], env: NodeJS.ProcessEnv): ChildProcess {
  // A process group of its own: Ctrl-C reaches only this script, which sends each child exactly one SIGTERM.
  // Its output goes straight to the terminal (harness/pipeline.ts's startService would parse it).
  return spawn(process.execPath, [...args], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'inherit', 'inherit'],
    detached: true,
  });
}

async function main(): Promise<number> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  // Readable logs in a terminal, JSON lines when piped; LOG_FORMAT decides when set.
  env.LOG_FORMAT ||= process.stdout.isTTY ? 'pretty' : 'json';
  // Check what the user set before starting anything.
  loadConfig(env);
  const stack: Stoppable[] = [];
  const children: Array<{ name: string; child: ChildProcess; exited: Promise<number | null> }> = [];
  let stopping = false;
  let requestStop = (): void => undefined;
  const stopRequested = new Promise<void>((done) => {
    requestStop = done;
  });
  const stopAll = async (): Promise<void> => {
    await Promise.all(children.map((c) => c.exited));
    for (const s of stack.reverse()) {
      await s.stop().catch((error: unknown) => process.stderr.write(`could not stop ${s.name}: ${String(error)}\n`));
    }
  };
  const onSignal = (): void => {
    if (stopping) return;
    stopping = true;
    requestStop();
    say('\nStopping: draining the web and the worker ...');
    for (const c of children) if (c.child.exitCode === null) c.child.kill('SIGTERM');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // The terminal closed: stop the same way (writes to it may then fail, and are dropped).
  process.on('SIGHUP', onSignal);
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE' && error.code !== 'EIO') throw error;
    });
  }
  // Should this script die, its children go with it.
  process.on('exit', () => {
    for (const c of children) if (c.child.exitCode === null) c.child.kill('SIGKILL');
  });

  try {
    if (!env.DATABASE_URL) {
      const pg = await startLocalPostgres();
      stack.push(pg);
      env.DATABASE_URL = pg.url;
    }
    if (!env.SQS_ENDPOINT_URL && !env.AWS_ACCESS_KEY_ID && !env.AWS_PROFILE) {
      const sqs = await startEmulator();
      stack.push(sqs);
      env.SQS_ENDPOINT_URL = sqs.endpoint;
      env.SQS_CREATE_QUEUES ??= 'true';
    }
    let generatedSecret = false;
    if (!env.UI_SECRET && env.DISABLE_SIGNATURE_CHECK !== 'true') {
      env.UI_SECRET = randomBytes(32).toString('hex');
      generatedSecret = true;
    }
    env.SHUTDOWN_DELAY_MS ??= '0';
    env.SQS_WAIT_TIME ??= '5';
    const config = await preparePipeline(env);

    for (const name of ['web', 'worker'] as const) {
      const child = run(SERVICES[name].args, env);
      const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
      children.push({ name, child, exited });
      void exited.then((code) => {
        if (!stopping) {
          process.stderr.write(`${name} exited with code ${code}; stopping.\n`);
          process.exitCode = 1;
          onSignal();
        }
      });
    }

    const base = `http://localhost:${config.web.port}`;
    const path = '/form/';
    const sample = JSON.stringify({
      data: {
        company_name: 'Acme Exports Ltd',
        contact_name: 'Ada Lovelace',
        email_address1: 'ada@example.com',
        email_address2: 'ada@example.com',
        website: 'https://acme.example.com',
        exporting: 'True',
        agree_terms: true,
      },
    });
    const signature = config.web.uiSecret
      ? ` -H 'X-Signature: ${computeSignature(path, Buffer.from(sample), config.web.uiSecret)}'`
      : '';
    await untilReady(`http://127.0.0.1:${config.web.port}/healthz/ready`, () => stopping);
    say();
    say(`form-data is running. Web: ${base}${path}  (health: ${base}/healthz/ready, metrics: ${base}/metrics)`);
    say(`  database: ${config.database.url}`);
    say(
      `  SQS: ${config.sqs.endpoint ?? `AWS ${config.sqs.region}`}, queues ${config.sqs.formQueueName} and ${config.sqs.invalidQueueName}`,
    );
    if (generatedSecret) say(`  UI_SECRET was not set; this run signs with ${config.web.uiSecret}`);
    say();
    say('Submit a sample form:');
    say(`  curl -i -X POST ${base}${path} -H 'Content-Type: application/json'${signature} --data '${sample}'`);
    say('See the stored rows:');
    say(`  DATABASE_URL='${config.database.url}' npm run rows`);
    say(
      `  (or: psql '${config.database.url}' -c 'select id, created, sqs_message_id, data from form_form order by id desc limit 5')`,
    );
    say('Press Ctrl-C to stop.');
    say();
  } catch (error) {
    onSignal();
    await stopAll();
    throw error;
  }
  await stopRequested;
  await stopAll();
  say('Stopped.');
  return children.some((c) => c.child.exitCode !== 0) ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code || process.exitCode;
  },
  (error: unknown) => {
    process.stderr.write(
      error instanceof ConfigError
        ? `start: ${error.message}\n`
        : `start failed: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    process.exitCode = error instanceof ConfigError ? 2 : 1;
  },
);
