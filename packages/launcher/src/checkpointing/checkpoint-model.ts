import { CheckpointReader, checkpointError, CheckpointErrorCode, checkTensorsMatch, readFlatRange, verifyCheckpoint } from '@trainer/checkpoint';
import { paramLayout } from '@trainer/model';
import { ModelConfigSchema } from '../job-spec.js';
import type { SavedModel } from '../model-files.js';

/**
 * The model in a checkpoint of any layout (any worker count, ZeRO stage), as `trainer export`,
 * `eval` and `generate` use a model folder: the parameters assembled from every shard (optimizer
 * state is not read), the config and the tokenizer copied into the checkpoint. The checkpoint is
 * verified first: a model is never exported from a corrupt one.
 */
export async function loadCheckpointModel(path: string): Promise<SavedModel & { dir: string }> {
  const report = await verifyCheckpoint(path);
  if (report.problems.length) throw report.problems[0];
  const reader = await CheckpointReader.open(report.dir);
  try {
    const m = reader.manifest;
    const config = ModelConfigSchema.safeParse(m.model.config);
    if (!config.success) throw checkpointError(CheckpointErrorCode.FORMAT, `${reader.dir}/manifest.json has an invalid model config: ${config.error.issues[0].message}`, { file: `${reader.dir}/manifest.json` });
    const layout = paramLayout(config.data);
    const tensors = layout.entries.map((e) => ({ name: e.name, shape: e.shape, offset: e.offset }));
    checkTensorsMatch(reader, tensors);
    const params = await readFlatRange(reader, tensors, 'params', 0, layout.totalSize);
    return {
      dir: reader.dir, modelName: m.model.name, config: config.data, params, tokenizerJson: await reader.readTokenizer(),
      info: { steps: m.step, seed: m.rng.sampler.seed, checkpoint: reader.dir },
    };
  } finally {
    await reader.close();
  }
}
