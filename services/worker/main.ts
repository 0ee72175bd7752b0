/** Entry point of the worker container: `node dist/services/worker/main.js`. */
import { loadConfig } from '../common/config.ts';
import { runMain } from '../common/entry-point.ts';
import { createWorkerService } from './service.ts';

runMain('worker', async () => {
  const service = await createWorkerService(loadConfig(), { handleSignals: true });
  // terminus drains on the first SIGTERM/SIGINT; a second one exits at once.
  let signals = 0;
  const force = (signal: NodeJS.Signals): void => {
    signals += 1;
    if (signals < 2) return;
    service.logger.warn(
      { signal },
      'second signal: exiting without draining; messages in flight return after their visibility timeout',
    );
    process.exit(1);
  };
  process.on('SIGTERM', force);
  process.on('SIGINT', force);
  await service.start();
  return undefined;
});
