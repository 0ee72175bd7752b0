/**
 * The chart's tracing.* values: rendered as the standard OTEL_* variables on
 * web and worker (headers from a Secret), read back by the code's own
 * configuration loader, egress to the collector, and refused values.
 */
import { expect } from 'chai';
import { loadTracingConfig, TRACING_SETTINGS } from '../../services/common/tracing-config.ts';
import { find, render, renderError, validateManifest, type Manifest } from './helm.ts';

type EnvVar = { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } };

function envOf(m: Manifest, container: string): EnvVar[] {
  const c = (m.spec.template.spec.containers as { name: string; env?: EnvVar[] }[]).find((x) => x.name === container);
  return c?.env ?? [];
}

const otel = (env: EnvVar[]): EnvVar[] => env.filter((e) => e.name.startsWith('OTEL_'));

describe('chart: tracing.* values', function () {
  this.timeout(60_000);

  it('renders no OTEL_* variable while tracing.endpoint is empty', async () => {
    const manifests = await render();
    expect(otel(envOf(find(manifests, 'Deployment', 'form-data-web'), 'web'))).to.deep.equal([]);
    expect(otel(envOf(find(manifests, 'Deployment', 'form-data-worker'), 'worker'))).to.deep.equal([]);
  });

  it('renders the standard variables on web and worker, the headers from a Secret, and the code reads them', async () => {
    const manifests = await render({
      set: {
        'tracing.endpoint': 'http://otel-collector.observability:4318',
        'tracing.protocol': 'http/json',
        'tracing.headersSecret.name': 'collector-auth',
        'tracing.sampler': 'parentbased_traceidratio',
        'tracing.samplerArg': '0.25',
        'tracing.resourceAttributes.deployment\\.environment\\.name': 'staging',
      },
    });
    const declared = new Set(TRACING_SETTINGS.flatMap((s) => s.names));
    for (const [name, container] of [
      ['form-data-web', 'web'],
      ['form-data-worker', 'worker'],
    ] as const) {
      const deployment = find(manifests, 'Deployment', name);
      await validateManifest(deployment);
      const vars = otel(envOf(deployment, container));
      for (const v of vars) expect(declared.has(v.name), `${v.name} is a variable the code reads`).to.equal(true);
      expect(vars.find((v) => v.name === 'OTEL_EXPORTER_OTLP_HEADERS')?.valueFrom).to.deep.equal({
        secretKeyRef: { name: 'collector-auth', key: 'OTEL_EXPORTER_OTLP_HEADERS' },
      });
      const env = Object.fromEntries(vars.filter((v) => v.value !== undefined).map((v) => [v.name, v.value!]));
      expect(loadTracingConfig({ ...env, OTEL_EXPORTER_OTLP_HEADERS: 'api-key=k' })).to.deep.include({
        endpoint: 'http://otel-collector.observability:4318/v1/traces',
        protocol: 'http/json',
        sampler: 'parentbased_traceidratio',
        samplerRatio: 0.25,
        resourceAttributes: { 'deployment.environment.name': 'staging' },
        headers: { 'api-key': 'k' },
      });
    }
  });

  it('adds tracing.egress to restricted egress, and refuses restricted egress without a way to the collector', async () => {
    const dns = { to: [{ namespaceSelector: {} }], ports: [{ port: 53, protocol: 'UDP' }] };
    const set = { 'networkPolicy.enabled': true, 'tracing.endpoint': 'http://otel-collector.observability:4318' };
    const restricted = ['--set-json', `networkPolicy.egress=${JSON.stringify([dns])}`];
    const message = await renderError({ set, extraArgs: restricted });
    expect(message).to.include('add tracing.egress rules that reach the collector');
    const collector = {
      to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'observability' } } }],
      ports: [{ port: 4318 }],
    };
    const manifests = await render({
      set,
      extraArgs: [...restricted, '--set-json', `tracing.egress=${JSON.stringify([collector])}`],
    });
    for (const name of ['form-data-web', 'form-data-worker']) {
      const policy = find(manifests, 'NetworkPolicy', name);
      await validateManifest(policy);
      expect(policy.spec.egress).to.have.length(2);
      expect(policy.spec.egress[0]).to.deep.include({ ports: dns.ports });
      expect(policy.spec.egress[1]).to.deep.equal(collector);
    }
  });

  const refused: [string, RegExp][] = [
    ['tracing.protocol="grpc"', /tracing[./]protocol/],
    ['tracing.endpoint="collector:4318"', /tracing[./]endpoint/],
    ['tracing.samplerArg="2"', /tracing[./]samplerArg/],
    ['tracing.resourceAttributes={"team":"a,b"}', /tracing[./]resourceAttributes/],
  ];
  for (const [value, message] of refused) {
    it(`refuses ${value} against the schema`, async () => {
      expect(await renderError({ extraArgs: ['--set-json', value] })).to.match(message);
    });
  }
});
