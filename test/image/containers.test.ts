/**
 * The mapping of a rendered pod's settings to podman flags (no engine needed):
 * each setting the chart renders becomes its flag, and a setting the runner
 * does not model is refused rather than silently dropped.
 */
import { expect } from 'chai';
import { find, render } from '../chart/helm.ts';
import { securityArgs } from './containers.ts';

describe('image: pod settings as podman flags', () => {
  it('maps the rendered web pod: user, fsGroup, read-only root, no capabilities, no escalation, /tmp tmpfs, memory', async () => {
    const pod = find(await render(), 'Deployment', 'form-data-web').spec.template.spec;
    expect(securityArgs(pod, pod.containers[0])).to.deep.equal([
      '--user=10001:10001',
      '--group-add=10001',
      '--read-only',
      '--read-only-tmpfs=false',
      '--cap-drop=ALL',
      '--security-opt=no-new-privileges',
      '--tmpfs=/tmp:rw,nosuid,nodev,mode=1777,size=64m',
      '--memory=256m',
    ]);
  });

  it('refuses what it does not model', () => {
    const container = { securityContext: { runAsUser: 10001 } };
    const pod = { automountServiceAccountToken: false };
    expect(() => securityArgs(pod, { securityContext: { runAsUser: 10001, privileged: true } })).to.throw(
      /privileged is not modelled/,
    );
    expect(() =>
      securityArgs({ ...pod, securityContext: { seccompProfile: { type: 'Localhost' } } }, container),
    ).to.throw(/Localhost is not modelled/);
    expect(() =>
      securityArgs(
        { ...pod, volumes: [{ name: 'data', hostPath: { path: '/' } }] },
        { ...container, volumeMounts: [{ name: 'data', mountPath: '/data' }] },
      ),
    ).to.throw(/only emptyDir/);
    expect(() => securityArgs({}, container)).to.throw(/service account token/);
    expect(() => securityArgs(pod, { securityContext: { runAsNonRoot: true, runAsUser: 0 } })).to.throw(/refuse/);
    expect(() => securityArgs(pod, {})).to.throw(/no runAsUser/);
  });
});
