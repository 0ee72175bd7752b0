/**
 * The SQS emulator (fauxqs) as a process of its own, so that workers can be
 * killed without taking the queue with them.
 *
 * `node harness/emulator.ts` listens on FAUXQS_PORT (0: any free port) and logs
 * one JSON line `{"msg":"emulator listening","ready":true,"port":N,"url":…,"pid":…}`
 * (the chaos run and the benchmark start it). (The `fauxqs` CLI
 * always logs every request, whatever FAUXQS_LOGGER says; this entry point
 * turns the logger off.) SIGTERM/SIGINT close it.
 */
import { startFauxqs } from 'fauxqs';

const port = Number(process.env.FAUXQS_PORT ?? '0');
const server = await startFauxqs({ port, logger: false });
const url = `http://127.0.0.1:${server.port}`;
process.stdout.write(
  `${JSON.stringify({ msg: 'emulator listening', ready: true, port: server.port, url, pid: process.pid })}\n`,
);

const stop = (): void => {
  server.stop().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
