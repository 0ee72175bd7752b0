/**
 * The release rehearsed on this machine: the steps of .github/workflows/release.yml against a registry on
 * 127.0.0.1 (`crane registry serve`, an ephemeral port; or the cluster's REGISTRY) with a cosign key pair made for
 * the run instead of keyless signing and no transparency log:
 *   versions checked → image built (podman) and pushed → its SBOM read from the image → image signed and verified
 *   → SBOM attested and the attestation verified (its predicate is the image's SBOM) → chart staged with the
 *   pushed image's repository, packaged, pushed (helm push oci://) and signed and verified → release notes from
 *   CHANGELOG.md → with a cluster (KUBECONFIG and REGISTRY): helm install oci://… --version X and helm test.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { helmBinary } from '../../harness/helm.ts';
import { LOCAL_VALUES_FILE, readChangelog, readChart, releaseNotes, stageChart } from './chart.ts';
import { buildImage, imageSbom, missingImageTools, pushImage, untagImage } from './image.ts';
import { must, run, toolPath } from './tools.ts';
import { packageVersion, versionProblems } from './versions.ts';

export interface RehearsalOptions {
  /** Where the nodes of a cluster pull from; without it a registry is started for the run. */
  registry?: string;
  /** The cluster to install into; without it the install and helm test are skipped. */
  kubeconfig?: string;
  /** Values files for the install (default: the chart's values-local.yaml). */
  installValues?: string[];
  log?: (line: string) => void;
  /** Called with what was published while the registry still serves it (tests check more there). */
  inspect?: (published: Published) => Promise<void>;
}

/** What the rehearsal published, and how to reach it. */
export interface Published {
  imageRef: string;
  chartRef: string;
  publicKey: string;
  cosign: string;
  /** cosign's flags for the plain-HTTP registry. */
  insecure: string[];
  env: NodeJS.ProcessEnv;
}

export interface Rehearsal {
  version: string;
  registry: string;
  image: { reference: string; digest: string; buildSeconds: number };
  chart: { reference: string; digest: string };
  sbom: { components: number };
  /** cosign's own lines of each verification. */
  verified: { image: string[]; attestation: string[]; chart: string[] };
  install: { result: string; seconds?: number };
  steps: { name: string; seconds: number }[];
  seconds: number;
}

/** A registry on 127.0.0.1 for the run: `crane registry serve` on a port the kernel picks. */
async function startRegistry(): Promise<{ address: string; stop: () => Promise<void> }> {
  const crane = await toolPath('crane');
  const child: ChildProcess = spawn(crane, ['registry', 'serve', '--address', '127.0.0.1:0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`crane registry serve said nothing in 30 s: ${seen}`)), 30_000);
    const read = (chunk: Buffer): void => {
      seen += chunk.toString();
      const match = /serving on port (\d+)/.exec(seen);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    };
    child.stdout!.on('data', read);
    child.stderr!.on('data', read);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`crane registry serve exited (${code}): ${seen}`));
    });
  });
  return {
    address: `127.0.0.1:${port}`,
    stop: async () => {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}

/** cosign's lines on stderr that say what it checked. */
function cosignLines(stderr: string): string[] {
  return stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !/^WARNING/.test(l));
}

/** Runs the rehearsal; rejects at the first step that fails. */
export async function rehearse(options: RehearsalOptions = {}): Promise<Rehearsal> {
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const started = Date.now();
  const steps: Rehearsal['steps'] = [];
  const step = async <T>(name: string, fn: () => Promise<T>, describe?: (value: T) => string): Promise<T> => {
    const at = Date.now();
    const value = await fn();
    const seconds = (Date.now() - at) / 1000;
    steps.push({ name, seconds });
    log(`[${seconds.toFixed(1).padStart(6)} s] ${name}${describe ? `: ${describe(value)}` : ''}`);
    return value;
  };

  const missing = await missingImageTools();
  if (missing) throw new Error(`the rehearsal builds the image: ${missing}`);
  if (options.kubeconfig && !options.registry)
    throw new Error('a cluster (KUBECONFIG) needs REGISTRY too: its nodes pull the image and chart from there');
  const [cosign, helm] = await Promise.all([toolPath('cosign'), helmBinary(4)]);

  const work = await mkdtemp(path.join(os.tmpdir(), 'form-data-release-'));
  const helmEnv = {
    ...process.env,
    HELM_CACHE_HOME: path.join(work, 'helm/cache'),
    HELM_CONFIG_HOME: path.join(work, 'helm/config'),
    HELM_DATA_HOME: path.join(work, 'helm/data'),
    ...(options.kubeconfig ? { KUBECONFIG: options.kubeconfig } : {}),
  };
  const cosignEnv = { ...process.env, COSIGN_PASSWORD: randomBytes(16).toString('hex'), COSIGN_YES: 'true' };
  const insecure = ['--allow-http-registry', '--allow-insecure-registry'];
  let registry: { address: string; stop: () => Promise<void> } | undefined;
  let localTag: string | undefined;
  try {
    const version = await step(
      'versions agree',
      async () => {
        const [chart, releases, app] = await Promise.all([readChart(), readChangelog(), packageVersion()]);
        const problems = versionProblems(chart, app, releases, { tag: `v${chart.version}` });
        if (problems.length > 0) throw new Error(`not releasable:\n${problems.join('\n')}`);
        return chart.version;
      },
      (v) => `v${v}`,
    );

    registry = options.registry
      ? { address: options.registry, stop: async () => undefined }
      : await step('registry', startRegistry, (r) => `crane registry serve on ${r.address}`);
    const address = registry.address;
    const repository = `${address}/form-data`;
    localTag = `${repository}:${version}`;

    const build = await step(
      'image built',
      () => buildImage(localTag!),
      (b) => `${localTag} (podman, ${b.seconds.toFixed(1)} s)`,
    );
    const digestFile = path.join(work, 'image.digest');
    const imageDigest = await step(
      'image pushed',
      async () => {
        await pushImage(localTag!, digestFile);
        return (await readFile(digestFile, 'utf8')).trim();
      },
      (d) => `${repository}@${d}`,
    );
    const imageRef = `${repository}@${imageDigest}`;

    const sbomFile = path.join(work, 'sbom.cdx.json');
    const sbom = await step(
      'SBOM read from the image',
      async () => {
        const text = await imageSbom(localTag!);
        await writeFile(sbomFile, text);
        return JSON.parse(text) as { bomFormat: string; components: unknown[] };
      },
      (s) => `${s.bomFormat}, ${s.components.length} components`,
    );

    await step(
      'key pair',
      () => must(cosign, ['generate-key-pair'], { cwd: work, env: cosignEnv }),
      () => 'cosign.key / cosign.pub made for this run',
    );
    const key = path.join(work, 'cosign.key');
    const pub = path.join(work, 'cosign.pub');

    /** Steps `<what> signed` and `<what> verified`: cosign signs `ref` with the run's key and verifies it with its public key. */
    const signAndVerify = async (what: 'image' | 'chart', ref: string): Promise<string[]> => {
      await step(`${what} signed`, () =>
        must(cosign, ['sign', '--key', key, '--tlog-upload=false', ...insecure, ref], { env: cosignEnv }),
      );
      return step(
        `${what} verified`,
        async () => {
          const r = await run(cosign, ['verify', '--key', pub, '--insecure-ignore-tlog=true', ...insecure, ref], {
            env: cosignEnv,
          });
          if (r.code !== 0) throw new Error(`cosign verify failed (${r.code}): ${r.stderr}`);
          return cosignLines(r.stderr);
        },
        (lines) => lines.join(' | '),
      );
    };

    const imageVerified = await signAndVerify('image', imageRef);

    await step('SBOM attested', () =>
      must(
        cosign,
        [
          'attest',
          '--key',
          key,
          '--type',
          'cyclonedx',
          '--predicate',
          sbomFile,
          '--tlog-upload=false',
          ...insecure,
          imageRef,
        ],
        { env: cosignEnv },
      ),
    );
    const attestationVerified = await step(
      'attestation verified',
      async () => {
        const r = await run(
          cosign,
          [
            'verify-attestation',
            '--key',
            pub,
            '--type',
            'cyclonedx',
            '--insecure-ignore-tlog=true',
            ...insecure,
            imageRef,
          ],
          { env: cosignEnv },
        );
        if (r.code !== 0) throw new Error(`cosign verify-attestation failed (${r.code}): ${r.stderr}`);
        const envelope = JSON.parse(r.stdout.trim().split('\n')[0]!) as { payload: string };
        const statement = JSON.parse(Buffer.from(envelope.payload, 'base64').toString()) as {
          predicateType: string;
          predicate: { components?: unknown[]; serialNumber?: string };
          subject: { digest: { sha256: string } }[];
        };
        const sbomJson = JSON.parse(await readFile(sbomFile, 'utf8')) as { serialNumber?: string };
        if (statement.predicate.serialNumber !== sbomJson.serialNumber)
          throw new Error('the attested SBOM is not the image SBOM');
        if (`sha256:${statement.subject[0]?.digest.sha256}` !== imageDigest)
          throw new Error(`the attestation's subject is not ${imageDigest}`);
        return [
          ...cosignLines(r.stderr),
          `predicate ${statement.predicateType}: the image's SBOM (${statement.predicate.components?.length} components)`,
        ];
      },
      (lines) => lines.join(' | '),
    );

    const chartRepository = `${address}/charts`;
    const chartTgz = await step(
      'chart packaged',
      async () => {
        const staged = await stageChart(path.join(work, 'staged'), repository);
        const out = await must(helm, ['package', staged, '--destination', path.join(work, 'dist-chart')], {
          env: helmEnv,
        });
        const tgz = /saved it to: (.+\.tgz)/.exec(out)?.[1];
        if (!tgz) throw new Error(`helm package said: ${out}`);
        return tgz;
      },
      (tgz) => `${path.basename(tgz)} (values.yaml image.repository ${repository})`,
    );
    const chartDigest = await step(
      'chart pushed',
      async () => {
        const r = await run(helm, ['push', chartTgz, `oci://${chartRepository}`, '--plain-http'], { env: helmEnv });
        const out = r.stdout + r.stderr;
        const digest = /Digest: (sha256:[0-9a-f]{64})/.exec(out)?.[1];
        if (r.code !== 0 || !digest) throw new Error(`helm push failed (${r.code}): ${out}`);
        return digest;
      },
      (d) => `oci://${chartRepository}/form-data:${version} ${d}`,
    );
    const chartRef = `${chartRepository}/form-data@${chartDigest}`;
    const chartVerified = await signAndVerify('chart', chartRef);
    await step(
      'chart pulled back',
      async () => {
        const from = [`oci://${chartRepository}/form-data`, '--version', version, '--plain-http'];
        const shown = await must(helm, ['show', 'values', ...from], { env: helmEnv });
        const pulled = (parse(shown) as { image: { repository: string } }).image.repository;
        if (pulled !== repository) throw new Error(`the pulled chart's image.repository is ${pulled}`);
        // What it deploys with the verified digest set: the signed image, in every container.
        const rendered = await must(helm, ['template', 'form-data', ...from, '--set', `image.digest=${imageDigest}`], {
          env: helmEnv,
        });
        const images = [...new Set([...rendered.matchAll(/^\s+image: "?([^"\s]+)"?$/gm)].map((m) => m[1]))];
        if (images.length !== 1 || images[0] !== imageRef)
          throw new Error(`the pulled chart deploys ${images.join(', ')}, not ${imageRef}`);
        return pulled;
      },
      (r) =>
        `helm show values / helm template oci://… --version ${version}: image.repository ${r}, every container ${repository}@<pushed digest>`,
    );

    await step(
      'release notes',
      async () => {
        const notes = await releaseNotes();
        await writeFile(path.join(work, 'notes.md'), notes);
        return notes;
      },
      (notes) => `CHANGELOG.md [${version}], ${notes.split('\n').filter((l) => l.startsWith('- ')).length} entries`,
    );

    await options.inspect?.({ imageRef, chartRef, publicKey: pub, cosign, insecure, env: cosignEnv });

    let install: Rehearsal['install'] = { result: 'skipped: no cluster given (set KUBECONFIG and REGISTRY)' };
    if (options.kubeconfig) {
      const namespace = `form-data-rehearsal-${randomBytes(3).toString('hex')}`;
      const at = Date.now();
      const values = (options.installValues ?? [LOCAL_VALUES_FILE]).flatMap((f) => ['-f', f]);
      try {
        await step('helm install oci://', () =>
          must(
            helm,
            [
              'install',
              'form-data',
              `oci://${chartRepository}/form-data`,
              '--version',
              version,
              '--plain-http',
              '--namespace',
              namespace,
              '--create-namespace',
              '--wait',
              '--timeout',
              '10m',
              ...values,
              '--set',
              `image.digest=${imageDigest}`,
            ],
            { env: helmEnv },
          ),
        );
        const test = await step('helm test', () =>
          must(helm, ['test', 'form-data', '--namespace', namespace, '--timeout', '5m'], { env: helmEnv }),
        );
        const phase = /Phase:\s+(\w+)/.exec(test)?.[1] ?? 'unknown';
        install = { result: `installed in ${namespace}, helm test ${phase}`, seconds: (Date.now() - at) / 1000 };
      } finally {
        await run(helm, ['uninstall', 'form-data', '--namespace', namespace, '--wait'], { env: helmEnv });
        await run(process.env.KUBECTL || 'kubectl', ['delete', 'namespace', namespace, '--wait=false'], {
          env: helmEnv,
        });
      }
    } else log(`[     - ] helm install / helm test: ${install.result}`);

    const result: Rehearsal = {
      version,
      registry: address,
      image: { reference: imageRef, digest: imageDigest, buildSeconds: build.seconds },
      chart: { reference: `oci://${chartRepository}/form-data:${version}`, digest: chartDigest },
      sbom: { components: sbom.components.length },
      verified: { image: imageVerified, attestation: attestationVerified, chart: chartVerified },
      install,
      steps,
      seconds: (Date.now() - started) / 1000,
    };
    log(`rehearsal of v${version} done in ${result.seconds.toFixed(1)} s`);
    return result;
  } finally {
    if (localTag) await untagImage(localTag);
    await registry?.stop();
    await rm(work, { recursive: true, force: true });
  }
}
