/**
 * Entry point of `npm run export` and of the image's
 * `node dist/services/export/main.js --since …`.
 */
import { runMain } from '../common/entry-point.ts';
import { exportCommand } from './command.ts';
import { InterruptedError } from './errors.ts';
import type { OutputSink } from './output.ts';

runMain('export', async () => {
  const controller = new AbortController();
  let sink: OutputSink | undefined;
  // The first signal stops the export cleanly; a second one exits at once.
  const onSignal = (signal: NodeJS.Signals): void => {
    if (!controller.signal.aborted) {
      controller.abort(new InterruptedError(signal));
      return;
    }
    sink?.discardSync();
    process.exit(1);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // A reader that goes away (`| head`) fails the export's pipeline; later EPIPEs are ignored.
  process.stdout.on('error', () => undefined);
  try {
    return await exportCommand({
      argv: process.argv.slice(2),
      env: process.env,
      stdout: process.stdout,
      stderr: process.stderr,
      signal: controller.signal,
      onSink: (s) => {
        sink = s;
      },
    });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
});
