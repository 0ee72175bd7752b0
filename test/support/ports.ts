/** Ephemeral ports for the tests (the same helper `npm start` uses). */
export { freePort } from '../../scripts/ports.ts';
