import { CheckpointReader, checkTensorsMatch, HfModelFolder, readFlatRange, regionSize, verifyCheckpoint, type FlatTensor } from '@trainer/checkpoint';
import { TrainerError } from '@trainer/errors';
import type { GPTConfig } from '@trainer/model';
import { readModelDirConfig } from '../model-files.js';
import { hfTensorsIn, readHfConfig, type PretrainedSource } from './pretrained.js';

/**
 * A pretrained model's parameters read by ranges of one rank's flat vector (its tensor-parallel
 * shard of its pipeline stage, `tensors` as checkpoint-tensors.ts lays them out), never the
 * whole model: a checkpoint through its reader (any layout, as resume reads it); a model folder
 * or a Hugging Face folder (one model.safetensors or an index of shards, F32/BF16/F16) through
 * HfModelFolder, which opens only the shards holding the rank's tensors and reads only the
 * bytes of its regions, Llama's [out, in] linears transposed to the trainer's [in, out] as they
 * arrive.
 */
export interface PretrainedRanges {
  read(start: number, end: number): Promise<Float32Array>;
  close(): Promise<void>;
}

/** A tensor of the rank's vector as its folder stores it. */
interface StoredTensor {
  tensor: FlatTensor;
  /** Its name in the folder. */
  stored: string;
  /** Stored as [shape[1], shape[0]] (Hugging Face Llama's nn.Linear weights). */
  transposed: boolean;
}

/** JSON with object keys sorted: configs compare equal whatever order their keys were built in. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : 1))) : x));
}

export async function openPretrainedRanges(src: PretrainedSource, config: GPTConfig, tensors: readonly FlatTensor[]): Promise<PretrainedRanges> {
  const same = (c: unknown, where: string) => {
    if (canonical(c) !== canonical(config)) {
      throw new TrainerError('TRAINER_ERR_MODEL_FORMAT', `the model at ${where} changed since the job was prepared (config ${JSON.stringify(c)})`, { hint: 'start the fine-tuning again' });
    }
  };
  if (src.kind === 'checkpoint') {
    const report = await verifyCheckpoint(src.path);
    if (report.problems.length) throw report.problems[0];
    const reader = await CheckpointReader.open(report.dir);
    try {
      same(reader.manifest.model.config, reader.dir);
      checkTensorsMatch(reader, tensors);
    } catch (err) {
      await reader.close();
      throw err;
    }
    return { read: (start, end) => readFlatRange(reader, tensors, 'params', start, end), close: () => reader.close() };
  }
  same(src.kind === 'model' ? (await readModelDirConfig(src.path)).config : (await readHfConfig(src.path)).config, src.path);
  const folder = await HfModelFolder.open(src.path);
  let stored: StoredTensor[];
  try {
    // A trainer model folder stores every tensor under its own name, in the trainer's orientation.
    const hf = src.kind === 'huggingface' ? hfTensorsIn(folder, config) : undefined;
    stored = tensors.map((tensor) => {
      const t = hf?.get(tensor.name);
      if (hf && !t) throw new Error(`internal: ${tensor.name} is not a tensor of the model`);
      return { tensor, stored: t?.hfName ?? tensor.name, transposed: t?.transposed ?? false };
    });
    for (const s of stored) await folder.check(s.stored, s.transposed ? [s.tensor.shape[1], s.tensor.shape[0]] : s.tensor.shape);
  } catch (err) {
    await folder.close();
    throw err;
  }
  return {
    read: async (start, end) => {
      const out = new Float32Array(end - start);
      for (const { tensor: t, stored: name, transposed } of stored) {
        const s = Math.max(start, t.offset);
        const e = Math.min(end, t.offset + regionSize(t.shape, t.region));
        if (e <= s) continue;
        out.set(await folder.readRegion(name, t.shape, t.region, s - t.offset, e - t.offset, transposed), s - start);
      }
      return out;
    },
    close: () => folder.close(),
  };
}
