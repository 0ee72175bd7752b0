/**
 * A partition made by the kernel: the web and the worker run as processes in
 * a network namespace of the test's own, reaching SQS and PostgreSQL over a
 * veth pair; an iptables DROP inside the namespace makes one of them silent
 * (packets vanish, nothing is refused). Each call must give up within its
 * documented bound, and after the heal every form is stored once.
 */
import { expect } from 'chai';
import { SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { createWorkerService } from '../services/worker/service.ts';
import { createNetns, netnsUnavailable, type Netns } from '../harness/netns.ts';
import type { LogLine, ProcessHandle } from '../harness/process.ts';
import { startTcpProxy, type TcpProxy } from '../harness/tcp-proxy.ts';
import { queueCounts } from '../harness/sqs.ts';
import { validForm } from '../harness/forms.ts';
import { jsonBody, post } from '../harness/http.ts';
import { useEmulator } from './support/emulator.ts';
import { createTestEnv, eventually, type TestEnv } from './support/stack.ts';
import { bounds, boundsTable, MARGIN_MS, recordBound } from './support/bounds.ts';

const NODE = process.execPath;
const SETTINGS = {
  SQS_REQUEST_TIMEOUT_MS: '500',
  SQS_MAX_ATTEMPTS: '2',
  SQS_WAIT_TIME: '1',
  SQS_VISIBILITY_TIMEOUT: '3',
  SQS_RETRY_BACKOFF_BASE_SECONDS: '1',
  SQS_RETRY_BACKOFF_MAX_SECONDS: '2',
  DATABASE_TIMEOUT_MS: '800',
  WORKER_CONCURRENCY: '2',
  SHUTDOWN_DELAY_MS: '0',
};
/** Ports inside the namespace: it is the test's own, so fixed ones are free. */
const WEB_PORT = 8000;
const HEALTH_PORT = 8001;

const envelope = (data: unknown): string =>
  JSON.stringify({ data, received_at: new Date().toISOString(), request_id: 'partition' });

describe('partition in a network namespace (iptables DROP)', function () {
  this.timeout(120_000);
  const emulator = useEmulator();
  let t: TestEnv;
  let ns: Netns | undefined;
  let sqsRelay: TcpProxy;
  let pgRelay: TcpProxy;
  const processes: ProcessHandle[] = [];
  const stops: Array<() => Promise<unknown>> = [];

  before(async function () {
    const why = await netnsUnavailable();
    if (why) {
      if (process.env.CI) throw new Error(`${why}; required under CI (.ci/run installs iproute2 and iptables)`);
      console.log(`      skipped: ${why}`);
      this.skip();
    }
  });
  after(() => {
    for (const line of boundsTable()) console.log(`      measured: ${line}`);
  });
  beforeEach(async () => {
    t = await createTestEnv(emulator.endpoint, SETTINGS);
    ns = await createNetns();
    const sqs = new URL(emulator.endpoint);
    const pg = new URL(t.config.database.url);
    // Pass-through relays on the host's end of the pair: the namespace reaches the test hosts only through them.
    sqsRelay = await startTcpProxy(sqs.hostname, Number(sqs.port), { listenHost: ns.hostAddress });
    pgRelay = await startTcpProxy(pg.hostname, Number(pg.port || 5432), { listenHost: ns.hostAddress });
  });
  afterEach(async () => {
    await Promise.all(processes.splice(0).map((p) => p.ensureStopped()));
    for (const stop of stops.splice(0).reverse()) await stop();
    await sqsRelay?.close();
    await pgRelay?.close();
    await ns?.destroy();
    ns = undefined;
    await t?.cleanup();
  });

  /** The test's environment pointed at the relays. */
  function inside(): Record<string, string> {
    const db = new URL(t.config.database.url);
    db.hostname = ns!.hostAddress;
    db.port = String(pgRelay.port);
    return {
      ...t.env,
      SQS_ENDPOINT_URL: `http://${ns!.hostAddress}:${sqsRelay.port}`,
      DATABASE_URL: db.toString(),
      PORT: String(WEB_PORT),
      HEALTH_PORT: String(HEALTH_PORT),
      LOG_LEVEL: 'info',
    };
  }

  function startInside(script: string): ProcessHandle {
    const handle = ns!.start(NODE, [script], inside());
    processes.push(handle);
    return handle;
  }

  /** The next log line after now that matches. */
  function nextLog(handle: ProcessHandle, predicate: (l: LogLine) => boolean): Promise<LogLine> {
    const from = handle.logs.length;
    return handle.waitForLog((l) => handle.logs.indexOf(l) >= from && predicate(l), 60_000);
  }

  async function sendMany(count: number, label: string): Promise<string[]> {
    const { form } = await t.queueUrls();
    const names = Array.from({ length: count }, (_, i) => `${label} ${i}`);
    for (let i = 0; i < count; i += 10) {
      const entries = names.slice(i, i + 10).map((name, j) => ({
        Id: String(j),
        MessageBody: envelope(validForm({ company_name: name })),
      }));
      await t.sqs.send(new SendMessageBatchCommand({ QueueUrl: form, Entries: entries }));
    }
    return names;
  }

  async function storedOnce(names: readonly string[]): Promise<void> {
    const { form } = await t.queueUrls();
    await eventually(
      async () => {
        const c = await queueCounts(t.sqs, form);
        return c.visible + c.inFlight + c.delayed === 0 ? true : undefined;
      },
      60_000,
      'the form queue empty',
    );
    const rows = (await t.db('form_form').select(t.db.raw("data->>'company_name' as name"))) as { name: string }[];
    const counts = new Map<string, number>();
    for (const r of rows) counts.set(r.name, (counts.get(r.name) ?? 0) + 1);
    expect(
      names.filter((n) => counts.get(n) !== 1),
      'forms not stored exactly once',
    ).to.deep.equal([]);
    expect(rows.length).to.equal(names.length);
  }

  const health = (path: string): Promise<number> =>
    fetch(`http://${ns!.nsAddress}:${HEALTH_PORT}/healthz/${path}`).then((r) => r.status);

  it('web: SQS dropped, every request answers 503 within the bound; after the heal every form is stored once', async () => {
    const web = startInside('services/web/main.ts');
    await web.waitForLog((l) => l.msg === 'web listening');
    const base = `http://${ns!.nsAddress}:${WEB_PORT}`;
    const send = async (name: string): Promise<{ status: number; ms: number }> => {
      const t0 = performance.now();
      const reply = await post(base, '/form/', jsonBody(validForm({ company_name: name })));
      return { status: reply.status, ms: performance.now() - t0 };
    };
    expect((await send('before')).status).to.equal(202);

    await ns!.drop(sqsRelay.port);
    const during = ['during 0', 'during 1', 'during 2', 'during 3'];
    const answers = await Promise.all(during.map(send));
    expect(answers.map((a) => a.status)).to.deep.equal(during.map(() => 503));
    const bound = bounds(t.config).webSend;
    const slowest = Math.max(...answers.map((a) => a.ms));
    recordBound({ fault: 'netns DROP', target: 'SQS', part: 'web send (503)', measuredMs: slowest, bound });
    expect(slowest, bound.formula).to.be.at.most(bound.ms + MARGIN_MS);

    await ns!.heal(sqsRelay.port);
    const again = await Promise.all(during.map(send));
    expect(again.map((a) => a.status)).to.deep.equal(during.map(() => 202));
    const worker = await createWorkerService(t.config);
    await worker.start();
    stops.push(() => worker.stop());
    await storedOnce(['before', ...during]);
  });

  it('worker: SQS dropped, the poll gives up within its bound, not ready but live; then polls again', async () => {
    const worker = startInside('services/worker/main.ts');
    await worker.waitForLog((l) => l.msg === 'worker polling');
    const backingOff = nextLog(worker, (l) => l.msg === 'poll loop backing off');
    const t0 = performance.now();
    await ns!.drop(sqsRelay.port);
    const line = await backingOff;
    const pollMs = performance.now() - t0;
    expect(String(line.reason)).not.to.match(/^database/);
    const bound = bounds(t.config).poll;
    recordBound({ fault: 'netns DROP', target: 'SQS', part: 'worker poll', measuredMs: pollMs, bound });
    expect(pollMs, bound.formula).to.be.at.most(bound.ms + MARGIN_MS);
    expect(await health('ready'), 'readiness while SQS is dropped').to.equal(503);
    expect(await health('live'), 'liveness while SQS is dropped').to.equal(200);

    const names = await sendMany(10, 'sqs partition');
    await ns!.heal(sqsRelay.port);
    await eventually(async () => ((await health('ready')) === 200 ? true : undefined), 30_000, 'ready after the heal');
    await storedOnce(names);
  });

  it('worker: PostgreSQL dropped, the insert gives up within its bound, nothing deleted before commit; then stores each form once', async () => {
    const worker = startInside('services/worker/main.ts');
    await worker.waitForLog((l) => l.msg === 'worker polling');
    // A pooled connection before the fault, as in a running worker.
    expect(await health('ready')).to.equal(200);
    await ns!.drop(pgRelay.port);
    const failed = nextLog(worker, (l) => l.msg === 'could not store forms; handing them back');
    const t0 = performance.now();
    const names = await sendMany(20, 'pg partition');
    await failed;
    const insertMs = performance.now() - t0;
    const bound = bounds(t.config);
    // The batch arrives within the long poll under way (it returns as messages come), then the insert waits.
    const insertBound = { ms: bound.insert.ms, formula: bound.insert.formula };
    recordBound({
      fault: 'netns DROP',
      target: 'PostgreSQL',
      part: 'worker insert',
      measuredMs: insertMs,
      bound: insertBound,
    });
    expect(insertMs, insertBound.formula).to.be.at.most(insertBound.ms + MARGIN_MS);

    const { form } = await t.queueUrls();
    const [{ count }] = (await t.db('form_form').count({ count: '*' })) as [{ count: string }];
    expect(Number(count), 'rows while the database is dropped').to.equal(0);
    const c = await queueCounts(t.sqs, form);
    expect(c.visible + c.inFlight + c.delayed, 'messages still queued (none deleted)').to.equal(20);

    const r0 = performance.now();
    expect(await health('ready'), 'readiness while the database is dropped').to.equal(503);
    const readyMs = performance.now() - r0;
    recordBound({
      fault: 'netns DROP',
      target: 'PostgreSQL',
      part: 'worker readiness check',
      measuredMs: readyMs,
      bound: bound.statement,
    });
    expect(readyMs, bound.statement.formula).to.be.at.most(bound.statement.ms + MARGIN_MS);
    expect(await health('live'), 'liveness while the database is dropped').to.equal(200);

    await ns!.heal(pgRelay.port);
    await storedOnce(names);
    await eventually(async () => ((await health('ready')) === 200 ? true : undefined), 30_000, 'ready after the heal');
    expect(
      worker.logs.filter((l) => l.msg === 'worker stopped'),
      'the worker kept running',
    ).to.have.length(0);
  });
});
