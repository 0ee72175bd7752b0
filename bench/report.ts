/**
 * The human-readable table of a benchmark result (Markdown, so that it can be
 * pasted into docs/performance.md as it is).
 */
import type { WebMode } from './processes.ts';
import type { BenchResult } from './run.ts';
import { round } from './stats.ts';
import { WEB_MODES } from './web-bench.ts';
import { WORKER_VARIANTS, type WorkerVariant } from './worker-bench.ts';

function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string =>
    `| ${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(cells[0]!), rule, ...cells.slice(1).map(line)].join('\n');
}

const fmt = (x: number | undefined, digits = 0): string =>
  x === undefined || !Number.isFinite(x)
    ? '–'
    : round(x, digits).toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const ratio = (x: number | undefined): string =>
  x === undefined || !Number.isFinite(x) ? '–' : `${fmt(x, x < 10 ? 2 : 1)}×`;
const mib = (bytes: number): string => fmt(bytes / 2 ** 20, 1);

/** The web part's lines. */
function webSection(result: BenchResult, w: NonNullable<BenchResult['web']>): string[] {
  const out: string[] = [];
  const s = result.settings;
  out.push(
    '',
    `### Web: ${s.connections} concurrent clients posting valid signed forms, ${s.durationS} s per measurement (medians)`,
    '',
  );
  out.push(
    table(
      [
        'mode',
        'forms/s',
        'p50 ms',
        'p99 ms',
        'SQS sends / 1000 forms',
        'web CPU ms / 1000 forms',
        'proxy + emulator CPU ms / 1000',
        'failed',
      ],
      (Object.keys(WEB_MODES) as WebMode[]).map((mode) => {
        const r = w.modes[mode];
        const sqs = mode === 'noop';
        return [
          WEB_MODES[mode],
          fmt(r.requestsPerSecond),
          fmt(r.p50Ms),
          fmt(r.p99Ms),
          sqs ? '–' : fmt(r.sendsPer1000, 1),
          fmt(r.webCpuMsPer1000),
          sqs ? '–' : fmt(r.sqsSideCpuMsPer1000),
          r.failed,
        ];
      }),
    ),
  );
  return out;
}

/** The worker part's lines. */
function workerSection(result: BenchResult, w: NonNullable<BenchResult['worker']>): string[] {
  const out: string[] = [];
  const s = result.settings;
  out.push(
    '',
    `### Worker: draining ${s.messages.toLocaleString('en-US')} messages (slow baselines: first ${s.baselineS} s) (medians)`,
    '',
  );
  const ours = w.variants.ours?.messagesPerSecond;
  out.push(
    table(
      [
        'worker',
        'messages/s',
        'vs ours',
        'receives / 1000',
        'deletes / 1000',
        'INSERTs / 1000',
        'DB connections',
        'worker CPU ms / 1000',
      ],
      (Object.keys(WORKER_VARIANTS) as WorkerVariant[])
        .filter((v) => w.variants[v])
        .map((v) => {
          const r = w.variants[v]!;
          const ceiling = v === 'pgCeiling' || v === 'pgCeiling100';
          const label = WORKER_VARIANTS[v].target ? WORKER_VARIANTS[v].label : `${WORKER_VARIANTS[v].label} (extra)`;
          return [
            label,
            fmt(r.messagesPerSecond),
            v === 'ours' || ours === undefined ? '' : ratio(ours / r.messagesPerSecond),
            ceiling ? '–' : fmt(r.receivePer1000, 1),
            ceiling ? '–' : fmt(r.deletePer1000, 1),
            fmt(r.insertsPer1000, 1),
            fmt(r.connections),
            fmt(r.cpuMsPer1000),
          ];
        }),
    ),
  );
  const b = w.breakdown;
  if (b) {
    out.push(
      '',
      `Where a batch's time goes (ours, median round; ${fmt(b.avgBatch, 1)} messages per batch, per poll loop): ` +
        `cycle ${fmt(b.cycleMs, 1)} ms = receive ${fmt(b.receiveMs, 1)} ms (of which ${s.delayMs} ms round trip, ${fmt(b.emulatorReceiveMs, 1)} ms emulator) ` +
        `+ insert ${fmt(b.insertMs, 1)} ms + delete and decode ${fmt(b.deleteAndOtherMs, 1)} ms (of which ${s.delayMs} ms round trip, ${fmt(b.emulatorDeleteMs, 1)} ms emulator).`,
    );
  }
  return out;
}

/** The endToEnd part's lines. */
function endToEndSection(result: BenchResult, e: NonNullable<BenchResult['endToEnd']>): string[] {
  const out: string[] = [];
  out.push('', `### End to end: web (coalescing on) under load, worker (defaults) draining behind it`, '');
  out.push(
    table(
      ['design', 'SQS requests / stored form', 'send', 'receive', 'delete', 'other', 'cost / million forms'],
      [
        [
          'ours',
          fmt(e.requestsPerForm, 3),
          fmt(e.sendPerForm, 3),
          fmt(e.receivePerForm, 3),
          fmt(e.deletePerForm, 3),
          fmt(e.otherPerForm, 3),
          `$${fmt(e.costPerMillionForms, 3)}`,
        ],
        [
          'replaced design (SendMessage + naive worker, from this run)',
          fmt(e.replacedRequestsPerForm, 3),
          '',
          '',
          '',
          '',
          `$${fmt(e.replacedCostPerMillionForms, 3)}`,
        ],
      ],
    ),
  );
  out.push(
    '',
    `${e.stored.toLocaleString('en-US')} forms stored; $0.40 per million SQS requests. Long polls are answered as SQS answers them: ` +
      `${fmt(e.repolledPerForm, 3)} per form of the emulator's early empty answers (every waiting poll answered when a message ` +
      `arrives) were kept waiting by the proxy instead of being returned; ${fmt(e.emptyReceivePerForm, 3)} per form came back ` +
      'empty at the end of their wait.',
  );
  return out;
}

/** The latency part's lines. */
function latencySection(result: BenchResult, l: NonNullable<BenchResult['latency']>): string[] {
  const out: string[] = [];
  const p = l.postToRow;
  const pct = (x: { p50: number; p90: number; p99: number; max: number }): string[] => [
    fmt(x.p50, 1),
    fmt(x.p90, 1),
    fmt(x.p99, 1),
    fmt(x.max, 1),
  ];
  out.push('', '### What users feel, on the compiled build (dist/, as the image runs it)', '');
  out.push(
    table(
      ['', 'p50', 'p90', 'p99', 'max'],
      [
        [`POST → row committed, ms (${p.forms} forms at ${p.rateHz}/s)`, ...pct(p.rowMs)],
        ['POST → 202, ms', ...pct(p.acceptedMs)],
      ],
    ),
  );
  out.push(
    '',
    `Target p99 ≤ 4 round trips + 20 ms = ${p.targetP99Ms} ms (round trip ${p.roundTripMs} ms). ` +
      `Worker cold start (one form queued, process spawned → its row committed): dist/ ${l.coldStart.distMs.map((x) => fmt(x)).join(', ')} ms ` +
      `(median ${fmt(l.coldStart.distMedianMs)}); from the sources ${l.coldStart.sourcesMs.map((x) => fmt(x)).join(', ')} ms. Build ${fmt(l.buildMs)} ms.`,
    '',
  );
  out.push(
    table(
      ['RSS, MiB', 'idle', 'at the low rate', 'under the load run'],
      [
        ['web', mib(l.memory.web.idleBytes), mib(l.memory.web.lowRatePeakBytes), mib(l.memory.web.loadPeakBytes)],
        [
          'worker',
          mib(l.memory.worker.idleBytes),
          mib(l.memory.worker.lowRatePeakBytes),
          mib(l.memory.worker.loadPeakBytes),
        ],
      ],
    ),
  );
  out.push(
    '',
    `Load run: ${l.memory.loadForms.toLocaleString('en-US')} forms at ${fmt(l.memory.loadRequestsPerSecond)} req/s, the worker draining behind it; ` +
      `peaks sampled every 100 ms. Exit codes on SIGTERM: web ${String(l.exitCodes.web)}, worker ${String(l.exitCodes.worker)}.`,
  );
  return out;
}

/** The memory part's lines. */
function memorySection(result: BenchResult, r: NonNullable<BenchResult['memory']>): string[] {
  const out: string[] = [];
  out.push(
    '',
    `### Worker memory: \`node dist/services/worker/main.js\` at defaults draining ${r.messages.toLocaleString('en-US')} messages`,
    '',
  );
  out.push(
    table(
      [
        'RSS at start MiB',
        `after ${r.checkpoint.toLocaleString('en-US')} MiB`,
        `after ${r.messages.toLocaleString('en-US')} MiB`,
        'peak MiB',
        'end / after first 10 %',
        'messages/s',
      ],
      [
        [
          mib(r.rssStartBytes),
          mib(r.rssCheckpointBytes),
          mib(r.rssEndBytes),
          mib(r.rssPeakBytes),
          ratio(r.growth),
          fmt(r.messagesPerSecond),
        ],
      ],
    ),
  );
  out.push(
    '',
    `${r.nodeOptions ? `NODE_OPTIONS=${r.nodeOptions}. ` : ''}RSS / V8 heap in use, MiB, every 10 %: ` +
      r.series
        .map(
          (p) => `${(p.stored / 1000).toFixed(p.stored < 10_000 ? 1 : 0)}k ${mib(p.rssBytes)}/${mib(p.heapUsedBytes)}`,
        )
        .join(', ') +
      '.',
  );
  return out;
}

/** The tracing part's lines. */
function tracingSection(result: BenchResult, t: NonNullable<BenchResult['tracing']>): string[] {
  const out: string[] = [];
  out.push(
    '',
    '### Tracing: off and on side by side (spans over OTLP/HTTP to a local receiver; medians of rounds)',
    '',
  );
  out.push(
    table(
      ['', 'off', 'on', 'on / off'],
      [
        [
          'web (coalescing on), req/s',
          fmt(t.web.offRequestsPerSecond),
          fmt(t.web.onRequestsPerSecond),
          ratio(t.web.onVsOff),
        ],
        ['web p99, ms', fmt(t.web.offP99Ms), fmt(t.web.onP99Ms), ''],
        [
          'worker (defaults), msg/s',
          fmt(t.worker.offMessagesPerSecond),
          fmt(t.worker.onMessagesPerSecond),
          ratio(t.worker.onVsOff),
        ],
      ],
    ),
  );
  out.push('', `Export requests received: ${t.receiver.requests} (${mib(t.receiver.bytes)} MiB).`);
  return out;
}

/** The targets part's lines. */
function targetsSection(result: BenchResult): string[] {
  const out: string[] = [];
  out.push('', '### Targets', '');
  out.push(
    table(
      ['target', 'measured', 'wanted', 'met'],
      result.targets.map((t) => [t.name, fmt(t.value, t.value < 10 ? 2 : 1), t.target, t.met ? 'yes' : 'no']),
    ),
  );
  return out;
}

export function renderTable(result: BenchResult): string {
  const s = result.settings;
  const m = result.machine;
  const out: string[] = [];
  out.push(
    `Benchmark: ${String(m.cpus)} CPUs (${String(m.cpuModel)}), ${String(m.memoryGiB)} GiB, Node ${String(m.node)}, commit ${String(m.commit)}; ` +
      `SQS round trip ${s.delayMs} ms; ${s.rounds} round(s); load average ${result.loadAverage.start.join(' ')} → ${result.loadAverage.end.join(' ')}; ${result.durationS} s.`,
  );

  if (result.web) out.push(...webSection(result, result.web));
  if (result.worker) out.push(...workerSection(result, result.worker));
  if (result.endToEnd) out.push(...endToEndSection(result, result.endToEnd));
  if (result.latency) out.push(...latencySection(result, result.latency));
  if (result.memory) out.push(...memorySection(result, result.memory));
  if (result.tracing) out.push(...tracingSection(result, result.tracing));
  if (result.targets.length > 0) out.push(...targetsSection(result));
  return out.join('\n');
}
