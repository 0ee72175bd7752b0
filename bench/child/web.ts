/**
 * Child process: the web service under load. argv[2] is the mode:
 *   batching — SendMessageBatch coalescing (SQS_SEND_BATCHING=true)
 *   direct   — one SendMessage per form (SQS_SEND_BATCHING=false)
 *   noop     — the same server with the SQS send replaced by a no-op (the HTTP ceiling)
 * The rest of the configuration comes from the environment. Prints `{"ready":true,"port":...}`.
 */
import { randomUUID } from 'node:crypto';
import { loadConfig } from '../../services/common/config.ts';
import { createWebService } from '../../services/web/service.ts';
import type { FormSender } from '../../services/web/sender.ts';

const mode = process.argv[2] ?? 'batching';
if (!['batching', 'direct', 'noop'].includes(mode)) throw new Error(`unknown mode ${mode}`);
const config = loadConfig({ ...process.env, SQS_SEND_BATCHING: mode === 'direct' ? 'false' : 'true' });
const noop: FormSender = { send: async () => randomUUID(), close: async () => undefined };
const web = await createWebService(config, mode === 'noop' ? { sender: noop } : {});
const port = await web.listen();
process.stdout.write(`${JSON.stringify({ ready: true, port, mode })}\n`);
process.on('SIGTERM', () => {
  void web.stop().finally(() => process.exit(0));
});
