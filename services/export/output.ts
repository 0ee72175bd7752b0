/**
 * Where the CSV goes: standard output, or a file written under a temporary
 * name in the same directory and renamed when complete, so a failed export
 * never leaves a file that looks complete.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { open, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { finished } from 'node:stream/promises';
import type { Writable } from 'node:stream';
import { OutputError } from './errors.ts';

/** A destination of the CSV. */
export interface OutputSink {
  /** Where the CSV bytes are written; the export ends it. */
  readonly stream: Writable;
  /** Names the destination in messages. */
  readonly description: string;
  /** Makes the written CSV visible under its name (after the stream has ended). */
  commit(): Promise<void>;
  /** Drops what was written (the temporary file); safe to call more than once. */
  discard(): Promise<void>;
  /** As discard, synchronously (for a process about to exit). */
  discardSync(): void;
}

/** Standard output: nothing to commit or drop. */
export function stdoutSink(stdout: Writable): OutputSink {
  return {
    stream: stdout,
    description: 'standard output',
    commit: async () => undefined,
    discard: async () => undefined,
    discardSync: () => undefined,
  };
}

/** Mode of the written file: forms hold personal data. */
const FILE_MODE = 0o600;

/**
 * Opens a temporary file beside `target` (`.<name>.<random>.partial`), created
 * exclusively with mode 0600 and synced to disk before the rename.
 * @throws OutputError when the directory is missing or not writable, or `target` is a directory
 */
export async function openFileSink(target: string): Promise<OutputSink> {
  const existing = await stat(target).catch(() => undefined);
  if (existing && !existing.isFile()) throw new OutputError(target, new Error('it exists and is not a regular file'));
  const temporary = path.join(
    path.dirname(target),
    `.${path.basename(target)}.${randomBytes(4).toString('hex')}.partial`,
  );
  let handle;
  try {
    handle = await open(temporary, 'wx', FILE_MODE);
  } catch (error) {
    throw new OutputError(target, error);
  }
  const stream = handle.createWriteStream({ flush: true });
  let state: 'open' | 'committed' | 'discarded' = 'open';
  const closed = async (): Promise<void> => {
    if (!stream.closed) await once(stream, 'close').catch(() => undefined);
  };
  const sink: OutputSink = {
    stream,
    description: target,
    async commit() {
      if (state !== 'open') throw new Error(`output ${target} already ${state}`);
      await finished(stream).catch((error: unknown) => {
        throw new OutputError(target, error);
      });
      await closed();
      try {
        await rename(temporary, target);
        state = 'committed';
      } catch (error) {
        await sink.discard();
        throw new OutputError(target, error);
      }
    },
    async discard() {
      if (state !== 'open') return;
      state = 'discarded';
      if (!stream.destroyed) stream.destroy();
      await closed();
      await rm(temporary, { force: true });
    },
    discardSync() {
      if (state !== 'open') return;
      state = 'discarded';
      rmSync(temporary, { force: true });
    },
  };
  return sink;
}
