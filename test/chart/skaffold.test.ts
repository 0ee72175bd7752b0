/**
 * skaffold.yaml: valid against the skaffold/v4beta14 schema (kept outside the
 * repository, next to it in CI), building the one image and deploying the
 * chart with the Helm deployer, consistent with what the chart renders.
 */
import { expect } from 'chai';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { CHART, ROOT, find, render } from './helm.ts';

const SCHEMA = path.resolve(ROOT, '../shared/schemas/skaffold-v4beta14.json');

interface Release {
  name: string;
  chartPath: string;
  valuesFiles?: string[];
  setValueTemplates?: Record<string, string>;
}
interface Skaffold {
  apiVersion: string;
  kind: string;
  build: { artifacts: { image: string; context?: string; docker?: { dockerfile?: string } }[] };
  deploy: { helm: { releases: Release[] } };
  manifests?: unknown;
  portForward: { resourceType: string; resourceName: string; port: number; localPort?: number }[];
  profiles: { name: string; deploy?: { helm?: { releases: Release[] } } }[];
}

describe('skaffold.yaml', function () {
  this.timeout(60_000);
  let config: Skaffold;

  before(async () => {
    config = parse(await readFile(path.join(ROOT, 'skaffold.yaml'), 'utf8')) as Skaffold;
  });

  it('validates against the skaffold/v4beta14 schema', async function () {
    if (!existsSync(SCHEMA)) {
      console.log(`      (skipped: ${path.relative(ROOT, SCHEMA)} is not present)`);
      this.skip();
    }
    const schema = JSON.parse(await readFile(SCHEMA, 'utf8')) as Record<string, unknown>;
    expect(schema.$schema).to.match(/draft-07/);
    // strict off: the schema carries IDE keywords (preferredOrder, x-intellij-*).
    const ajv = new Ajv({ strict: false, allErrors: true });
    const validate = ajv.compile(schema);
    const ok = validate(config);
    expect(ok, ajv.errorsText(validate.errors, { separator: '\n' })).to.equal(true);
  });

  it('is skaffold/v4beta14, builds the one image from the Dockerfile and deploys the chart with deploy.helm', () => {
    expect(config.apiVersion).to.equal('skaffold/v4beta14');
    expect(config.kind).to.equal('Config');
    expect(config.build.artifacts).to.have.length(1);
    const [artifact] = config.build.artifacts;
    expect(artifact?.docker?.dockerfile ?? 'Dockerfile').to.equal('Dockerfile');
    expect(config.manifests, 'render through helm install, not kubectl, so hooks run').to.equal(undefined);
    const [release] = config.deploy.helm.releases;
    expect(path.resolve(ROOT, release!.chartPath)).to.equal(CHART);
    const key = artifact!.image.replace(/[^A-Za-z0-9]/g, '_');
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
});
