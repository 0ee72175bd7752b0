/**
 * The least-privilege IAM policies of docs/iam/*.json (docs/security.md)
 * against the SQS calls each service makes: statically, every SQS command in
 * the sources each service's entry point imports maps to an action of its
 * policy and every action is used (calls marked `// IAM: local only`, made
 * only with SQS_CREATE_QUEUES, excepted); dynamically, the real web and worker run
 * against fauxqs through a recording HTTP proxy, and every call they make
 * (action and queue) is allowed by their own policy, and not by the other's.
 */
import { expect } from 'chai';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { readFile } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createWebService, type WebService } from '../services/web/service.ts';
import { createWorkerService, type WorkerService } from '../services/worker/service.ts';
import { jsonBody, post } from '../harness/http.ts';
import { validForm } from '../harness/forms.ts';
import { useEmulator } from './support/emulator.ts';
import { createTestEnv, eventually, type TestEnv } from './support/stack.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** Queue names the policies are written for (the code's defaults). */
const POLICY_QUEUES = { form: 'directory-form-data', invalid: 'directory-form-data-invalid' };
/** IAM authorises a batch call with the action of a single one. */
const ACTION_OF: Record<string, string> = {
  SendMessageBatch: 'SendMessage',
  DeleteMessageBatch: 'DeleteMessage',
  ChangeMessageVisibilityBatch: 'ChangeMessageVisibility',
};
/** Called only with SQS_CREATE_QUEUES (local use), so in no production policy; marked `// IAM: local only` where sent. */
const LOCAL_ONLY = new Set(['CreateQueue']);

interface Statement {
  Effect: string;
  Action: string[];
  Resource: string;
}

async function policy(component: 'web' | 'worker'): Promise<Statement[]> {
  const text = await readFile(path.join(ROOT, 'docs/iam', `${component}.json`), 'utf8');
  return (JSON.parse(text) as { Statement: Statement[] }).Statement;
}

/** Whether `statements` allow `action` (sqs:X) on the queue `name`. */
function allows(statements: Statement[], action: string, name: string): boolean {
  return statements.some(
    (s) => s.Effect === 'Allow' && s.Action.includes(action) && s.Resource.split(':').at(-1) === name,
  );
}

/** Relative .ts imports reachable from `entry`, entry included. */
async function importGraph(entry: string): Promise<string[]> {
  const seen = new Set<string>();
  const queue = [path.join(ROOT, entry)];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const text = await readFile(file, 'utf8');
    for (const m of text.matchAll(/from '(\.{1,2}\/[^']+\.ts)'/g)) queue.push(path.resolve(path.dirname(file), m[1]!));
  }
  return [...seen];
}

/** The IAM actions of the SQS commands constructed in the sources `entry` imports. */
async function staticActions(entry: string): Promise<Set<string>> {
  const actions = new Set<string>();
  for (const file of await importGraph(entry)) {
    const text = await readFile(file, 'utf8');
    if (!text.includes("from '@aws-sdk/client-sqs'")) continue;
    const lines = text.split('\n');
    for (const [i, line] of lines.entries()) {
      for (const m of line.matchAll(/new (\w+)Command\(/g)) {
        // A call marked `// IAM: local only` on the line above is made only with SQS_CREATE_QUEUES.
        if (/\/\/ IAM: local only/.test(lines[i - 1] ?? '')) {
          expect(LOCAL_ONLY.has(m[1]!) || m[1] === 'GetQueueAttributes', `${file}:${i + 1}`).to.equal(true);
          continue;
        }
        actions.add(`sqs:${ACTION_OF[m[1]!] ?? m[1]!}`);
      }
    }
  }
  return actions;
}

/** An HTTP proxy to the emulator recording each call's action (X-Amz-Target) and queue. */
async function recordingProxy(target: string): Promise<{ server: Server; url: string; calls: [string, string][] }> {
  const upstream = new URL(target);
  const calls: [string, string][] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const action = String(req.headers['x-amz-target'] ?? '').replace(/^AmazonSQS\./, '');
      let queue: string;
      try {
        const fields = JSON.parse(body.toString('utf8')) as { QueueUrl?: string; QueueName?: string };
        queue = fields.QueueName ?? fields.QueueUrl?.split('/').at(-1) ?? '';
      } catch {
        queue = '';
      }
      calls.push([action, queue]);
      const out = request(
        { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      out.on('error', () => res.destroy());
      out.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, calls };
}

describe('IAM policies per component (docs/iam/*.json)', function () {
  this.timeout(60_000);

  it('name exactly the SQS actions of the commands each service sends (CreateQueue only locally)', async () => {
    for (const [component, entry] of [
      ['web', 'services/web/main.ts'],
      ['worker', 'services/worker/main.ts'],
    ] as const) {
      const used = await staticActions(entry);
      const granted = new Set((await policy(component)).flatMap((s) => s.Action));
      expect([...granted].sort(), component).to.deep.equal([...used].sort());
    }
  });

  describe('against the calls the running services make', () => {
    const emulator = useEmulator();
    let t: TestEnv;
    let proxy: Awaited<ReturnType<typeof recordingProxy>>;
    let web: WebService | undefined;
    let worker: WorkerService | undefined;

    before(async () => {
      t = await createTestEnv(emulator.endpoint);
      proxy = await recordingProxy(emulator.endpoint);
    });
    after(async () => {
      await worker?.stop();
      await web?.stop();
      await new Promise((resolve) => proxy?.server.close(resolve));
      await t?.cleanup();
    });

    /** The recorded calls since `from`, with the test's queue names mapped to the policies'. */
    const callsSince = (from: number): [string, string][] =>
      proxy.calls
        .slice(from)
        .map(([action, queue]) => [
          `sqs:${ACTION_OF[action] ?? action}`,
          queue === t.formQueue ? POLICY_QUEUES.form : queue === t.invalidQueue ? POLICY_QUEUES.invalid : queue,
        ]);

    it('the web only calls what its policy allows, which the worker policy could not replace', async () => {
      const from = proxy.calls.length;
      web = await createWebService(t.with({ SQS_ENDPOINT_URL: proxy.url, SQS_CREATE_QUEUES: 'false' }));
      const base = `http://127.0.0.1:${await web.listen()}`;
      expect((await post(base, '/form/', jsonBody(validForm()))).status).to.equal(202);
      const calls = callsSince(from);
      expect(calls.map(([a]) => a)).to.include('sqs:SendMessage');
      const statements = await policy('web');
      for (const [action, queue] of calls)
        expect(allows(statements, action, queue), `${action} on ${queue}`).to.equal(true);
      expect(allows(statements, 'sqs:ReceiveMessage', POLICY_QUEUES.form), 'the web cannot read forms').to.equal(false);
      expect(allows(statements, 'sqs:DeleteMessage', POLICY_QUEUES.form)).to.equal(false);
    });

    it('the worker only calls what its policy allows, and cannot send to its own input queue', async () => {
      const from = proxy.calls.length;
      const { form } = await t.queueUrls();
      await t.sqs.send(new SendMessageCommand({ QueueUrl: form, MessageBody: 'not json' }));
      worker = await createWorkerService(
        t.with({ SQS_ENDPOINT_URL: proxy.url, SQS_CREATE_QUEUES: 'false', QUEUE_METRICS_INTERVAL_SECONDS: '1' }),
      );
      await worker.start();
      await eventually(async () => ((await t.db('form_form').count({ n: '*' }))[0]!.n === '1' ? true : undefined));
      await eventually(async () => {
        const actions = callsSince(from).map(([a]) => a);
        return ['sqs:SendMessage', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes'].every((a) => actions.includes(a))
          ? true
          : undefined;
      });
      const calls = callsSince(from);
      const statements = await policy('worker');
      for (const [action, queue] of calls)
        expect(allows(statements, action, queue), `${action} on ${queue}`).to.equal(true);
      expect(allows(statements, 'sqs:SendMessage', POLICY_QUEUES.form), 'the worker cannot feed itself').to.equal(
        false,
      );
    });
  });
});
