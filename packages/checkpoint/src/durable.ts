import { open, rename } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * Durability on POSIX file systems: a file's bytes reach the disk with fsync(file), its name
 * (a create or a rename) with fsync(directory). A commit point is a rename, made after both.
 */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } catch (err) {
    // Some file systems (and platforms) refuse fsync on a directory; the rename is still atomic.
    if ((err as { code?: string }).code !== 'EINVAL' && (err as { code?: string }).code !== 'EISDIR') throw err;
  } finally {
    await fh.close();
  }
}

/** Writes `data` to `path` atomically and durably: temporary name, fsync, rename, fsync(dir). */
export async function writeFileDurable(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  await fsyncDir(dirname(path));
}
