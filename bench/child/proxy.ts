/**
 * Child process: the delaying, counting proxy (bench/proxy.ts) in front of the
 * emulator. Env: PROXY_TARGET (emulator URL), PROXY_DELAY_MS, PROXY_PORT.
 * Prints `{"ready":true,"url":...}`.
 */
import { startDelayProxy } from '../proxy.ts';

const target = process.env.PROXY_TARGET;
if (!target) throw new Error('PROXY_TARGET is required');
const proxy = await startDelayProxy(
  target,
  Number(process.env.PROXY_DELAY_MS ?? 15),
  Number(process.env.PROXY_PORT ?? 0),
);
process.stdout.write(`${JSON.stringify({ ready: true, url: proxy.url })}\n`);
process.on('SIGTERM', () => {
  void proxy.close().finally(() => process.exit(0));
});
