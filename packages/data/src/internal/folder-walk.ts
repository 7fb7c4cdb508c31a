import type { Stats } from 'node:fs';
import { readdir, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Every file below `dir`, in sorted (code point) order so that documents come out in the same
 * order on every machine; hidden entries (starting with '.') are skipped, and a folder reached
 * again through a symlink is walked once. `onFile` gets each file (anything not a folder) with its
 * stat; `fsError(err, path)` turns a failed readdir/realpath/stat into the caller's error.
 */
export async function walkFolder(
  dir: string,
  onFile: (path: string, info: Stats) => void | Promise<void>,
  fsError: (err: unknown, path: string) => Error,
  visited = new Set<string>(),
): Promise<void> {
  let names: string[];
  try {
    const real = await realpath(dir);
    if (visited.has(real)) return; // a symlink loop
    visited.add(real);
    names = await readdir(dir);
  } catch (err) {
    throw fsError(err, dir);
  }
  names.sort();
  for (const name of names) {
    if (name.startsWith('.')) continue;
    const path = join(dir, name);
    let info: Stats;
    try {
      info = await stat(path);
    } catch (err) {
      throw fsError(err, path);
    }
    if (info.isDirectory()) await walkFolder(path, onFile, fsError, visited);
    else await onFile(path, info);
  }
}
