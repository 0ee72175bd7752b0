/**
 * The chart matches the code: the commands, environment, ports and probes of
 * the rendered manifests are run here, in the order Helm would (the migrations
 * hook first), against the test PostgreSQL and the SQS emulator. Every probe
 * path must answer on the port the manifest names, a form posted to the web
 * must reach the database through the worker, and SIGTERM must end the worker
 * with exit 0 within its terminationGracePeriodSeconds (and the web within its).
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { stringify } from 'yaml';
import { createTestDatabase, type TestDatabase } from '../../harness/postgres.ts';
import { startEmulator, type Emulator } from '../../harness/sqs.ts';
import { eventually } from '../support/stack.ts';
import { validForm } from '../../harness/forms.ts';
import { jsonBody, post } from '../../harness/http.ts';
import type { ProcessHandle } from '../../harness/process.ts';
import { ROOT, find, findAll, render, type Manifest } from './helm.ts';
import { buildInto, prepareContainer, start, waitForHttp, type PreparedContainer } from './run.ts';

function hookWeight(m: Manifest): number {
  return Number(m.metadata.annotations?.['helm.sh/hook-weight'] ?? 0);
}

describe('chart matches code: the rendered manifests run', function () {
  this.timeout(120_000);
  let workdir: string;
  let emulator: Emulator;
  let database: TestDatabase;
  let manifests: Manifest[];
  const running: ProcessHandle[] = [];
  const formQueue = `chart-form-${randomBytes(4).toString('hex')}`;

  before(async function () {
    this.timeout(120_000);
    // Inside the repository so that the compiled code finds node_modules, as
    // it does in the image at /app.
    await mkdir(path.join(ROOT, '.cache'), { recursive: true });
    workdir = await mkdtemp(path.join(ROOT, '.cache', 'chart-run-'));
    const overrides = path.join(workdir, 'overrides.yaml');
    const [e, d] = await Promise.all([startEmulator(), createTestDatabase(), buildInto(workdir)]);
    emulator = e;
    database = d;
    await writeFile(
      overrides,
      stringify({
        secrets: { DATABASE_URL: database.url },
        config: {
          SQS_ENDPOINT_URL: emulator.endpoint,
          SQS_FORM_DATA_QUEUE_NAME: formQueue,
          SQS_INVALID_MESAGES_QUEUE_NAME: `${formQueue}-invalid`,
        },
      }),
    );
    manifests = await render({ values: ['runtime.yaml', overrides] });
  });

  after(async () => {
    await Promise.all(running.map((p) => p.ensureStopped()));
    await Promise.all([emulator?.stop(), database?.drop()]);
    if (workdir) await rm(workdir, { recursive: true, force: true });
  });

  function track(handle: ProcessHandle): ProcessHandle {
    running.push(handle);
    return handle;
  }

  async function runToCompletion(p: PreparedContainer, deadlineSeconds: number): Promise<void> {
    const handle = track(start(p, workdir));
    const timer = setTimeout(() => handle.kill('SIGKILL'), deadlineSeconds * 1000);
    const { code, signal } = await handle.exited;
    clearTimeout(timer);
    expect(
      { code, signal },
      `${p.owner}/${p.name} exit; output:\n${[...handle.text, ...handle.logs.map((l) => JSON.stringify(l))].slice(-20).join('\n')}`,
    ).to.deep.equal({ code: 0, signal: null });
  }

  async function checkProbes(p: PreparedContainer, handle: ProcessHandle): Promise<void> {
    expect(p.probes.map((x) => x.kind).sort(), `${p.owner} probes`).to.deep.equal([
      'livenessProbe',
      'readinessProbe',
      'startupProbe',
    ]);
    // Start-up must succeed within what the startupProbe allows.
    const startup = p.probes.find((x) => x.kind === 'startupProbe')!;
    const budget = Math.min(startup.periodSeconds * startup.failureThreshold * 1000, 60_000);
    for (const probe of p.probes) {
      const status = await waitForHttp(
        `http://127.0.0.1:${probe.port}${probe.path}`,
        budget,
        undefined,
        () => handle.child.exitCode === null,
      );
      expect(
        status,
        `${p.owner} ${probe.kind} ${probe.path} on the manifest's port ${probe.manifestPort}`,
      ).to.be.within(200, 299);
    }
  }

  it('runs the migrations hook, then web and worker, answers every probe, carries a form through, and drains on SIGTERM', async () => {
    // 1. Hooks in Helm's order: pre-install Jobs by weight, each Job's init containers first.
    const jobs = findAll(manifests, 'Job')
      .filter((j) => (j.metadata.annotations?.['helm.sh/hook'] ?? '').split(',').includes('pre-install'))
      .sort((a, b) => hookWeight(a) - hookWeight(b));
    expect(jobs.map((j) => j.metadata.name)).to.deep.equal(['form-data-migrations']);
    for (const job of jobs) {
      const spec = job.spec.template.spec;
      for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
        await runToCompletion(await prepareContainer(manifests, job, c), job.spec.activeDeadlineSeconds);
      }
    }
    const db = new pg.Client({ connectionString: database.url });
    await db.connect();
    try {
      const { rows } = await db.query<{ name: string }>('select name from knex_migrations');
      expect(rows.length, 'migrations applied').to.be.greaterThan(0);

      // 2. The Deployments.
      const webDeployment = find(manifests, 'Deployment', 'form-data-web');
      const workerDeployment = find(manifests, 'Deployment', 'form-data-worker');
      const web = await prepareContainer(manifests, webDeployment, webDeployment.spec.template.spec.containers[0]);
      const worker = await prepareContainer(
        manifests,
        workerDeployment,
        workerDeployment.spec.template.spec.containers[0],
      );
      expect(worker.env.SQS_WAIT_TIME).to.equal('2');
      const webProcess = track(start(web, workdir));
      const workerProcess = track(start(worker, workdir));
      await Promise.all([checkProbes(web, webProcess), checkProbes(worker, workerProcess)]);

      // 3. The two agree on the queue and the database: a signed form goes through.
      const [webPort] = [...web.ports.values()];
      const reply = await post(`http://127.0.0.1:${webPort}`, '/form/', jsonBody(validForm()), {
        secret: web.env.UI_SECRET,
      });
      expect(reply.status, reply.text).to.equal(202);
      const { id } = reply.body as { id: string };
      await eventually(
        async () => (await db.query('select 1 from form_form where sqs_message_id = $1', [id])).rows[0],
        20_000,
        'the form in PostgreSQL',
      );

      // 4. SIGTERM: the worker lets its long poll return and exits 0 within its grace period.
      const workerGrace = workerDeployment.spec.template.spec.terminationGracePeriodSeconds as number;
      expect(workerGrace).to.be.greaterThan(Number(worker.env.SQS_WAIT_TIME));
      let started = Date.now();
      workerProcess.kill('SIGTERM');
      const workerExit = await Promise.race([
        workerProcess.exited,
        new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), workerGrace * 1000).unref()),
      ]);
      expect(workerExit, `worker exit within ${workerGrace} s`).to.deep.equal({ code: 0, signal: null });
      const workerSeconds = (Date.now() - started) / 1000;

      // The web: readiness fails at once, then it exits 0 within what is left of the grace period after preStop.
      const webSpec = webDeployment.spec.template.spec;
      const preStop = webSpec.containers[0].lifecycle?.preStop?.sleep?.seconds ?? 0;
      const webBudget = (webSpec.terminationGracePeriodSeconds as number) - preStop;
      const ready = web.probes.find((x) => x.kind === 'readinessProbe')!;
      started = Date.now();
      webProcess.kill('SIGTERM');
      await waitForHttp(`http://127.0.0.1:${ready.port}${ready.path}`, 5_000, 503);
      const webExit = await Promise.race([
        webProcess.exited,
        new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), webBudget * 1000).unref()),
      ]);
      expect(webExit, `web exit within ${webBudget} s`).to.deep.equal({ code: 0, signal: null });
      expect(workerSeconds).to.be.lessThan(workerGrace);
      expect((Date.now() - started) / 1000).to.be.lessThan(webBudget);
    } finally {
      await db.end();
    }
  });
});
