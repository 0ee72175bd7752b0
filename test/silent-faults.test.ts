/**
 * Silent faults made with the harness proxy: SQS or PostgreSQL accepts and
 * never answers (`blackhole`), or stops in the middle of an answer
 * (`stallAnswers`). Every call must give up within its documented bound, the
 * web must answer 503 and never hold a request longer, the worker must delete
 * nothing it has not committed, its liveness must fail after
 * WORKER_LIVENESS_OUTAGE_SECONDS and pass again after the heal, and after the
 * heal every form is stored once.
 */
import { expect } from 'chai';
import { once } from 'node:events';
import type { Config } from '../services/common/config.ts';
import { createWebService, type WebService } from '../services/web/service.ts';
import { createWorkerService, livenessBoundMs, type WorkerService } from '../services/worker/service.ts';
import type { BackoffKind } from '../services/worker/consumer.ts';
import { jsonBody, post } from '../harness/http.ts';
import { validForm } from '../harness/forms.ts';
import { startTcpProxy, type TcpProxy } from '../harness/tcp-proxy.ts';
import { useEmulator } from './support/emulator.ts';
import { createTestEnv, eventually, type TestEnv } from './support/stack.ts';
import { bounds, boundsTable, expectWithin } from './support/bounds.ts';
import { livenessAcrossOutage, SILENT_FAULT_SETTINGS, sendForms, status, storedOnce } from './support/silent.ts';

describe('silent faults (proxy)', function () {
  this.timeout(120_000);
  const emulator = useEmulator();
  let t: TestEnv;
  const proxies: TcpProxy[] = [];
  const stops: Array<() => Promise<unknown>> = [];

  beforeEach(async () => {
    t = await createTestEnv(emulator.endpoint, SILENT_FAULT_SETTINGS);
  });
  after(() => {
    for (const line of boundsTable()) console.log(`      measured: ${line}`);
  });
  afterEach(async () => {
    for (const stop of stops.splice(0).reverse()) await stop();
    await Promise.all(proxies.splice(0).map((p) => p.close()));
    await t.cleanup();
  });

  async function sqsProxy(): Promise<TcpProxy> {
    const target = new URL(emulator.endpoint);
    const proxy = await startTcpProxy(target.hostname, Number(target.port));
    proxies.push(proxy);
    return proxy;
  }

  async function pgProxy(): Promise<{ proxy: TcpProxy; url: string }> {
    const pg = new URL(t.config.database.url);
    const proxy = await startTcpProxy(pg.hostname, Number(pg.port || 5432));
    proxies.push(proxy);
    const url = new URL(t.config.database.url);
    url.hostname = '127.0.0.1';
    url.port = String(proxy.port);
    return { proxy, url: url.toString() };
  }

  async function web(config: Config): Promise<string> {
    const service: WebService = await createWebService(config);
    const port = await service.listen();
    stops.push(() => service.stop());
    return `http://127.0.0.1:${port}`;
  }

  async function worker(config: Config): Promise<{ service: WorkerService; health: string }> {
    const service = await createWorkerService(config);
    const port = await service.start();
    stops.push(() => service.stop());
    return { service, health: `http://127.0.0.1:${port}` };
  }

  async function rowCount(): Promise<number> {
    const [{ count }] = (await t.db('form_form').count({ count: '*' })) as [{ count: string }];
    return Number(count);
  }

  /** Waits for the next backoff of `kind`; resolves with the ms since `since`. */
  async function backoffOf(service: WorkerService, kind: BackoffKind, since: number): Promise<number> {
    for (;;) {
      const [event] = (await once(service.consumer, 'backoff')) as [{ kind: BackoffKind }];
      if (event.kind === kind) return performance.now() - since;
    }
  }

  /** Posts `names` as distinct forms at once; each answer and its time. */
  async function postAll(base: string, names: readonly string[]): Promise<Array<{ status: number; ms: number }>> {
    return Promise.all(
      names.map(async (name) => {
        const t0 = performance.now();
        const reply = await post(base, '/form/', jsonBody(validForm({ company_name: name })));
        return { status: reply.status, ms: performance.now() - t0 };
      }),
    );
  }

  for (const mode of ['blackhole', 'stall'] as const) {
    const silence = (proxy: TcpProxy): void => (mode === 'blackhole' ? proxy.blackhole() : proxy.stallAnswers(12));
    const fault = `proxy ${mode}`;

    it(`web, SQS ${mode === 'blackhole' ? 'accepts and never answers' : 'stops mid-answer'}: 503 within the bound, then every form stored once`, async () => {
      const proxy = await sqsProxy();
      const config = t.with({ SQS_ENDPOINT_URL: `http://127.0.0.1:${proxy.port}` });
      const base = await web(config);
      const before = ['before 0', 'before 1'];
      expect((await postAll(base, before)).map((r) => r.status)).to.deep.equal([202, 202]);

      silence(proxy);
      const during = Array.from({ length: 4 }, (_, i) => `during ${i}`);
      const answers = await postAll(base, during);
      expect(
        answers.map((a) => a.status),
        'answers while SQS is silent',
      ).to.deep.equal(during.map(() => 503));
      expect(proxy.silenced, 'connections that met the silent fault').to.be.greaterThan(0);
      const slowest = Math.max(...answers.map((a) => a.ms));
      expectWithin({
        fault,
        target: 'SQS',
        part: 'web send (503)',
        measuredMs: slowest,
        bound: bounds(config).webSend,
      });

      proxy.heal();
      // The same requests again are the same submissions: stored once whether or not the silent tries reached SQS.
      const again = await postAll(base, during);
      expect(again.map((a) => a.status)).to.deep.equal(during.map(() => 202));
      await worker(t.config);
      await storedOnce(t, [...before, ...during]);
    });

    it(`worker, SQS ${mode === 'blackhole' ? 'accepts and never answers' : 'stops mid-answer'}: the poll and the delete give up within their bounds, liveness fails after its bound and passes after the heal, rows once`, async () => {
      const proxy = await sqsProxy();
      const config = t.with({ SQS_ENDPOINT_URL: `http://127.0.0.1:${proxy.port}` });
      const { service, health } = await worker(config);
      const bound = bounds(config);
      const live = `${health}/healthz/live`;

      // A poll under way goes silent.
      await once(service.consumer, 'received');
      let t0 = performance.now();
      silence(proxy);
      const pollMs = await backoffOf(service, 'sqs', t0);
      expectWithin({ fault, target: 'SQS', part: 'worker poll', measuredMs: pollMs, bound: bound.poll });
      expect(await status(`${health}/healthz/ready`), 'readiness while SQS is silent').to.equal(503);
      expect(await status(live), 'liveness before WORKER_LIVENESS_OUTAGE_SECONDS').to.equal(200);
      await livenessAcrossOutage({ url: live, config, t0, fault, target: 'SQS', heal: () => proxy.heal() });
      await eventually(async () => ((await status(`${health}/healthz/ready`)) === 200 ? true : undefined));

      // A batch is received and stored, then SQS goes silent before its delete.
      // 'received' is emitted before the batch is stored: the delete meets the silent SQS.
      const received = new Promise<void>((resolve) => {
        const onReceived = ({ messages }: { messages: readonly unknown[] }): void => {
          if (messages.length === 0) return;
          service.consumer.off('received', onReceived);
          resolve();
        };
        service.consumer.on('received', onReceived);
      });
      const names = await sendForms(t, 10, 'delete');
      await received;
      t0 = performance.now();
      silence(proxy);
      const [batch] = (await once(service.consumer, 'batch')) as [{ stored: number; notDeleted: number }];
      const deleteMs = performance.now() - t0;
      expectWithin({ fault, target: 'SQS', part: 'worker delete', measuredMs: deleteMs, bound: bound.workerCall });
      expect(batch.notDeleted, 'messages whose delete met the silent SQS').to.be.greaterThan(0);
      expect(await status(live)).to.equal(200);
      proxy.heal();
      // The undeleted messages come back after their visibility timeout and are skipped as stored.
      await storedOnce(t, names);
      await eventually(async () => ((await status(`${health}/healthz/ready`)) === 200 ? true : undefined));
    });

    it(`worker, PostgreSQL ${mode === 'blackhole' ? 'accepts and never answers' : 'stops mid-answer'}: the insert gives up within its bound, nothing deleted before commit, liveness fails after its bound and passes after the heal, rows once`, async () => {
      const { proxy, url } = await pgProxy();
      const config = t.with({ DATABASE_URL: url });
      const { service, health } = await worker(config);
      const bound = bounds(config);
      const live = `${health}/healthz/live`;
      const deletes = async (): Promise<number> =>
        (await service.metrics.sqsRequests.get()).values
          .filter((v) => String(v.labels.action).startsWith('DeleteMessage'))
          .reduce((sum, v) => sum + v.value, 0);

      // A connection in the pool before the fault, as in a running worker: the insert's statements meet the silence
      // on it, besides the new connections it may open.
      expect(await status(`${health}/healthz/ready`)).to.equal(200);
      let t0 = 0;
      const deletesBefore = await deletes();
      service.consumer.on('received', ({ messages }) => {
        if (messages.length > 0 && t0 === 0) {
          // Received, not yet stored: the insert meets the silent database.
          t0 = performance.now();
          silence(proxy);
        }
      });
      const names = await sendForms(t, 20, 'pg');
      const insertMs = await backoffOf(service, 'database', 0).then(() => performance.now() - t0);
      expectWithin({ fault, target: 'PostgreSQL', part: 'worker insert', measuredMs: insertMs, bound: bound.insert });
      expect(await rowCount(), 'rows committed while the database is silent').to.equal(0);
      expect(await deletes(), 'deletes while nothing is committed').to.equal(deletesBefore);

      const r0 = performance.now();
      const ready = await status(`${health}/healthz/ready`);
      const readyMs = performance.now() - r0;
      expect(ready, 'readiness while the database is silent').to.equal(503);
      expectWithin({
        fault,
        target: 'PostgreSQL',
        part: 'worker readiness check',
        measuredMs: readyMs,
        bound: bound.statement,
      });
      expect(await status(live), 'liveness before WORKER_LIVENESS_OUTAGE_SECONDS').to.equal(200);
      // Still silent: the loops keep backing off, nothing is deleted, and liveness fails after its bound.
      await livenessAcrossOutage({
        url: live,
        config,
        t0,
        fault,
        target: 'PostgreSQL',
        heal: async () => {
          expect(await deletes(), 'deletes while nothing is committed').to.equal(deletesBefore);
          expect(await rowCount(), 'rows committed while the database is silent').to.equal(0);
          proxy.heal();
        },
      });
      await storedOnce(t, names);
      await eventually(async () => ((await status(`${health}/healthz/ready`)) === 200 ? true : undefined));
      // The bound of the hung-loop rule is far above every call's: no silent fault trips it.
      expect(livenessBoundMs(config)).to.be.greaterThan(bound.insert.ms);
    });
  }
});
