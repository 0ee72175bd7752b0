/**
 * Child process: the SQS emulator (fauxqs) on its own event loop, so that it
 * does not share a core's worth of time with the worker under test.
 * Env: FAUXQS_PORT (0: any free port). Prints `{"ready":true,"url":...}`.
 */
import { startFauxqs } from 'fauxqs';

const server = await startFauxqs({ port: Number(process.env.FAUXQS_PORT ?? 0), logger: false });
process.stdout.write(`${JSON.stringify({ ready: true, url: `http://127.0.0.1:${server.port}` })}\n`);
process.on('SIGTERM', () => {
  void server.stop().finally(() => process.exit(0));
});
