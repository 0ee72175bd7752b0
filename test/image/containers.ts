/**
 * Runs a rendered pod's container with podman as a kubelet would, as far as one
 * machine allows: the rendered args after the image's entrypoint, the
 * environment resolved from the ConfigMap and Secret (ports moved to free ones,
 * see prepareContainer), the user and groups, a read-only root filesystem with
 * only the pod's emptyDir volumes writable (as tmpfs), dropped capabilities,
 * no privilege escalation, the runtime's default seccomp profile and the memory
 * limit. Anything in the spec this does not model is refused, not ignored.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startProcess, type ProcessHandle } from '../../harness/process.ts';
import type { Manifest } from '../chart/helm.ts';
import { prepareContainer, type PreparedContainer } from '../chart/run.ts';
import { podman, podmanEnv } from '../../harness/image/podman.ts';

/* eslint-disable @typescript-eslint/no-explicit-any -- pod and container specs as rendered */
type Spec = Record<string, any>;

const MODELLED_SECURITY = new Set([
  'runAsUser',
  'runAsGroup',
  'runAsNonRoot',
  'readOnlyRootFilesystem',
  'allowPrivilegeEscalation',
  'capabilities',
  'seccompProfile',
  'fsGroup',
]);

/** "64Mi" → "64m" (podman's units are powers of 1024 too). */
function quantity(value: string): string {
  const m = /^(\d+)(Ki|Mi|Gi)?$/.exec(value);
  if (!m) throw new Error(`quantity ${value} is not modelled`);
  return `${m[1]}${({ Ki: 'k', Mi: 'm', Gi: 'g' } as Record<string, string>)[m[2] ?? ''] ?? ''}`;
}

export interface RunningContainer {
  name: string;
  prepared: PreparedContainer;
  /** The `podman run` process, attached: its output is the container's, its exit code the container's. */
  handle: ProcessHandle;
}

export interface PodRunner {
  /** Starts one container of the pod template of `owner` (a Deployment or a Job). */
  start(owner: Manifest, container: Spec, role: string): Promise<RunningContainer>;
  /** Every container started, for clean-up. */
  names(): string[];
  cleanup(): Promise<void>;
}

/** The podman arguments for one container of `pod` (a pod template's spec); exported for its own test. */
export function securityArgs(pod: Spec, container: Spec): string[] {
  const podSecurity: Spec = pod.securityContext ?? {};
  const security: Spec = { ...podSecurity, ...(container.securityContext ?? {}) };
  for (const key of Object.keys(security))
    if (!MODELLED_SECURITY.has(key)) throw new Error(`securityContext.${key} is not modelled`);
  const args: string[] = [];
  if (security.runAsUser === undefined)
    throw new Error('no runAsUser: the image user would be used, which this runner does not check');
  if (security.runAsNonRoot && security.runAsUser === 0)
    throw new Error('runAsNonRoot with runAsUser 0: the kubelet would refuse to start it');
  args.push(`--user=${security.runAsUser}:${security.runAsGroup ?? 0}`);
  if (podSecurity.fsGroup !== undefined) args.push(`--group-add=${podSecurity.fsGroup}`);
  if (security.readOnlyRootFilesystem) args.push('--read-only', '--read-only-tmpfs=false');
  for (const cap of security.capabilities?.drop ?? []) args.push(`--cap-drop=${cap}`);
  for (const cap of security.capabilities?.add ?? []) args.push(`--cap-add=${cap}`);
  if (security.allowPrivilegeEscalation === false) args.push('--security-opt=no-new-privileges');
  const seccomp = security.seccompProfile?.type ?? 'Unconfined';
  if (seccomp === 'Unconfined') args.push('--security-opt=seccomp=unconfined');
  else if (seccomp !== 'RuntimeDefault') throw new Error(`seccompProfile ${seccomp} is not modelled`);
  // (RuntimeDefault: podman's default profile, which it applies unless told otherwise.)
  const volumes = new Map<string, Spec>(((pod.volumes ?? []) as Spec[]).map((v) => [v.name as string, v]));
  for (const mount of (container.volumeMounts ?? []) as Spec[]) {
    const volume = volumes.get(mount.name);
    if (!volume?.emptyDir) throw new Error(`volume ${mount.name} is not an emptyDir; only emptyDir is modelled`);
    const size = volume.emptyDir.sizeLimit ? `,size=${quantity(volume.emptyDir.sizeLimit)}` : '';
    args.push(`--tmpfs=${mount.mountPath}:rw,nosuid,nodev,mode=1777${size}`);
  }
  const memory = container.resources?.limits?.memory;
  if (memory) args.push(`--memory=${quantity(memory)}`);
  if (pod.automountServiceAccountToken !== false) throw new Error('a mounted service account token is not modelled');
  return args;
}

/** Runs the rendered containers of one release with `image`, on the host network. */
export function podRunner(manifests: readonly Manifest[], image: string): PodRunner {
  const prefix = `form-data-test-${randomBytes(3).toString('hex')}`;
  const started: string[] = [];
  let envDir: string | undefined;
  return {
    async start(owner, container, role) {
      const pod = owner.spec.template.spec as Spec;
      const prepared = await prepareContainer(manifests, owner, container);
      if (container.command) throw new Error(`${owner.metadata.name}: command would replace the image's entrypoint`);
      envDir ??= await mkdtemp(path.join(tmpdir(), 'form-data-image-env-'));
      const envFile = path.join(envDir, `${role}.env`);
      await writeFile(
        envFile,
        Object.entries(prepared.env)
          .map(([k, v]) => `${k}=${v}`)
          .join('\n') + '\n',
        { mode: 0o600 },
      );
      const name = `${prefix}-${role}`;
      started.push(name);
      const args = [
        'run',
        '--rm',
        `--name=${name}`,
        '--network=host',
        `--env-file=${envFile}`,
        ...securityArgs(pod, container),
        image,
        ...(container.args as string[]),
      ];
      const env = await podmanEnv();
      const handle = startProcess('podman', args, {
        CONTAINERS_CONF: env.CONTAINERS_CONF!,
        BUILDAH_ISOLATION: 'chroot',
      });
      return { name, prepared, handle };
    },
    names: () => [...started],
    async cleanup() {
      await Promise.all(
        started.map((name) => podman(['rm', '--force', '--ignore', '--time=0', name]).catch(() => undefined)),
      );
      if (envDir) await rm(envDir, { recursive: true, force: true });
    },
  };
}
