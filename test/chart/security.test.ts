/**
 * The chart secure by default (docs/security.md): a ServiceAccount per
 * component, NetworkPolicies on with egress only to DNS, SQS, PostgreSQL and
 * the collector, no shared IAM role, and unsigned forms only against an
 * emulator.
 */
import { expect } from 'chai';
import { find, findAll, LOCAL_VALUES, render, renderError, validateManifest, type Manifest } from './helm.ts';

const FULL = 'form-data';

interface EgressRule {
  to?: unknown[];
  ports: { port: number; protocol: string }[];
}

function egressPorts(manifests: Manifest[], component: string): string[] {
  const policy = find(manifests, 'NetworkPolicy', `${FULL}-${component}`);
  expect(policy.spec.policyTypes).to.deep.equal(['Ingress', 'Egress']);
  return (policy.spec.egress as EgressRule[]).flatMap((rule) => rule.ports.map((p) => `${p.protocol}/${p.port}`));
}

describe('chart: least privilege by default', function () {
  this.timeout(120_000);

  it('gives web, worker, migrations and export a ServiceAccount each, used by their own pods', async () => {
    const manifests = await render({ set: { 'serviceAccount.worker.annotations.team': 'forms' } });
    const accounts = findAll(manifests, 'ServiceAccount').map((sa) => sa.metadata.name);
    expect(accounts.sort()).to.deep.equal(['web', 'worker', 'export', 'migrations'].map((c) => `${FULL}-${c}`).sort());
    for (const [kind, name, account] of [
      ['Deployment', `${FULL}-web`, `${FULL}-web`],
      ['Deployment', `${FULL}-worker`, `${FULL}-worker`],
      ['Job', `${FULL}-migrations`, `${FULL}-migrations`],
    ] as const) {
      expect(find(manifests, kind, name).spec.template.spec.serviceAccountName, name).to.equal(account);
    }
    expect(find(manifests, 'ServiceAccount', `${FULL}-worker`).metadata.annotations).to.deep.equal({ team: 'forms' });
    expect(find(manifests, 'ServiceAccount', `${FULL}-web`).metadata.annotations).to.equal(undefined);
  });

  it("gives the worker its own database URL (its role's login) and the migrations the owner's", async () => {
    const envOf = (manifests: Manifest[], kind: string, name: string) =>
      (
        find(manifests, kind, name).spec.template.spec.containers[0].env as {
          name: string;
          valueFrom?: { secretKeyRef: { name: string; key: string } };
        }[]
      ).find((e) => e.name === 'DATABASE_URL')?.valueFrom?.secretKeyRef;
    const inline = await render({
      set: {
        'secrets.DATABASE_URL': 'postgres://owner:o@db:5432/forms',
        'secrets.WORKER_DATABASE_URL': 'postgres://worker:w@db:5432/forms',
        'config.DATABASE_WORKER_ROLE': 'form_data_worker',
      },
    });
    // A Secret per component, each with only what its pods read.
    expect(envOf(inline, 'Deployment', `${FULL}-worker`)).to.deep.equal({
      name: `${FULL}-worker`,
      key: 'DATABASE_URL',
    });
    const workerUrl = Buffer.from(find(inline, 'Secret', `${FULL}-worker`).data.DATABASE_URL as string, 'base64');
    expect(workerUrl.toString()).to.equal('postgres://worker:w@db:5432/forms');
    expect(find(inline, 'Secret', `${FULL}-worker`).data).to.have.keys(['DATABASE_URL']);
    expect(
      findAll(inline, 'Secret')
        .map((s) => s.metadata.name)
        .sort(),
    ).to.deep.equal([`${FULL}-migrations`, `${FULL}-worker`]);
    const web = await render({
      set: { 'secrets.UI_SECRET': 'u'.repeat(32), 'secrets.SENTRY_DSN': 'https://k@s.example/1' },
    });
    expect(find(web, 'Secret', `${FULL}-web`).data).to.have.keys(['UI_SECRET', 'SENTRY_DSN']);
    expect(find(web, 'Secret', `${FULL}-worker`).data).to.have.keys(['SENTRY_DSN']);
    expect(envOf(inline, 'Job', `${FULL}-migrations`)).to.deep.equal({
      name: `${FULL}-migrations`,
      key: 'DATABASE_URL',
    });
    expect(find(inline, 'Secret', `${FULL}-migrations`).data).to.have.keys(['DATABASE_URL']);
    const existing = await render({
      set: { existingSecret: 'credentials', 'database.workerSecretKey': 'WORKER_DATABASE_URL' },
    });
    expect(envOf(existing, 'Deployment', `${FULL}-worker`)).to.deep.equal({
      name: 'credentials',
      key: 'WORKER_DATABASE_URL',
    });
    expect(envOf(existing, 'Job', `${FULL}-migrations`)).to.deep.equal({ name: 'credentials', key: 'DATABASE_URL' });
  });

  it('refuses one IAM role for every component', async () => {
    const message = await renderError({
      set: { 'serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn': 'arn:aws:iam::123456789012:role/all' },
    });
    expect(message).to.contain('would give every component the same IAM role');
  });

  it('turns NetworkPolicies on by default: DNS and SQS for the web; DNS, SQS and PostgreSQL for the worker', async () => {
    const manifests = await render();
    for (const policy of findAll(manifests, 'NetworkPolicy')) await validateManifest(policy);
    expect(egressPorts(manifests, 'web')).to.deep.equal(['UDP/53', 'TCP/53', 'TCP/443']);
    expect(egressPorts(manifests, 'worker')).to.deep.equal(['UDP/53', 'TCP/53', 'TCP/443', 'TCP/5432']);
    const dns = (find(manifests, 'NetworkPolicy', `${FULL}-web`).spec.egress as EgressRule[])[0]!;
    expect(dns.to).to.deep.equal([{ namespaceSelector: {}, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }]);
  });

  it("adds the collector when tracing is on, and follows an emulator's port", async () => {
    const traced = await render({ set: { 'tracing.endpoint': 'http://otel-collector.observability:4318' } });
    expect(egressPorts(traced, 'web')).to.deep.equal(['UDP/53', 'TCP/53', 'TCP/443', 'TCP/4318']);
    const local = await render({ values: [LOCAL_VALUES] });
    expect(egressPorts(local, 'worker')).to.deep.equal(['UDP/53', 'TCP/53', 'TCP/4566', 'TCP/5432']);
  });

  it('refuses DISABLE_SIGNATURE_CHECK unless SQS is an emulator', async () => {
    const message = await renderError({ set: { 'config.DISABLE_SIGNATURE_CHECK': true } });
    expect(message).to.contain('DISABLE_SIGNATURE_CHECK accepts unsigned forms');
    await render({
      set: { 'config.DISABLE_SIGNATURE_CHECK': true, 'config.SQS_ENDPOINT_URL': 'http://form-data-sqs:4566' },
    });
    await render({ values: [LOCAL_VALUES] });
  });
});
