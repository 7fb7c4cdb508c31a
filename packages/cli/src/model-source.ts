import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { loadModelDir, type SavedModel } from '@trainer/launcher';

/** A saved model from a path that is either a model folder or a run folder holding model/. */
export async function loadModelFrom(path: string): Promise<SavedModel & { dir: string }> {
  const candidate = join(path, 'model');
  const dir = (await isDir(candidate)) ? candidate : path;
  return { ...(await loadModelDir(dir)), dir };
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}
