/**
 * The export command: arguments and environment in, an exit code out. Every
 * failure is one line on stderr.
 */
import { constants } from 'node:os';
import type { Writable } from 'node:stream';
import { loadConfig, type Env } from '../common/config.ts';
import { ConfigError, DatabaseError } from '../common/errors.ts';
import { HELP, parseExportArguments, USAGE, type ParsedCommand } from './arguments.ts';
import { InterruptedError, OutputError, UsageError } from './errors.ts';
import { openFileSink, stdoutSink, type OutputSink } from './output.ts';
import { formatSkipped, formatSummary } from './progress.ts';
import { createExportDatabase } from './repository.ts';
import { runExport } from './run.ts';

/** A stream that may be a terminal. */
export type TerminalStream = Writable & { isTTY?: boolean };

/** What the command reads and writes. */
export interface CommandIo {
  /** Arguments after the script name. */
  argv: readonly string[];
  /** Environment read through loadConfig. */
  env: Env;
  /** Receives the CSV unless --output is given, and --help. */
  stdout: TerminalStream;
  /** Receives progress, the summary and errors. */
  stderr: TerminalStream;
  /** Aborts the export; an InterruptedError reason gives exit code 128 + signal number. */
  signal?: AbortSignal;
  /** Called once the output is open, so a process that must exit at once can drop a temporary file. */
  onSink?: (sink: OutputSink) => void;
  /** Passed to runExport (tests). */
  afterKeyPass?: () => Promise<void>;
}

/** Exit code of a pipe closed by its reader (128 + SIGPIPE), as for programs killed by SIGPIPE. */
export const EXIT_PIPE_CLOSED = 128 + constants.signals.SIGPIPE;

/** Runs the command; resolves with the exit code. */
export async function exportCommand(io: CommandIo): Promise<number> {
  const fail = (line: string, code: number): number => {
    io.stderr.write(`export: ${line}\n`);
    return code;
  };
  let command: ParsedCommand;
  try {
    command = parseExportArguments(io.argv);
  } catch (error) {
    if (error instanceof UsageError) return fail(`${error.message}; ${USAGE}`, 2);
    throw error;
  }
  if (command.kind === 'help') {
    io.stdout.write(`${HELP}\n`);
    return 0;
  }
  const args = command.args;
  let config;
  try {
    config = loadConfig(io.env);
  } catch (error) {
    if (error instanceof ConfigError) return fail(error.message, 2);
    throw error;
  }

  let sink: OutputSink;
  try {
    sink = args.output === undefined ? stdoutSink(io.stdout) : await openFileSink(args.output);
  } catch (error) {
    if (error instanceof OutputError) return fail(error.message, 1);
    throw error;
  }
  io.onSink?.(sink);
  const nothingWritten = args.output === undefined ? '' : `; nothing was written to ${args.output}`;
  const db = createExportDatabase(config.database);
  try {
    const summary = await runExport(args, {
      db,
      output: sink.stream,
      outputName: sink.description,
      stderr: io.stderr,
      progress: io.stderr.isTTY === true && (args.output !== undefined || io.stdout.isTTY !== true),
      ...(io.signal ? { signal: io.signal } : {}),
      ...(io.afterKeyPass ? { afterKeyPass: io.afterKeyPass } : {}),
    });
    await sink.commit();
    io.stderr.write(formatSkipped(summary) + formatSummary(summary, sink.description));
    return 0;
  } catch (error) {
    await sink.discard();
    if (error instanceof InterruptedError)
      return fail(`${error.message}${nothingWritten}`, 128 + constants.signals[error.signal]);
    if (error instanceof OutputError && error.closedEarly)
      return fail('standard output was closed before the export finished (EPIPE)', EXIT_PIPE_CLOSED);
    if (error instanceof DatabaseError || error instanceof OutputError)
      return fail(`${error.message}${nothingWritten}`, 1);
    return fail(
      `failed: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}${nothingWritten}`,
      1,
    );
  } finally {
    await db.destroy();
  }
}
