/**
 * A tiny run of the benchmark (`npm run bench -- --smoke`): it must finish,
 * print the table, and end with one JSON line carrying every figure. The
 * figures themselves are not checked (a loaded CI machine says nothing about
 * them); the request counts, which do not depend on speed, are.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SETTINGS } from '../services/common/config.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

function runSmoke(): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bench/main.ts', '--smoke'], {
      cwd: ROOT,
      env: process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The keys of docs/performance.md's "JSON keys" table, placeholders replaced by one example each. */
function documentedKeys(): string[] {
  const page = readFileSync(new URL('../docs/performance.md', import.meta.url), 'utf8');
  const section = page.slice(page.indexOf('## JSON keys'));
  const body = section.slice(0, section.indexOf('\n## ', 1) > 0 ? section.indexOf('\n## ', 1) : undefined);
  return [...body.matchAll(/^\| `([^`]+)` +\|/gm)].map((m) =>
    m[1]!.replace('<mode>', 'batching').replace('<v>', 'ours'),
  );
}

describe('benchmark smoke run', function () {
  this.timeout(240_000);
  this.slow(60_000);

  it('runs every part and ends with the table and one JSON line', async () => {
    const { code, stdout, stderr } = await runSmoke();
    expect(code, stderr.split('\n').slice(-20).join('\n')).to.equal(0);
    const lines = stdout.trimEnd().split('\n');
    expect(stdout)
      .to.include('### Web')
      .and.include('### Worker')
      .and.include('### End to end')
      .and.include('### What users feel')
      .and.include('### Worker memory')
      .and.include('### Tracing')
      .and.include('### Targets');
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a JSON document checked field by field
    const result = JSON.parse(lines.at(-1)!) as Record<string, any>;
    expect(result.settings.smoke).to.equal(true);

    for (const mode of ['batching', 'direct', 'noop']) {
      expect(result.web.modes[mode].requestsPerSecond, mode).to.be.greaterThan(0);
      expect(result.web.modes[mode].failed, mode).to.equal(0);
    }
    // Coalescing: fewer sends than forms; without it, one per form.
    expect(result.web.modes.batching.sendsPer1000).to.be.lessThan(1000);
    // Sends still in flight when the load stops (at most one per connection) are counted but not accepted; on a
    // loaded machine a 1-second smoke run accepts few forms, so the bound allows for them.
    const direct = result.web.runs.find((r: { mode: string }) => r.mode === 'direct');
    expect(result.web.modes.direct.sendsPer1000).to.be.within(
      990,
      (1000 * (direct.accepted + result.settings.connections)) / direct.accepted + 10,
    );

    const v = result.worker.variants;
    for (const name of ['ours', 'oursBefore', 'naive', 'sqsConsumer', 'pgCeiling', 'pgCeiling100'])
      expect(v[name].messagesPerSecond, name).to.be.greaterThan(0);
    // Ours: one delete per batch of 10; the naive worker: one per message.
    expect(v.ours.deletePer1000).to.be.within(99, 120);
    // The coalescing writer at its defaults holds at most 2 connections; the design before it, one INSERT per batch.
    expect(v.ours.connections).to.be.within(1, 2);
    expect(v.oursBefore.insertsPer1000).to.be.within(99, 120);
    // INSERT statements counted as they ran: one per WORKER_INSERT_MAX_ROWS rows.
    const perInsert = Number(SETTINGS.find((x) => x.names[0] === 'WORKER_INSERT_MAX_ROWS')!.default);
    const ceiling = v.pgCeiling100;
    expect(ceiling.insertsPer1000).to.equal((1000 * Math.ceil(ceiling.messages / perInsert)) / ceiling.messages);
    expect(v.naive.deletePer1000).to.be.within(990, 1100);
    expect(v.sqsConsumer.receivePer1000).to.be.at.least(990);

    // Requests cut off at the end of the load may have been accepted too.
    expect(result.endToEnd.stored).to.be.at.least(result.endToEnd.accepted);
    expect(result.endToEnd.requestsPerForm).to.be.greaterThan(0);
    expect(result.memory.rssEndBytes).to.be.greaterThan(0);
    // Tracing on and off side by side: spans reached the receiver.
    expect(result.tracing.web.onRequestsPerSecond).to.be.greaterThan(0);
    expect(result.tracing.worker.onMessagesPerSecond).to.be.greaterThan(0);
    expect(result.tracing.receiver.requests).to.be.greaterThan(0);
    // The compiled build: cold starts, every posted form's row seen committed, both processes exiting 0 on SIGTERM.
    const l = result.latency;
    expect(l.coldStart.distMs).to.have.length(result.settings.coldStarts);
    expect(l.coldStart.distMedianMs).to.be.greaterThan(0);
    expect(l.coldStart.sourcesMedianMs).to.be.greaterThan(0);
    expect(l.postToRow.forms).to.equal(result.settings.latencyForms);
    expect(l.postToRow.rowMs.p50).to.be.greaterThan(0).and.at.most(l.postToRow.rowMs.p99);
    // A row can only commit after the web's SendMessageBatch, which costs at least one injected round trip.
    expect(l.postToRow.rowMs.p50).to.be.greaterThan(l.postToRow.roundTripMs);
    expect(l.postToRow.targetP99Ms).to.equal(4 * result.settings.delayMs + 20);
    expect(l.memory.web.idleBytes).to.be.greaterThan(0);
    expect(l.memory.worker.loadPeakBytes).to.be.at.least(l.memory.worker.idleBytes);
    expect(l.memory.loadForms).to.be.greaterThan(0);
    expect(l.exitCodes).to.deep.equal({ web: 0, worker: 0 });
    const names = (result.targets as { name: string }[]).map((t) => t.name);
    expect(names).to.include.members([
      'worker cold start to first stored row, median (ms)',
      'POST → row p99 (ms)',
      'web RSS idle (MiB)',
      'worker RSS idle (MiB)',
      'worker RSS peak under the load run (MiB)',
      'worker RSS peak while draining (MiB)',
    ]);
    // Each target is reported once, and `met` is what its value and its bound say.
    expect(new Set(names).size, 'target names').to.equal(names.length);
    for (const t of result.targets as { name: string; value: number; target: string; met: boolean }[]) {
      const bound = /^([≤≥]) (\d+(?:\.\d+)?)$/.exec(t.target);
      expect(bound, `${t.name}: target ${t.target}`).to.not.equal(null);
      const limit = Number(bound![2]);
      expect(t.met, `${t.name}: ${t.value} ${t.target}`).to.equal(
        bound![1] === '≤' ? t.value <= limit : t.value >= limit,
      );
    }

    // Every key docs/performance.md documents is in the output.
    const keys = documentedKeys();
    expect(keys.length).to.be.greaterThan(30);
    for (const key of keys) {
      const value = key
        .split('.')
        .reduce<unknown>((at, part) => (at as Record<string, unknown> | undefined)?.[part], result);
      expect(value, `docs/performance.md documents ${key}`).to.not.equal(undefined);
    }
  });
});
