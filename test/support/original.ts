/** The original v1.0.4 as a mocha fixture: its virtualenv made ready before the suite, or the suite skipped outside CI. */
import { ensureOriginalPython, OriginalUnavailable, type OriginalPython } from '../../harness/original/original.ts';

/**
 * Makes the original's Python ready in `before` (creating the virtualenv on
 * first use). Where it cannot run, the suite is skipped with one line, except
 * under CI, where that fails.
 */
export function useOriginal(): { readonly python: OriginalPython } {
  let python: OriginalPython | undefined;
  before(async function () {
    this.timeout(600_000);
    try {
      python = await ensureOriginalPython();
    } catch (error) {
      if (!(error instanceof OriginalUnavailable) || process.env.CI) throw error;
      console.log(`      (skipped: the original v1.0.4 cannot run here: ${error.message.split('\n')[0]})`);
      this.skip();
    }
  });
  return {
    get python() {
      if (!python) throw new Error("the original's Python is made ready in the suite's before hook");
      return python;
    },
  };
}
