/**
 * A partition made by the kernel: the web and the worker run as processes in
 * a network namespace of the test's own, reaching SQS and PostgreSQL over a
 * veth pair; an iptables DROP inside the namespace makes one of them silent
 * (packets vanish, nothing is refused). Each call must give up within its
 * documented bound, the worker's liveness must fail after
 * WORKER_LIVENESS_OUTAGE_SECONDS and pass again after the heal, and after the
 * heal every form is stored once.
 */
import { expect } from 'chai';
import { createWorkerService } from '../services/worker/service.ts';
import { LOG_CODES } from '../services/common/log-codes.ts';
import { createNetns, netnsUnavailable, type Netns } from '../harness/netns.ts';
import type { LogLine, ProcessHandle } from '../harness/process.ts';
import { startTcpProxy, type TcpProxy } from '../harness/tcp-proxy.ts';
import { queueCounts } from '../harness/sqs.ts';
import { validForm } from '../harness/forms.ts';
import { jsonBody, post } from '../harness/http.ts';
import { useEmulator } from './support/emulator.ts';
import { createTestEnv, eventually, type TestEnv } from './support/stack.ts';
import { bounds, boundsTable, expectWithin } from './support/bounds.ts';
import { livenessAcrossOutage, SILENT_FAULT_SETTINGS, sendForms, status, storedOnce } from './support/silent.ts';

const NODE = process.execPath;
const SETTINGS = { ...SILENT_FAULT_SETTINGS, SHUTDOWN_DELAY_MS: '0' };
/** Ports inside the namespace: it is the test's own, so fixed ones are free. */
const WEB_PORT = 8000;
const HEALTH_PORT = 8001;

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

  const probe = (path: 'live' | 'ready'): string => `http://${ns!.nsAddress}:${HEALTH_PORT}/healthz/${path}`;
  const health = (path: 'live' | 'ready'): Promise<number> => status(probe(path));

  /** Liveness across the outage (livenessAcrossOutage), each turn logged once. */
  async function livenessAcross(
    worker: ProcessHandle,
    t0: number,
    target: 'SQS' | 'PostgreSQL',
    heal: () => Promise<void>,
  ): Promise<void> {
    const url = probe('live');
    await livenessAcrossOutage({ url, config: t.config, t0, fault: 'netns DROP', target, heal });
    const failed = await worker.waitForLog((l) => l.code === LOG_CODES.livenessFailed, 10_000);
    expect(failed).to.include({ check: 'dependency-outage' });
    expect(failed.failing, 'the failing dependency the log names').to.deep.equal([
      target === 'SQS' ? 'sqs' : 'database',
    ]);
    await worker.waitForLog((l) => l.code === LOG_CODES.livenessRecovered, 10_000);
    expect(worker.logs.filter((l) => l.code === LOG_CODES.livenessFailed)).to.have.length(1);
    expect(worker.logs.filter((l) => l.code === LOG_CODES.livenessRecovered)).to.have.length(1);
  }

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
    const slowest = Math.max(...answers.map((a) => a.ms));
    expectWithin({
      fault: 'netns DROP',
      target: 'SQS',
      part: 'web send (503)',
      measuredMs: slowest,
      bound: bounds(t.config).webSend,
    });

    await ns!.heal(sqsRelay.port);
    const again = await Promise.all(during.map(send));
    expect(again.map((a) => a.status)).to.deep.equal(during.map(() => 202));
    const worker = await createWorkerService(t.config);
    await worker.start();
    stops.push(() => worker.stop());
    await storedOnce(t, ['before', ...during]);
  });

  it('worker: SQS dropped, the poll gives up within its bound, not ready, not live after its bound; then live and polling again', async () => {
    const worker = startInside('services/worker/main.ts');
    await worker.waitForLog((l) => l.msg === 'worker polling');
    const backingOff = nextLog(worker, (l) => l.msg === 'poll loop backing off');
    const t0 = performance.now();
    await ns!.drop(sqsRelay.port);
    const line = await backingOff;
    const pollMs = performance.now() - t0;
    expect(String(line.reason)).not.to.match(/^database/);
    const bound = bounds(t.config).poll;
    expectWithin({ fault: 'netns DROP', target: 'SQS', part: 'worker poll', measuredMs: pollMs, bound });
    expect(await health('ready'), 'readiness while SQS is dropped').to.equal(503);
    expect(await health('live'), 'liveness before WORKER_LIVENESS_OUTAGE_SECONDS').to.equal(200);

    const names = await sendForms(t, 10, 'sqs partition');
    await livenessAcross(worker, t0, 'SQS', () => ns!.heal(sqsRelay.port));
    await eventually(async () => ((await health('ready')) === 200 ? true : undefined), 30_000, 'ready after the heal');
    await storedOnce(t, names);
  });

  it('worker: PostgreSQL dropped, the insert gives up within its bound, nothing deleted before commit, not live after its bound; then live and stores each form once', async () => {
    const worker = startInside('services/worker/main.ts');
    await worker.waitForLog((l) => l.msg === 'worker polling');
    // A pooled connection before the fault, as in a running worker.
    expect(await health('ready')).to.equal(200);
    await ns!.drop(pgRelay.port);
    const failed = nextLog(worker, (l) => l.msg === 'could not store forms; handing them back');
    const t0 = performance.now();
    const names = await sendForms(t, 20, 'pg partition');
    await failed;
    const insertMs = performance.now() - t0;
    const bound = bounds(t.config);
    // The batch arrives within the long poll under way (it returns as messages come), then the insert waits.
    expectWithin({
      fault: 'netns DROP',
      target: 'PostgreSQL',
      part: 'worker insert',
      measuredMs: insertMs,
      bound: bound.insert,
    });

    const queued = async (): Promise<number> => {
      const { form } = await t.queueUrls();
      const c = await queueCounts(t.sqs, form);
      return c.visible + c.inFlight + c.delayed;
    };
    const rows = async (): Promise<number> => {
      const [{ count }] = (await t.db('form_form').count({ count: '*' })) as [{ count: string }];
      return Number(count);
    };
    expect(await rows(), 'rows while the database is dropped').to.equal(0);
    expect(await queued(), 'messages still queued (none deleted)').to.equal(20);

    const r0 = performance.now();
    expect(await health('ready'), 'readiness while the database is dropped').to.equal(503);
    const readyMs = performance.now() - r0;
    expectWithin({
      fault: 'netns DROP',
      target: 'PostgreSQL',
      part: 'worker readiness check',
      measuredMs: readyMs,
      bound: bound.statement,
    });
    expect(await health('live'), 'liveness before WORKER_LIVENESS_OUTAGE_SECONDS').to.equal(200);

    await livenessAcross(worker, t0, 'PostgreSQL', async () => {
      // Still nothing committed or deleted when liveness has failed, just before the heal.
      expect(await rows(), 'rows while the database is dropped').to.equal(0);
      expect(await queued(), 'messages still queued (none deleted)').to.equal(20);
      await ns!.heal(pgRelay.port);
    });
    await storedOnce(t, names);
    await eventually(async () => ((await health('ready')) === 200 ? true : undefined), 30_000, 'ready after the heal');
    expect(
      worker.logs.filter((l) => l.msg === 'worker stopped'),
      'the worker kept running',
    ).to.have.length(0);
  });
});
