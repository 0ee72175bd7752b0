/**
 * Claims of the docs that the code can check: lists of files and commands, the insert's conflict clause, the
 * worker's time to a restart in an outage.
 */
import { expect } from 'chai';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse } from 'yaml';
import { SETTINGS } from '../services/common/config.ts';
import { ROOT } from '../harness/pipeline.ts';

const read = (file: string): Promise<string> => readFile(path.join(ROOT, file), 'utf8');

describe('docs that the code checks', () => {
  it('docs/architecture.md names every module of services/common/', async () => {
    const doc = await read('docs/architecture.md');
    const common = doc.slice(doc.indexOf('- **common** (`services/common/`)'), doc.indexOf('## Shutdown'));
    const files = (await readdir(path.join(ROOT, 'services/common'))).filter((f) => f.endsWith('.ts'));
    for (const file of files) expect(common, file).to.include(`\`${file}\``);
  });

  it('docs/architecture.md gives the INSERT no conflict target, as the repository has none', async () => {
    const doc = await read('docs/architecture.md');
    const repository = await read('services/worker/repository.ts');
    expect(repository).to.match(/\.onConflict\(\)\s*\.ignore\(\)/);
    expect(doc).to.not.match(/ON CONFLICT \(/);
    expect(doc).to.include('`ON CONFLICT DO NOTHING` with no conflict target');
  });

  it('docs/testing.md names every test and check command of package.json', async () => {
    const doc = await read('docs/testing.md');
    const { scripts } = JSON.parse(await read('package.json')) as { scripts: Record<string, string> };
    const commands = Object.keys(scripts).filter((name) =>
      /^(test|test:.*|check|lint|typecheck|format:check)$/.test(name),
    );
    expect(commands).to.include.members(['test:unit', 'test:integration', 'test:system', 'format:check']);
    for (const name of commands) expect(doc, name).to.include(name === 'test' ? 'npm test' : `npm run ${name}`);
  });

  it("docs/operating.md's time to a worker restart in an outage is the chart's probe plus WORKER_LIVENESS_OUTAGE_SECONDS", async () => {
    const doc = await read('docs/operating.md');
    const values = parse(await read('charts/form-data/values.yaml')) as {
      config: { WORKER_LIVENESS_OUTAGE_SECONDS: number };
      worker: { probes: { liveness: { periodSeconds: number; failureThreshold: number } } };
    };
    const outage = values.config.WORKER_LIVENESS_OUTAGE_SECONDS;
    expect(String(outage)).to.equal(SETTINGS.find((s) => s.names[0] === 'WORKER_LIVENESS_OUTAGE_SECONDS')?.default);
    const { periodSeconds, failureThreshold } = values.worker.probes.liveness;
    const total = outage + periodSeconds * failureThreshold;
    expect(doc).to.include(
      `\`WORKER_LIVENESS_OUTAGE_SECONDS + periodSeconds × failureThreshold\` = ${outage} + ${periodSeconds} × ${failureThreshold} = ${total} s`,
    );
  });
});
