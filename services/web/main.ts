/** Entry point of the web container: `node dist/services/web/main.js`. */
import { loadConfig } from '../common/config.ts';
import { runMain } from '../common/entry-point.ts';
import { createWebService } from './service.ts';

runMain('web', async () => {
  const service = await createWebService(loadConfig(), { handleSignals: true });
  await service.listen();
  return undefined;
});
