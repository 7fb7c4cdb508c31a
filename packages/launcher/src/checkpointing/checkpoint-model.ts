import { CheckpointReader, checkpointError, CheckpointErrorCode, checkTensorsMatch, readFlatRange, verifyCheckpoint } from '@trainer/checkpoint';
import { paramLayout, type GPTConfig } from '@trainer/model';
import { join } from 'node:path';
import { ModelConfigSchema } from '../job-spec.js';
import type { SavedModel } from '../model-files.js';

/**
 * The model in a checkpoint of any layout (any worker count, ZeRO stage), as `trainer export`,
 * `eval` and `generate` use a model folder: the parameters assembled from every shard (optimizer
 * state is not read), the config and the tokenizer copied into the checkpoint. The checkpoint is
 * verified first: a model is never exported from a corrupt one.
 */
export async function loadCheckpointModel(path: string): Promise<SavedModel & { dir: string }> {
  return withModelCheckpoint(path, async (reader, config) => {
    const m = reader.manifest;
    if (m.tensors.some((t) => /\.lora_[AB]\.weight$/.test(t.name))) {
      throw checkpointError(CheckpointErrorCode.CONFIG_MISMATCH, `${reader.dir} is a LoRA run's checkpoint: it holds the adapters only, not a model`, {
        file: join(reader.dir, 'manifest.json'), hint: 'export the run folder (its adapter/ and, with --merge, its merged model/), or resume the fine-tune from the checkpoint with its --from and --lora-* options',
      });
    }
    const layout = paramLayout(config);
    const tensors = layout.entries.map((e) => ({ name: e.name, shape: e.shape, offset: e.offset }));
    checkTensorsMatch(reader, tensors);
    const params = await readFlatRange(reader, tensors, 'params', 0, layout.totalSize);
    return {
      dir: reader.dir, modelName: m.model.name, config, params, tokenizerJson: await reader.readTokenizer(),
      info: { steps: m.step, seed: m.rng.sampler.seed, checkpoint: reader.dir },
    };
  });
}

/** A checkpoint's model config and tokenizer, verified, without reading its parameters (fine-tuning's workers read their ranges). */
export async function describeCheckpointModel(path: string): Promise<{ dir: string; modelName: string; config: GPTConfig; tokenizerJson?: string }> {
  return withModelCheckpoint(path, async (reader, config) => ({ dir: reader.dir, modelName: reader.manifest.model.name, config, tokenizerJson: await reader.readTokenizer() }));
}

async function withModelCheckpoint<T>(path: string, use: (reader: CheckpointReader, config: GPTConfig) => Promise<T>): Promise<T> {
  const report = await verifyCheckpoint(path);
  if (report.problems.length) throw report.problems[0];
  const reader = await CheckpointReader.open(report.dir);
  try {
    const config = ModelConfigSchema.safeParse(reader.manifest.model.config);
    if (!config.success) throw checkpointError(CheckpointErrorCode.FORMAT, `${reader.dir}/manifest.json has an invalid model config: ${config.error.issues[0].message}`, { file: `${reader.dir}/manifest.json` });
    return await use(reader, config.data);
  } finally {
    await reader.close();
  }
}
