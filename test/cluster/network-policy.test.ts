/**
 * The chart's NetworkPolicies enforced for real: SIG Network's kube-network-policies (harness/cluster/addons/
 * network-policies, run on this machine, the cluster's node, for the release's namespace only) evaluates each new
 * connection of the release's pods against the policies the chart rendered. The release uses values-local.yaml's
 * in-cluster PostgreSQL and the SQS emulator on this machine (HOST_ADDRESS), so the test names those peers in
 * networkPolicy.defaultEgress (the chart's default DNS peer, pods labelled k8s-app=kube-dns, does not exist here:
 * CoreDNS runs on the node) and limits networkPolicy.metricsFrom to a scraper pod of another namespace.
 *
 * Checked, with the enforcer running from before the install: the pods become Ready through the kubelet's probes;
 * a form posted to the web Service is stored once by the worker (DNS, web → SQS, worker → SQS, worker →
 * PostgreSQL pass); from another namespace the scraper reaches the metrics ports and any pod the web port, while a
 * pod without the scraper's labels (in another namespace or the release's) times out on the worker's health port
 * and the web's metrics port; the web's egress to PostgreSQL and to a port of the node no rule names times out, its
 * egress to the DNS and the emulator on the node passes; with the chart's default dnsTo (pods labelled
 * k8s-app=kube-dns) DNS on the node is refused, and passes again with the test's.
 * Then, the enforcer stopped, every refused connection succeeds (so the refusals are the policies', not the
 * network's), and no nftables table of the enforcer is left.
 *
 * Needs root, nft and the kernel's NFQUEUE (nfnetlink_queue); skips with one line without them or a cluster (see
 * addons.ts for when it is required under CI).
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { access, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { eventually } from '../support/eventually.ts';
import { CHART, LOCAL_VALUES } from '../chart/helm.ts';
import { runCommand } from '../../harness/image/podman.ts';
import {
  addonBinary,
  addonCluster,
  addonScript,
  failOrSkip,
  helmOk,
  installScalingRelease,
  postForms,
  removeScalingRelease,
  seconds,
  storedCounts,
  type ScalingRelease,
} from './addons.ts';
import { kubectl, kubectlOk, list, type Cluster, type KubeObject } from './kube.ts';

const RELEASE = 'form-data';
const TABLE = 'form-data-network-policies';
/** How long a connection may take before it counts as refused by a dropped SYN. */
const CONNECT_TIMEOUT_MS = 5_000;
/** Prints `connected`, `timeout` or `error:<code>` for a TCP connection to argv[1]:argv[2] within argv[3] ms. */
const CONNECT_SCRIPT = [
  "const s = require('node:net').connect({ host: process.argv[1], port: Number(process.argv[2]) });",
  "const t = setTimeout(() => { console.log('timeout'); process.exit(0); }, Number(process.argv[3]));",
  "s.on('connect', () => { console.log('connected'); process.exit(0); });",
  "s.on('error', (e) => { console.log('error:' + e.code); process.exit(0); });",
].join('\n');

type Outcome = 'connected' | 'timeout' | `error:${string}`;

/** One connection the policies decide, and what it must give with the enforcer running. */
interface Probe {
  what: string;
  /** namespace and pod the connection starts in (kubectl exec) */
  from: { namespace: string; pod: string; container?: string };
  host: string;
  port: number;
  enforced: 'connected' | 'timeout';
}

async function enforcerTables(): Promise<string[]> {
  const out = await runCommand('nft', ['list', 'tables']);
  if (out.code !== 0) throw new Error(`nft list tables: ${out.stderr}`);
  return out.stdout.split('\n').filter((line) => line.includes(TABLE));
}

describe('cluster: the chart NetworkPolicies enforced (kube-network-policies)', function () {
  this.timeout(1_800_000);
  let cluster: Cluster;
  let startedEnforcer = false;
  const suffix = randomBytes(4).toString('hex');
  const release: Parameters<typeof removeScalingRelease>[1] = {
    name: RELEASE,
    namespace: `form-data-netpol-${suffix}`,
  };
  const { namespace } = release;
  const peers = `form-data-netpol-peers-${suffix}`;
  let installed: ScalingRelease;
  let nodeListener: Server | undefined;
  let nodePort = 0;
  const figures: Record<string, unknown> = {};
  let pods: Record<'web' | 'worker' | 'postgresql', KubeObject>;

  before(async function () {
    const given = await addonCluster();
    if (typeof given === 'string') return failOrSkip(this, given);
    cluster = given;
    if (process.getuid?.() !== 0) return failOrSkip(this, 'the enforcer needs root (nftables, NFQUEUE)');
    if ((await runCommand('nft', ['--version']).catch(() => ({ code: 127 }))).code !== 0)
      return failOrSkip(this, 'nft is not installed (Debian package nftables)');
    const nfqueue = await access('/proc/net/netfilter/nfnetlink_queue').then(
      () => true,
      () => false,
    );
    if (!nfqueue) return failOrSkip(this, 'the kernel has no NFQUEUE (nfnetlink_queue)');
    if (!(await addonBinary('kube-network-policies', 'KUBE_NETWORK_POLICIES_VERSION')))
      return failOrSkip(this, 'kube-network-policies is not built (harness/cluster/addons/build network-policies)');
    const left = await enforcerTables();
    if (left.length > 0)
      throw new Error(
        `an enforcer's nftables table is already there (${left.join(', ')}): harness/cluster/addons/network-policies stop`,
      );

    const started = Date.now();
    startedEnforcer = true; // stopped in after() even when the start fails half-way
    await addonScript(cluster, 'network-policies', ['start', namespace]);
    figures.enforcerStart = `${seconds(started)} s`;

    // A port of the node that no egress rule names: it answers whoever reaches it.
    nodeListener = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => nodeListener!.listen(0, cluster.hostAddress, resolve));
    nodePort = (nodeListener.address() as { port: number }).port;

    const node = [{ ipBlock: { cidr: `${cluster.hostAddress}/32` } }];
    installed = await installScalingRelease(cluster, release, {
      tag: `netpol-${suffix}`,
      queue: `netpol-${suffix}`,
      figures,
      values: async () => ({
        worker: {},
        networkPolicy: {
          enabled: true,
          metricsFrom: [
            {
              namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': peers } },
              podSelector: { matchLabels: { role: 'scraper' } },
            },
          ],
          defaultEgress: {
            // CoreDNS and the emulator run on the node; PostgreSQL is the release's own pod.
            dnsTo: node,
            sqsTo: node,
            postgresqlTo: [{ podSelector: { matchLabels: { 'app.kubernetes.io/component': 'postgresql' } } }],
          },
        },
      }),
    });
    const podOf = async (component: string): Promise<KubeObject> => {
      const [pod] = await list(cluster, ['pods', '-n', namespace, '-l', `app.kubernetes.io/component=${component}`]);
      if (!pod) throw new Error(`no ${component} pod`);
      return pod;
    };
    pods = { web: await podOf('web'), worker: await podOf('worker'), postgresql: await podOf('postgresql') };

    const image = JSON.parse(
      await kubectlOk(cluster, ['get', 'deployment', '-n', namespace, `${RELEASE}-web`, '-o', 'json']),
    ) as { spec: { template: { spec: { containers: { image: string }[] } } } };
    await kubectlOk(cluster, ['create', 'namespace', peers]);
    // Peers on the project's image (it has node): a scraper and a stranger in another namespace, and a neighbour
    // without the scraper's labels in the release's own.
    const peerPods = [
      { name: 'scraper', namespace: peers, labels: { role: 'scraper' } },
      { name: 'stranger', namespace: peers, labels: {} },
      { name: 'neighbour', namespace, labels: {} },
    ];
    for (const { name, namespace: ns, labels } of peerPods) {
      const manifest = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: ns, labels },
        spec: {
          automountServiceAccountToken: false,
          terminationGracePeriodSeconds: 0,
          securityContext: { runAsNonRoot: true, runAsUser: 10001, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [
            {
              name: 'peer',
              image: image.spec.template.spec.containers[0]!.image,
              command: ['node', '-e', 'setInterval(() => {}, 1 << 30)'],
              securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
            },
          ],
        },
      };
      const file = path.join(installed.workdir, `${name}.json`);
      await writeFile(file, JSON.stringify(manifest));
      await kubectlOk(cluster, ['apply', '-f', file]);
    }
    for (const { name, namespace: ns } of peerPods)
      await kubectlOk(cluster, ['wait', '-n', ns, '--for=condition=Ready', `pod/${name}`, '--timeout=300s']);
  });

  after(async function () {
    if (Object.keys(figures).length > 0) console.log(`      figures: ${JSON.stringify(figures)}`);
    if (!cluster) return;
    if (startedEnforcer)
      await addonScript(cluster, 'network-policies', ['stop']).catch((e: unknown) => console.log(String(e)));
    await kubectl(cluster, ['delete', 'namespace', peers, '--ignore-not-found', '--timeout=180s']);
    await removeScalingRelease(cluster, release);
    await new Promise((resolve) => (nodeListener ? nodeListener.close(resolve) : resolve(undefined)));
  });

  const ip = (pod: KubeObject): string => (pod.status as { podIP: string }).podIP;
  /** A named container port of a pod, as the chart rendered it. */
  const port = (pod: KubeObject, name: string): number => {
    const containers = (pod.spec as { containers: { ports?: { name?: string; containerPort: number }[] }[] })
      .containers;
    const found = containers.flatMap((c) => c.ports ?? []).find((p) => p.name === name);
    if (!found) throw new Error(`${pod.metadata.name} has no port ${name}`);
    return found.containerPort;
  };

  async function connect(probe: Probe): Promise<Outcome> {
    const { namespace: ns, pod, container } = probe.from;
    const args = ['exec', '-n', ns, pod, ...(container ? ['-c', container] : []), '--'];
    const out = await kubectlOk(
      cluster,
      [...args, 'node', '-e', CONNECT_SCRIPT, probe.host, String(probe.port), String(CONNECT_TIMEOUT_MS)],
      120_000,
    );
    return out.trim() as Outcome;
  }

  /** The connections the rendered policies decide; refused ones are tried again with the enforcer stopped. */
  function probes(): Probe[] {
    const stranger = { namespace: peers, pod: 'stranger' };
    const neighbour = { namespace, pod: 'neighbour' };
    const scraper = { namespace: peers, pod: 'scraper' };
    const web = { namespace, pod: pods.web.metadata.name, container: 'web' };
    const worker = { namespace, pod: pods.worker.metadata.name, container: 'worker' };
    const emulatorPort = Number(new URL(installed.emulator!.endpoint).port);
    const webPort = { host: ip(pods.web), port: port(pods.web, 'http') };
    const webMetrics = { host: ip(pods.web), port: port(pods.web, 'metrics') };
    const workerHealth = { host: ip(pods.worker), port: port(pods.worker, 'health') };
    const postgresql = { host: ip(pods.postgresql), port: port(pods.postgresql, 'postgresql') };
    return [
      { what: 'stranger → web port (webFrom empty)', from: stranger, ...webPort, enforced: 'connected' },
      { what: 'scraper → web metrics port', from: scraper, ...webMetrics, enforced: 'connected' },
      { what: 'scraper → worker health port', from: scraper, ...workerHealth, enforced: 'connected' },
      { what: 'stranger → web metrics port', from: stranger, ...webMetrics, enforced: 'timeout' },
      { what: 'stranger → worker health port', from: stranger, ...workerHealth, enforced: 'timeout' },
      { what: 'neighbour → worker health port', from: neighbour, ...workerHealth, enforced: 'timeout' },
      { what: 'worker → PostgreSQL', from: worker, ...postgresql, enforced: 'connected' },
      { what: 'web → PostgreSQL', from: web, ...postgresql, enforced: 'timeout' },
      {
        what: 'web → the DNS on the node (TCP)',
        from: web,
        host: cluster.hostAddress,
        port: 53,
        enforced: 'connected',
      },
      {
        what: 'web → the emulator on the node',
        from: web,
        host: cluster.hostAddress,
        port: emulatorPort,
        enforced: 'connected',
      },
      {
        what: 'web → another port of the node',
        from: web,
        host: cluster.hostAddress,
        port: nodePort,
        enforced: 'timeout',
      },
    ];
  }

  it('enforces from before the install: the pods are steered to the enforcer and Ready through the kubelet probes', async function () {
    const wanted = Object.values(pods).map(ip);
    const steered = await eventually(
      async () => {
        const set = await runCommand('nft', ['list', 'set', 'ip', TABLE, 'pods']);
        return wanted.every((a) => set.stdout.includes(a)) ? set.stdout : undefined;
      },
      60_000,
      `the release's pod addresses (${wanted.join(', ')}) in the enforcer's set`,
    );
    expect(steered).to.include(ip(pods.web));
    for (const [component, pod] of Object.entries(pods)) {
      const ready = (pod.status as { conditions?: { type: string; status: string }[] }).conditions?.find(
        (c) => c.type === 'Ready',
      );
      expect(ready?.status, `${component} Ready`).to.equal('True');
    }
    const policies = await list(cluster, ['networkpolicies', '-n', namespace]);
    expect(policies.map((p) => p.metadata.name).sort()).to.deep.equal([`${RELEASE}-web`, `${RELEASE}-worker`]);
  });

  it('allows the flow of a form: posted to the web Service, stored once by the worker', async function () {
    const posted = Date.now();
    const ids = await postForms(installed.web, 5, `netpol-${suffix}`);
    const counts = await eventually(
      async () => {
        const c = await storedCounts(cluster, namespace, `${RELEASE}-postgresql`, ids);
        return c.size === ids.length ? c : undefined;
      },
      300_000,
      `${ids.length} forms stored`,
    );
    figures.formsStored = `${seconds(posted)} s`;
    expect([...counts.values()]).to.deep.equal(ids.map(() => 1));
  });

  it('allows and refuses the connections the rendered policies name', async function () {
    const outcomes: string[] = [];
    for (const probe of probes()) outcomes.push(`${probe.what}: ${await connect(probe)}`);
    figures.enforced = outcomes;
    expect(outcomes).to.deep.equal(probes().map((p) => `${p.what}: ${p.enforced}`));
  });

  it("refuses DNS with the chart's default dnsTo, which names pods this cluster's DNS is not", async function () {
    // The chart's own default, read from values.yaml: pods labelled k8s-app: kube-dns (CoreDNS runs on the node here).
    const defaults = parse(await readFile(path.join(CHART, 'values.yaml'), 'utf8')) as {
      networkPolicy: { defaultEgress: { dnsTo: unknown } };
    };
    const override = path.join(installed.workdir, 'default-dns.yaml');
    await writeFile(
      override,
      stringify({ networkPolicy: { defaultEgress: { dnsTo: defaults.networkPolicy.defaultEgress.dnsTo } } }),
    );
    const upgrade = async (files: string[]): Promise<void> => {
      await helmOk(cluster, [
        'upgrade',
        RELEASE,
        CHART,
        '-n',
        namespace,
        '--wait',
        '--timeout',
        '10m',
        ...files.flatMap((f) => ['-f', f]),
      ]);
    };
    const dns = probes().find((p) => p.what.startsWith('web → the DNS'))!;
    await upgrade([LOCAL_VALUES, installed.values, override]);
    // The enforcer reads the changed policy from its watch: each attempt is a new connection, evaluated anew.
    await eventually(async () => ((await connect(dns)) === 'timeout' ? true : undefined), 120_000, 'DNS refused');
    await upgrade([LOCAL_VALUES, installed.values]);
    await eventually(
      async () => ((await connect(dns)) === 'connected' ? true : undefined),
      120_000,
      'DNS allowed again',
    );
  });

  it('with the enforcer stopped, the refused connections succeed and no nftables table of it is left', async function () {
    const stopped = Date.now();
    await addonScript(cluster, 'network-policies', ['stop']);
    startedEnforcer = false;
    figures.enforcerStop = `${seconds(stopped)} s`;
    expect(await enforcerTables()).to.deep.equal([]);
    const refused = probes().filter((p) => p.enforced === 'timeout');
    const outcomes: string[] = [];
    for (const probe of refused) outcomes.push(`${probe.what}: ${await connect(probe)}`);
    figures.unenforced = outcomes;
    expect(outcomes).to.deep.equal(refused.map((p) => `${p.what}: connected`));
  });
});
