/**
 * skaffold.yaml: valid against the JSON schema of the config version it declares (from the built skaffold's module;
 * without it, the newer skaffold/v4beta14 schema kept next to the repository checks the structure), building the one
 * image and deploying the chart with the Helm deployer, consistent with what the chart renders. With a built skaffold,
 * the effective config it computes (`skaffold diagnose`) for a kind context and for this machine's cluster context,
 * whose profile `podman` hands the PostgreSQL and SQS emulator images it builds to the release.
 */
import { expect } from 'chai';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { addonBinary } from '../cluster/addons.ts';
import { runCommand } from '../../harness/image/podman.ts';
import { CHART, ROOT, find, render } from './helm.ts';

const SHARED_SCHEMA = path.resolve(ROOT, '../shared/schemas/skaffold-v4beta14.json');
/** The chart's value of each in-cluster dependency image, and the artifact profile `podman` builds for it. */
const DEPENDENCY_IMAGES = {
  'localDependencies.postgresql.image': { artifact: 'form-data-postgresql', deployment: 'form-data-postgresql' },
  'localDependencies.sqs.image': { artifact: 'form-data-fauxqs', deployment: 'form-data-sqs' },
} as const;

interface Release {
  name: string;
  chartPath: string;
  valuesFiles?: string[];
  setValues?: Record<string, string>;
  setValueTemplates?: Record<string, string>;
}
interface Artifact {
  image: string;
  context?: string;
  docker?: { dockerfile?: string };
  custom?: { buildCommand: string };
}
interface Pipeline {
  build: { artifacts: Artifact[] };
  deploy: { helm: { releases: Release[] }; tolerateFailuresUntilDeadline?: boolean };
}
interface Skaffold extends Pipeline {
  apiVersion: string;
  kind: string;
  manifests?: unknown;
  portForward: { resourceType: string; resourceName: string; port: number; localPort?: number }[];
  profiles: {
    name: string;
    activation?: { kubeContext?: string }[];
    deploy?: { helm?: { releases: Release[] } };
    patches?: { op?: string; path: string; value?: unknown }[];
  }[];
}

/** The name skaffold gives an artifact in its Helm template variables (IMAGE_REPO_<name>, …). */
const templateName = (image: string): string => image.replace(/[^A-Za-z0-9]/g, '_');

/** The JSON schema skaffold publishes for a config version, as the built skaffold's module carries it (addons/build). */
async function builtSchema(skaffold: string, version: string): Promise<string | undefined> {
  const dir = path.dirname(skaffold).replace(/skaffold-(v[^/]+)$/, 'skaffold-schemas-$1');
  const file = path.join(dir, `${version.replace(/^skaffold\//, '')}.json`);
  return existsSync(file) ? file : undefined;
}

function validator(schema: Record<string, unknown>): (config: unknown) => string | undefined {
  expect(schema.$schema).to.match(/draft-07/);
  // strict off: the schema carries IDE keywords (preferredOrder, x-intellij-*).
  const ajv = new Ajv({ strict: false, allErrors: true });
  const validate = ajv.compile(schema);
  return (config) => (validate(config) ? undefined : ajv.errorsText(validate.errors, { separator: '\n' }));
}

describe('skaffold.yaml', function () {
  this.timeout(120_000);
  let config: Skaffold;
  let skaffold: string | undefined;

  before(async () => {
    config = parse(await readFile(path.join(ROOT, 'skaffold.yaml'), 'utf8')) as Skaffold;
    skaffold = await addonBinary('skaffold', 'SKAFFOLD_VERSION');
  });

  it('validates against the schema of the config version it declares, and refuses an invalid copy', async function () {
    const exact = skaffold && (await builtSchema(skaffold, config.apiVersion));
    const file = exact || (existsSync(SHARED_SCHEMA) ? SHARED_SCHEMA : undefined);
    if (!file) {
      console.log(`      (skipped: no built skaffold and ${path.relative(ROOT, SHARED_SCHEMA)} is not present)`);
      return this.skip();
    }
    if (!exact)
      console.log(`      (no ${config.apiVersion} schema of a built skaffold: checked against ${path.basename(file)})`);
    const errors = validator(JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>);
    expect(errors(config), `${config.apiVersion} against ${path.basename(file)}`).to.equal(undefined);
    // The schema refuses what skaffold refuses: an unknown field of a release.
    const broken = structuredClone(config);
    (broken.deploy.helm.releases[0] as unknown as Record<string, unknown>).valueFiles = ['misspelled.yaml'];
    expect(errors(broken), 'a release with an unknown field').to.match(/additional properties/);
  });

  it('declares a config version the built skaffold reads', async function () {
    if (!skaffold) {
      console.log('      (skipped: skaffold is not built: harness/cluster/addons/build skaffold)');
      return this.skip();
    }
    const listed = await runCommand(skaffold, ['schema', 'list']);
    expect(listed.code, listed.stderr).to.equal(0);
    expect(listed.stdout.split('\n').map((l) => l.trim())).to.include(config.apiVersion);
  });

  it('builds the one image from the Dockerfile and deploys the chart with deploy.helm', () => {
    expect(config.apiVersion).to.match(/^skaffold\/v\d+((alpha|beta)\d+)?$/);
    expect(config.kind).to.equal('Config');
    expect(config.build.artifacts).to.have.length(1);
    const [artifact] = config.build.artifacts;
    expect(artifact?.docker?.dockerfile ?? 'Dockerfile').to.equal('Dockerfile');
    expect(config.manifests, 'render through helm install, not kubectl, so hooks run').to.equal(undefined);
    const [release] = config.deploy.helm.releases;
    expect(path.resolve(ROOT, release!.chartPath)).to.equal(CHART);
    const key = templateName(artifact!.image);
    expect(release!.setValueTemplates).to.deep.equal({
      'image.repository': `{{.IMAGE_REPO_${key}}}`,
      'image.tag': `{{.IMAGE_TAG_${key}}}`,
    });
  });

  it('port-forwards to the web Service the chart renders for that release', async () => {
    const release = config.deploy.helm.releases[0]!;
    const manifests = await render({ release: release.name });
    const [forward] = config.portForward;
    expect(forward?.resourceType).to.equal('service');
    const service = find(manifests, 'Service', forward!.resourceName);
    expect(service.spec.ports.map((p: { port: number }) => p.port)).to.include(forward!.port);
    expect(service.metadata.labels?.['app.kubernetes.io/component']).to.equal('web');
  });

  it('has a local profile that deploys the same release with the local values file', async () => {
    const local = config.profiles.find((p) => p.name === 'local');
    expect(local, 'profile local').to.not.equal(undefined);
    const [release] = local!.deploy!.helm!.releases;
    expect(release!.name).to.equal(config.deploy.helm.releases[0]!.name);
    expect(release!.setValueTemplates).to.deep.equal(config.deploy.helm.releases[0]!.setValueTemplates);
    expect(release!.valuesFiles).to.deep.equal(['charts/form-data/values-local.yaml']);
    for (const file of release!.valuesFiles!) expect(existsSync(path.join(ROOT, file)), file).to.equal(true);
    // The local values name the in-cluster services by the release's names.
    const manifests = await render({
      release: release!.name,
      values: release!.valuesFiles!.map((f) => path.join(ROOT, f)),
    });
    const data = find(manifests, 'ConfigMap', 'form-data').data as Record<string, string>;
    const sqsHost = new URL(data.SQS_ENDPOINT_URL!).hostname;
    find(manifests, 'Service', sqsHost);
    const secret = find(manifests, 'Secret', 'form-data-worker').data as Record<string, string>;
    find(manifests, 'Service', new URL(Buffer.from(secret.DATABASE_URL!, 'base64').toString()).hostname);
  });

  it("profile podman is auto-activated with local on this machine's cluster context, after it", () => {
    const names = config.profiles.map((p) => p.name);
    // skaffold applies auto-activated profiles in file order, then the ones named by -p: podman's patches must land
    // on local's release, so local is auto-activated on the same context and listed first.
    const contexts = (name: string): string[] =>
      (config.profiles.find((p) => p.name === name)?.activation ?? []).map((a) => a.kubeContext ?? '');
    expect(contexts('podman')).to.deep.equal(['form-data']);
    expect(contexts('local')).to.include('form-data');
    expect(names.indexOf('local')).to.be.lessThan(names.indexOf('podman'));
  });

  it('hands the chart the images values keys the chart renders for the in-cluster dependencies', async () => {
    const set = Object.fromEntries(Object.keys(DEPENDENCY_IMAGES).map((k, i) => [k, `registry.test/dep-${i}:t`]));
    const manifests = await render({ values: [path.join(CHART, 'values-local.yaml')], set });
    for (const [key, { deployment }] of Object.entries(DEPENDENCY_IMAGES))
      expect(find(manifests, 'Deployment', deployment).spec.template.spec.containers[0].image, key).to.equal(set[key]);
  });

  describe('the effective config skaffold computes (skaffold diagnose)', function () {
    let dir: string;

    before(async function () {
      if (!skaffold) {
        console.log('      (skipped: skaffold is not built: harness/cluster/addons/build skaffold)');
        return this.skip();
      }
      dir = await mkdtemp(path.join(tmpdir(), 'form-data-skaffold-config-'));
    });

    after(async () => {
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    /** `skaffold diagnose --yaml-only` with a kubeconfig whose current context is `context` (no cluster is contacted). */
    async function effective(context: string, args: readonly string[] = []): Promise<Pipeline> {
      const kubeconfig = path.join(dir, `${context}.kubeconfig`);
      await writeFile(
        kubeconfig,
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'Config',
          clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:1' } }],
          users: [{ name: 'u', user: {} }],
          contexts: [{ name: context, context: { cluster: 'c', user: 'u' } }],
          'current-context': context,
        }),
      );
      const out = await runCommand(
        skaffold!,
        ['diagnose', '--yaml-only', '-f', path.join(ROOT, 'skaffold.yaml'), ...args],
        { ...process.env, KUBECONFIG: kubeconfig, SKAFFOLD_UPDATE_CHECK: 'false', SKAFFOLD_COLLECT_METRICS: 'false' },
        120_000,
      );
      expect(out.code, out.stderr).to.equal(0);
      return parse(out.stdout) as Pipeline;
    }

    const dependencyTemplates = (release: Release): string[] =>
      Object.keys(release.setValueTemplates ?? {}).filter((k) => k in DEPENDENCY_IMAGES);

    it('on a kind context: profile local, the Dockerfile build, the chart default dependency images', async () => {
      const pipeline = await effective('kind-dev');
      expect(pipeline.build.artifacts.map((a) => [a.image, a.docker !== undefined])).to.deep.equal([
        ['form-data', true],
      ]);
      const [release] = pipeline.deploy.helm.releases;
      expect(release!.valuesFiles).to.deep.equal([path.join(CHART, 'values-local.yaml')]);
      expect(dependencyTemplates(release!)).to.deep.equal([]);
      // The web and worker restart until the in-cluster dependencies answer.
      expect(pipeline.deploy.tolerateFailuresUntilDeadline).to.equal(true);
    });

    it("on this machine's cluster context, with and without -p local: the three images built here, each in the release", async () => {
      for (const args of [['-p', 'local'], []]) {
        const pipeline = await effective('form-data', args);
        const built = pipeline.build.artifacts.map((a) => a.image);
        expect(
          pipeline.build.artifacts.every((a) => a.custom?.buildCommand),
          'custom builder',
        ).to.equal(true);
        expect(built).to.have.members(['form-data', ...Object.values(DEPENDENCY_IMAGES).map((d) => d.artifact)]);
        const [release] = pipeline.deploy.helm.releases;
        expect(release!.valuesFiles).to.deep.equal([path.join(CHART, 'values-local.yaml')]);
        expect(pipeline.deploy.tolerateFailuresUntilDeadline).to.equal(true);
        for (const [key, { artifact }] of Object.entries(DEPENDENCY_IMAGES))
          expect(release!.setValueTemplates?.[key], key).to.equal(
            `{{.IMAGE_FULLY_QUALIFIED_${templateName(artifact)}}}`,
          );
      }
    });

    it('on another context, without -p local: the chart defaults', async () => {
      const [release] = (await effective('production')).deploy.helm.releases;
      expect(release!.valuesFiles ?? []).to.deep.equal([]);
      expect(dependencyTemplates(release!)).to.deep.equal([]);
    });
  });
});
