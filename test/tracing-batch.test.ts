/**
 * The OTEL_BSP_* variables and OTEL_EXPORTER_OTLP_TIMEOUT take effect on a real
 * web process exporting to a real OTLP/HTTP receiver (docs/tracing.md). Each
 * waits for an event, or shows that something due within the default has not
 * happened with the setting (a slow machine can only make those pass wrongly).
 */
import { expect } from 'chai';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startService, type RunningService } from '../harness/pipeline.ts';
import { startProcess } from '../harness/process.ts';
import { jsonBody, post } from '../harness/http.ts';
import { validForm } from '../harness/forms.ts';
import { startOtlpReceiver, type OtlpReceiver } from './support/otlp.ts';
import { useEmulator } from './support/emulator.ts';
import { createTestEnv, eventually, type TestEnv } from './support/stack.ts';

describe('span batching and the export timeout (OTEL_BSP_*, OTEL_EXPORTER_OTLP_TIMEOUT)', function () {
  this.timeout(90_000);
  const emulator = useEmulator();
  let t: TestEnv;
  let receiver: OtlpReceiver;
  const running: RunningService[] = [];

  before(async () => {
    t = await createTestEnv(emulator.endpoint, { LOG_LEVEL: 'info' }, { migrate: false });
  });
  beforeEach(async () => {
    receiver = await startOtlpReceiver();
  });
  afterEach(async () => {
    await Promise.all(running.splice(0).map((r) => r.handle.ensureStopped()));
    await receiver.close();
  });
  after(async () => {
    await t?.cleanup();
  });

  /** A web exporting to `endpoint` with `env` on top; resolves with its base URL. */
  async function startWeb(
    endpoint: string,
    env: Record<string, string>,
  ): Promise<{ web: RunningService; base: string }> {
    const web = await startService('web', { ...t.env, OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, ...env });
    running.push(web);
    return { web, base: `http://127.0.0.1:${String(web.ready!.port)}` };
  }

  async function submit(base: string, count: number): Promise<void> {
    for (let i = 0; i < count; i++) {
      const reply = await post(base, '/form/', jsonBody(validForm({ company_name: `batch ${i}` })));
      expect(reply.status, reply.text).to.equal(202);
    }
  }

  it('OTEL_BSP_MAX_EXPORT_BATCH_SIZE=1: every export request carries one span', async () => {
    const { web, base } = await startWeb(receiver.url, {
      OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '1',
      OTEL_BSP_SCHEDULE_DELAY: '50',
    });
    await submit(base, 3);
    web.handle.kill('SIGTERM');
    expect((await web.handle.exited).code).to.equal(0);
    expect(receiver.spans.length, 'spans of three posts').to.be.at.least(6);
    expect(receiver.requests.map((r) => r.spans)).to.deep.equal(receiver.requests.map(() => 1));
  });

  it('OTEL_BSP_SCHEDULE_DELAY=600000 keeps ended spans past the default 5 s, until the shutdown flushes them', async function () {
    const held = await startWeb(receiver.url, { OTEL_BSP_SCHEDULE_DELAY: '600000' });
    await submit(held.base, 2);
    // The requests have been answered, so their spans have ended. With the default delay they would be exported
    // within 5 s; 12 s of quiet shows the setting at work (a slow machine can only make this pass wrongly, never
    // fail wrongly).
    await new Promise((r) => setTimeout(r, 12_000));
    expect(receiver.requests.length, 'exports in the 12 s after the posts').to.equal(0);
    held.web.handle.kill('SIGTERM');
    expect((await held.web.handle.exited).code).to.equal(0);
    expect(receiver.spans.length, 'spans flushed at shutdown').to.be.at.least(4);
  });

  it('OTEL_EXPORTER_OTLP_TIMEOUT: an export to a collector that never answers is given up after it', async () => {
    // A collector that reads the request and never answers; the exporter must close the request itself.
    const closed: Promise<unknown>[] = [];
    const silent: Server = createServer((req: IncomingMessage) => {
      closed.push(once(req.socket, 'close'));
    });
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    try {
      const endpoint = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
      const { base } = await startWeb(endpoint, {
        OTEL_EXPORTER_OTLP_TIMEOUT: '300',
        OTEL_BSP_SCHEDULE_DELAY: '50',
      });
      await submit(base, 1);
      await eventually(async () => (closed.length > 0 ? true : undefined), 30_000, 'an export request');
      // The default timeout is 10 s, and the export timeout of the batch processor 30 s: a close well before either
      // is the 300 ms at work.
      const started = Date.now();
      await Promise.race([
        closed[0],
        new Promise((_, reject) => setTimeout(() => reject(new Error('the export was not given up within 8 s')), 8000)),
      ]);
      expect(Date.now() - started).to.be.below(8000);
    } finally {
      silent.closeAllConnections();
      silent.close();
    }
  });

  it('a malformed OTEL_BSP_* value stops the web at start-up with exit 2, naming it', async () => {
    const web = startProcess(process.execPath, ['services/web/main.ts'], {
      ...t.env,
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_BSP_MAX_QUEUE_SIZE: 'lots',
    });
    const exit = await web.exited;
    expect(exit.code).to.equal(2);
    expect([...web.text, ...web.logs.map((l) => JSON.stringify(l))].join('\n')).to.include('OTEL_BSP_MAX_QUEUE_SIZE');
  });
});
