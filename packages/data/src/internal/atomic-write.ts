import { mkdir, open, rename, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import { TrainerError } from '@trainer/errors';
import { DataErrorCode } from '../codes.js';

/**
 * Writes `chunks` to `path` atomically: to a temp file beside it, fsync, then rename. Readers
 * (other workers sharing a cache directory) see either no file or the whole file, never a
 * half-written one. Two writers racing on the same path both succeed; the last rename wins.
 * Creates the parent folder. File system errors become TRAINER_ERR_DATA_WRITE naming the path.
 */
export async function writeFileAtomic(path: string, chunks: readonly Uint8Array[]): Promise<void> {
  try {
    await mkdir(dirname(path), { recursive: true });
    await writeThenRename(path, chunks);
  } catch (err) {
    throw new TrainerError(DataErrorCode.DATA_WRITE, `cannot write ${path}: ${(err as Error).message}`, {
      hint: 'check that the folder is writable and the disk is not full (or choose another cache/output path)',
      cause: err,
      details: { path, errno: (err as NodeJS.ErrnoException).code },
    });
  }
}

async function writeThenRename(path: string, chunks: readonly Uint8Array[]): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const handle = await open(tmp, 'w');
  try {
    for (const chunk of chunks) {
      let written = 0;
      while (written < chunk.byteLength) {
        const { bytesWritten } = await handle.write(chunk, written, chunk.byteLength - written);
        written += bytesWritten;
      }
    }
    await handle.sync();
  } catch (err) {
    await handle.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
