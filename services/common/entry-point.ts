/**
 * Runs an entry point: a ConfigError becomes one line on stderr and exit code
 * 2; any other failure is logged and exits 1.
 */
import { ConfigError, errorSummary } from './errors.ts';

/** Runs `fn`; the process exits with its result, or as above on failure. */
export function runMain(name: string, fn: () => Promise<number | undefined>): void {
  fn().then(
    (code) => {
      if (code !== undefined) process.exitCode = code;
    },
    (error: unknown) => {
      if (error instanceof ConfigError) {
        process.stderr.write(`${name}: ${error.message}\n`);
        process.exit(2);
      }
      process.stderr.write(
        `${JSON.stringify({ level: 60, service: name, msg: 'start-up failed', err: errorSummary(error) })}\n`,
      );
      process.exit(1);
    },
  );
}
