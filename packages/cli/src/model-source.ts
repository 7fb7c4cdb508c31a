import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { loadCheckpointModel, loadHuggingFaceExport, loadModelDir, resolvePretrained, type SavedModel } from '@trainer/launcher';

/**
 * A saved model from a path that is a model folder, a run folder holding model/, or a sharded
 * checkpoint (a checkpoint folder, a checkpoints folder, or a run folder with only checkpoints/).
 */
export async function loadModelFrom(path: string): Promise<SavedModel & { dir: string }> {
  const source = await resolvePretrained(path); // a `trainer export` folder too
  if (source.kind === 'huggingface') return loadHuggingFaceExport(source.path);
  if (await exists(join(path, 'manifest.json'))) return loadCheckpointModel(path);
  const candidate = join(path, 'model');
  if (await exists(candidate)) return { ...(await loadModelDir(candidate)), dir: candidate };
  if (!(await exists(join(path, 'config.json'))) && ((await exists(join(path, 'latest'))) || (await exists(join(path, 'checkpoints'))))) {
    return loadCheckpointModel(path);
  }
  return { ...(await loadModelDir(path)), dir: path };
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}
