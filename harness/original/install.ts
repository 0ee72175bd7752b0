/**
 * `npm run original:install`: creates the original's virtualenv in the tool
 * cache if it is not there yet (.ci/run runs it; the tests also do on first use).
 */
import { ensureOriginalPython } from './original.ts';

const py = await ensureOriginalPython({ log: (line) => console.log(line) });
console.log(`the original's Python is ready: ${py.python}`);
