import { pathExists } from '@trainer/checkpoint';
import { join } from 'node:path';
import { loadCheckpointModel, loadHuggingFaceExport, loadModelDir, resolvePretrained, type SavedModel } from '@trainer/launcher';

/**
 * A saved model from a path that is a model folder, a run folder holding model/, a sharded
 * checkpoint (a checkpoint folder, a checkpoints folder, or a run folder with only checkpoints/),
 * or a Hugging Face folder (GPT-2 or Llama; model.safetensors or sharded; F32, BF16 or F16, read
 * as fp32). `tokenizerDir`: a Hugging Face folder whose tokenizer is its own files, not the
 * trainer's.
 */
export async function loadModelFrom(path: string): Promise<SavedModel & { dir: string; tokenizerDir?: string }> {
  const source = await resolvePretrained(path);
  if (source.kind === 'huggingface') return loadHuggingFaceExport(source.path);
  if (await exists(join(path, 'manifest.json'))) return loadCheckpointModel(path);
  const candidate = join(path, 'model');
  if (await exists(candidate)) return { ...(await loadModelDir(candidate)), dir: candidate };
  if (!(await exists(join(path, 'config.json'))) && ((await exists(join(path, 'latest'))) || (await exists(join(path, 'checkpoints'))))) {
    return loadCheckpointModel(path);
  }
  return { ...(await loadModelDir(path)), dir: path };
}

const exists = pathExists;
