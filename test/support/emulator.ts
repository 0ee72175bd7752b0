/** The emulator as a mocha fixture: one per suite. */
import { startEmulator, type Emulator } from '../../harness/sqs.ts';

/**
 * Starts fauxqs before the tests of the calling suite and stops it after them.
 * Read `endpoint` inside hooks and tests (the emulator starts in `before`).
 */
export function useEmulator(): { readonly endpoint: string } {
  let emulator: Emulator | undefined;
  before(async () => {
    emulator = await startEmulator();
  });
  after(async () => {
    await emulator?.stop();
  });
  return {
    get endpoint() {
      if (!emulator) throw new Error("the emulator starts in the suite's before hook");
      return emulator.endpoint;
    },
  };
}
