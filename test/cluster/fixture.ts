/**
 * What every cluster test file sets up: the cluster from the environment (kube.ts), the project's image built as
 * the image test builds it and pushed to REGISTRY, and the tests' PostgreSQL and SQS emulator offered to the pods on
 * HOST_ADDRESS through TCP proxies (which a test can cut). Helpers to install releases and check stored forms.
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { stringify } from 'yaml';
import { createTestDatabase, type TestDatabase } from '../../harness/postgres.ts';
import { startEmulator, type Emulator } from '../../harness/sqs.ts';
import { startTcpProxy, type TcpProxy } from '../../harness/tcp-proxy.ts';
import { validForm, TEST_SECRET } from '../../harness/forms.ts';
import { jsonBody, post } from '../../harness/http.ts';
import { eventually } from '../support/stack.ts';
import { ROOT, helm, type HelmMajor } from '../chart/helm.ts';
import { buildProjectImage } from '../../harness/image/base.ts';
import { missingImageTools, podman } from '../../harness/image/podman.ts';
import { clusterFromEnv, kubectl, kubectlOk, list, KubeCommandError, type Cluster, type KubeObject } from './kube.ts';

/** Seconds since `since`, to one decimal. */
export const seconds = (since: number): number => Math.round((Date.now() - since) / 100) / 10;

/** Skips the suite with one line, or under CI fails it. */
export function failOrSkip(ctx: Mocha.Context, reason: string): void {
  if (process.env.CI) throw new Error(`cluster test cannot run under CI: ${reason}`);
  console.log(`      (cluster test skipped: ${reason})`);
  ctx.skip();
}

/** helm against the cluster, which must succeed; resolves to its output. */
export async function helmOk(
  cluster: Cluster,
  args: readonly string[],
  major: HelmMajor = 4,
): Promise<{ stdout: string; stderr: string }> {
  const previous = process.env.KUBECONFIG;
  process.env.KUBECONFIG = cluster.kubeconfig;
  try {
    const result = await helm(args, major);
    if (result.code !== 0) throw new KubeCommandError(`helm ${major} ${args.join(' ')}`, result);
    return result;
  } finally {
    if (previous === undefined) delete process.env.KUBECONFIG;
    else process.env.KUBECONFIG = previous;
  }
}

/** A namespace that enforces (and warns and audits) Pod Security `restricted`. */
export async function restrictedNamespace(cluster: Cluster, name: string): Promise<void> {
  await kubectlOk(cluster, ['create', 'namespace', name]);
  await kubectlOk(cluster, [
    'label',
    'namespace',
    name,
    'pod-security.kubernetes.io/enforce=restricted',
    'pod-security.kubernetes.io/warn=restricted',
    'pod-security.kubernetes.io/audit=restricted',
  ]);
}

/** The app.kubernetes.io/component label of an object. */
export const component = (o: KubeObject): string | undefined => o.metadata.labels?.['app.kubernetes.io/component'];

/** The shared set-up of a cluster test file; `prepare` makes it, `close` undoes it. */
export class ClusterFixture {
  readonly suffix = randomBytes(4).toString('hex');
  readonly figures: Record<string, string> = {};
  private localImage?: string;
  readonly cluster: Cluster;
  readonly emulator: Emulator;
  readonly database: TestDatabase;
  readonly dbProxy: TcpProxy;
  readonly sqsProxy: TcpProxy;
  readonly db: pg.Client;
  readonly workdir: string;

  private constructor(parts: {
    cluster: Cluster;
    emulator: Emulator;
    database: TestDatabase;
    dbProxy: TcpProxy;
    sqsProxy: TcpProxy;
    db: pg.Client;
    workdir: string;
  }) {
    this.cluster = parts.cluster;
    this.emulator = parts.emulator;
    this.database = parts.database;
    this.dbProxy = parts.dbProxy;
    this.sqsProxy = parts.sqsProxy;
    this.db = parts.db;
    this.workdir = parts.workdir;
  }

  /** The fixture, or undefined when the suite was skipped (no cluster, or no podman). */
  static async prepare(ctx: Mocha.Context): Promise<ClusterFixture | undefined> {
    const given = clusterFromEnv();
    if (typeof given === 'string') return void failOrSkip(ctx, given);
    const missing = await missingImageTools();
    if (missing) return void failOrSkip(ctx, `the image cannot be built: ${missing}`);
    const reachable = await kubectl(given, ['get', '--raw', '/readyz'], 60_000);
    if (reachable.code !== 0) return void failOrSkip(ctx, `the cluster does not answer: ${reachable.stderr.trim()}`);
    const [emulator, database] = await Promise.all([startEmulator(), createTestDatabase()]);
    const dbUrl = new URL(database.url);
    const sqsUrl = new URL(emulator.endpoint);
    const [dbProxy, sqsProxy] = await Promise.all([
      startTcpProxy(dbUrl.hostname, Number(dbUrl.port), { listenHost: given.hostAddress }),
      startTcpProxy(sqsUrl.hostname, Number(sqsUrl.port), { listenHost: given.hostAddress }),
    ]);
    const db = new pg.Client({ connectionString: database.url });
    await db.connect();
    const workdir = await mkdtemp(path.join(tmpdir(), 'form-data-cluster-test-'));
    const fixture = new ClusterFixture({ cluster: given, emulator, database, dbProxy, sqsProxy, db, workdir });
    fixture.figures.server = JSON.parse(await kubectlOk(given, ['version', '-o', 'json'])).serverVersion.gitVersion;
    return fixture;
  }

  /** Builds the project's image (podman, the image test's base) and pushes it under each tag; resolves to the tags. */
  async pushImage(names: readonly string[]): Promise<string[]> {
    const tags = names.map((name) => `${name}-${this.suffix}`);
    this.localImage = `localhost/form-data:${tags[0]}`;
    const built = await buildProjectImage(this.localImage, ROOT);
    this.figures.imageBuild = `${built.seconds.toFixed(1)} s`;
    const pushStarted = Date.now();
    for (const tag of tags)
      await podman(['push', '--tls-verify=false', this.localImage, `${this.cluster.registry}/form-data:${tag}`]);
    this.figures.imagePush = `${seconds(pushStarted)} s`;
    return tags;
  }

  async close(): Promise<void> {
    console.log(`      figures: ${JSON.stringify(this.figures)}`);
    if (this.localImage) await podman(['untag', this.localImage]).catch(() => undefined);
    await this.db.end();
    await Promise.all([this.dbProxy.close(), this.sqsProxy.close()]);
    await Promise.all([this.emulator.stop(), this.database.drop()]);
    await rm(this.workdir, { recursive: true, force: true });
  }

  /** The queue of one release. */
  queue(release: string): string {
    return `cluster-${release}-${this.suffix}`;
  }

  /**
   * A values file for one release: the pushed image, this test's database and queues through the proxies, and the
   * end-to-end helm test on; `extra` is merged on top (one level deep).
   */
  async valuesFile(release: string, tag: string, extra: Record<string, Record<string, unknown>> = {}): Promise<string> {
    const proxied = new URL(this.database.url);
    proxied.hostname = this.cluster.hostAddress;
    proxied.port = String(this.dbProxy.port);
    const queue = this.queue(release);
    const values: Record<string, Record<string, unknown>> = {
      image: { repository: `${this.cluster.registry}/form-data`, tag, pullPolicy: 'IfNotPresent' },
      secrets: {
        DATABASE_URL: proxied.toString(),
        UI_SECRET: TEST_SECRET,
        AWS_ACCESS_KEY_ID: 'test',
        AWS_SECRET_ACCESS_KEY: 'test',
      },
      config: {
        SQS_ENDPOINT_URL: this.sqsEndpoint(),
        SQS_CREATE_QUEUES: true,
        SQS_FORM_DATA_QUEUE_NAME: queue,
        SQS_INVALID_MESAGES_QUEUE_NAME: `${queue}-invalid`,
        SQS_WAIT_TIME: 2,
        // A forced worker delete leaves its messages in flight: they come back this soon.
        SQS_VISIBILITY_TIMEOUT: 10,
        LOG_LEVEL: 'debug',
      },
      migrations: { waitForDatabaseSeconds: 60 },
      // helm test posts a signed form through the web Service and waits for its row.
      tests: { endToEnd: { enabled: true } },
    };
    for (const [key, value] of Object.entries(extra)) values[key] = { ...values[key], ...value };
    const file = path.join(this.workdir, `${release}-${tag}-${Object.keys(extra).join('-')}.yaml`);
    await writeFile(file, stringify(values));
    return file;
  }

  /** The emulator as the pods (and KEDA) reach it: through its proxy on HOST_ADDRESS. */
  sqsEndpoint(): string {
    return `http://${this.cluster.hostAddress}:${this.sqsProxy.port}`;
  }

  /** The web Service's address, reached from this machine through kube-proxy. */
  async webBase(namespace: string, release: string): Promise<string> {
    const service = JSON.parse(
      await kubectlOk(this.cluster, ['get', 'service', '-n', namespace, `${release}-form-data-web`, '-o', 'json']),
    ) as { spec: { clusterIP: string; ports: { port: number }[] } };
    return `http://${service.spec.clusterIP}:${service.spec.ports[0]!.port}`;
  }

  /** Rows stored for these submission ids, each with how often it is stored. */
  async storedCounts(ids: readonly string[]): Promise<Map<string, number>> {
    const { rows } = await this.db.query<{ id: string; n: string }>(
      'select sqs_message_id as id, count(*) as n from form_form where sqs_message_id = any($1) group by 1',
      [ids],
    );
    return new Map(rows.map((r) => [r.id, Number(r.n)]));
  }

  /** Waits until every id is stored, then checks none is stored twice. */
  async expectStoredOnce(ids: readonly string[], what: string): Promise<void> {
    const counts = await eventually(
      async () => {
        const c = await this.storedCounts(ids);
        return c.size === ids.length ? c : undefined;
      },
      300_000,
      `${ids.length} ${what} in PostgreSQL`,
    );
    const doubled = [...counts].filter(([, n]) => n !== 1);
    expect(doubled, `${what} stored more than once`).to.deep.equal([]);
  }

  /** Pods of one component of a release, those being deleted left out. */
  async podsOf(namespace: string, release: string, which: string): Promise<KubeObject[]> {
    return (
      await list(this.cluster, [
        'pods',
        '-n',
        namespace,
        '-l',
        `app.kubernetes.io/instance=${release},app.kubernetes.io/component=${which}`,
      ])
    ).filter((p) => !p.metadata.deletionTimestamp);
  }
}

/** Posts one signed form through the web Service; resolves to its submission id, or throws. */
export async function submit(base: string, marker: string): Promise<string> {
  const reply = await post(base, '/form/', jsonBody(validForm({ company_name: marker })));
  if (reply.status !== 202) throw new Error(`${reply.status}: ${reply.text.slice(0, 300)}`);
  return (reply.body as { id: string }).id;
}
