/**
 * The log codes tools match (services/common/log-codes.ts) against docs/operating.md's table, the sources that log
 * them, and real service processes started by the harness.
 */
import { expect } from 'chai';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { LOG_CODES } from '../services/common/log-codes.ts';
import { ROOT, startService } from '../harness/pipeline.ts';
import { section, tableRows } from './support/markdown.ts';
import { useEmulator } from './support/emulator.ts';
import { createTestEnv, type TestEnv } from './support/stack.ts';

const unquote = (cell: string): string => cell.replace(/^`|`$/g, '');

async function documented(): Promise<{ code: string; service: string; level: string; msg: string }[]> {
  const markdown = await readFile(path.join(ROOT, 'docs/operating.md'), 'utf8');
  // The table sits in a list item: its lines are indented.
  const logs = section(markdown, 'Logs')
    .split('\n')
    .map((l) => l.trimStart())
    .join('\n');
  return tableRows(logs)
    .filter((cells) => /^`FD_/.test(cells[0] ?? ''))
    .map(([code, service, level, msg]) => ({
      code: unquote(code!),
      service: service!,
      level: level!,
      msg: unquote(msg!),
    }));
}

describe('log codes', function () {
  this.timeout(60_000);

  it('docs/operating.md lists every code once, and nothing else', async () => {
    const rows = await documented();
    expect(rows.map((r) => r.code).sort()).to.deep.equal(Object.values(LOG_CODES).sort());
  });

  it('each code is logged by its service, with the documented message, at the documented level', async () => {
    const rows = await documented();
    for (const [key, code] of Object.entries(LOG_CODES)) {
      const row = rows.find((r) => r.code === code)!;
      if (row.service === 'common') {
        // A start-up warning of the configuration: its text names the variable, so only the code is fixed.
        const config = await readFile(path.join(ROOT, 'services/common/config.ts'), 'utf8');
        expect(config, `${code} in services/common/config.ts`).to.match(new RegExp(`code: LOG_CODES\\.${key}\\b`));
        continue;
      }
      const dir = path.join(ROOT, 'services', row.service);
      const sources = await Promise.all(
        ['batch.ts', 'consumer.ts', 'service.ts', 'health-server.ts']
          .map((f) => path.join(dir, f))
          .map((f) => readFile(f, 'utf8').catch(() => '')),
      );
      // The call that carries the code: logger.<level>(… code: LOG_CODES.<key> …, '<msg>').
      const call = new RegExp(
        `logger\\.${row.level}\\((?:(?!logger\\.)[\\s\\S])*?code: LOG_CODES\\.${key}\\b(?:(?!logger\\.)[\\s\\S])*?'${row.msg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}'`,
      );
      expect(
        sources.some((s) => call.test(s)),
        `${code}: logger.${row.level}(…${key}…, '${row.msg}') in services/${row.service}`,
      ).to.equal(true);
    }
  });

  describe('on a real worker process', () => {
    const emulator = useEmulator();
    let t: TestEnv;
    before(async () => {
      t = await createTestEnv(emulator.endpoint, { LOG_LEVEL: 'info' });
    });
    after(async () => {
      await t?.cleanup();
    });

    it('polling (what the harness waits on), then drained and stopped on SIGTERM', async () => {
      const worker = await startService('worker', t.env);
      expect(worker.ready).to.include({ code: LOG_CODES.workerPolling, msg: 'worker polling' });
      worker.handle.kill('SIGTERM');
      expect((await worker.handle.exited).code).to.equal(0);
      const codes = worker.handle.logs.map((l) => l.code).filter((c) => c !== undefined);
      expect(codes).to.include.members([LOG_CODES.workerDrained, LOG_CODES.workerStopped]);
    });
  });
});
