import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { HF_INDEX_FILE, HF_WEIGHTS_FILE } from './hf-folder.js';
import { SafetensorsStreamWriter, writeJsonAtomic, type TensorSpec } from './safetensors.js';
import { dtypeBytes } from './shard-file.js';

/**
 * Weights written the way transformers' save_pretrained writes them: one model.safetensors, or,
 * when they exceed the shard size (transformers' default 5GB = 5e9 bytes),
 *
 *   model-00001-of-0000N.safetensors ... and model.safetensors.index.json
 *   { "metadata": { "total_size": <data bytes> }, "weight_map": { "<tensor>": "<file>", ... } }
 *
 * (the index as json.dumps(indent=2, sort_keys=True) prints it). Tensors are split among shards
 * in order as huggingface_hub's split_state_dict_into_shards does: a tensor that would tip the
 * current shard over the limit starts the next one, a tensor larger than the limit gets a shard
 * of its own at once (before the shard being filled). Every file is written under a temporary name and renamed when complete; weight
 * files of an earlier save that the new one does not use are removed afterwards. The tensors'
 * bytes are asked for one at a time, in file order, and written as they come: the writer never holds
 * more than one tensor.
 */
export const HF_DEFAULT_MAX_SHARD_BYTES = 5e9;

export type HfWeightSpec = TensorSpec & { dtype: 'F32' | 'BF16' | 'F16' };

/** Data bytes of a tensor spec. */
function bytesOfSpec(t: HfWeightSpec): number {
  return t.shape.reduce((a, b) => a * b, 1) * dtypeBytes(t.dtype);
}

/** `model-00002-of-00005.safetensors` (1-based), or model.safetensors for a single file. */
export function hfShardFileName(index: number, count: number): string {
  if (count === 1) return HF_WEIGHTS_FILE;
  const pad = (n: number) => String(n).padStart(5, '0');
  return `model-${pad(index + 1)}-of-${pad(count)}.safetensors`;
}

/** The tensors' indices split into shards of at most `maxShardBytes` (an oversized tensor alone). */
export function planHfShards(specs: readonly HfWeightSpec[], maxShardBytes: number): number[][] {
  const shards: number[][] = [];
  let current: number[] = [];
  let currentBytes = 0;
  specs.forEach((t, i) => {
    const bytes = bytesOfSpec(t);
    if (bytes > maxShardBytes) {
      shards.push([i]);
      return;
    }
    if (current.length && currentBytes + bytes > maxShardBytes) {
      shards.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push(i);
    currentBytes += bytes;
  });
  if (current.length || !shards.length) shards.push(current);
  return shards;
}

export interface HfWeightsWritten {
  /** The weight files, in order (model.safetensors alone when unsharded). */
  files: string[];
  /** Data bytes of all tensors (the index's total_size). */
  totalSize: number;
}

/**
 * Writes `specs` into `dir` (which must exist); `dataOf(i)` gives tensor i's little-endian bytes
 * in its dtype and is called once per tensor, in file order (planHfShards').
 */
export async function writeHfWeights(
  dir: string, specs: readonly HfWeightSpec[], dataOf: (i: number) => Uint8Array | Promise<Uint8Array>,
  opts: { maxShardBytes?: number; metadata?: Record<string, string> } = {},
): Promise<HfWeightsWritten> {
  const plan = planHfShards(specs, opts.maxShardBytes ?? HF_DEFAULT_MAX_SHARD_BYTES);
  const files = plan.map((_, s) => hfShardFileName(s, plan.length));
  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  for (const [s, indices] of plan.entries()) {
    const w = await SafetensorsStreamWriter.open(join(dir, files[s]), indices.map((i) => specs[i]), opts.metadata ?? { format: 'pt' });
    try {
      for (const i of indices) {
        const data = await dataOf(i);
        if (data.byteLength !== bytesOfSpec(specs[i])) throw new RangeError(`writeHfWeights: ${specs[i].name}: ${data.byteLength} bytes, shape ${JSON.stringify(specs[i].shape)} ${specs[i].dtype} needs ${bytesOfSpec(specs[i])}`);
        await w.write(data);
        weightMap[specs[i].name] = files[s];
        totalSize += data.byteLength;
      }
      await w.close();
    } catch (err) {
      await w.abort();
      throw err;
    }
  }
  if (plan.length > 1) {
    const sorted = Object.fromEntries(Object.keys(weightMap).sort().map((k) => [k, weightMap[k]]));
    await writeJsonAtomic(join(dir, HF_INDEX_FILE), { metadata: { total_size: totalSize }, weight_map: sorted });
  }
  await removeStaleWeights(dir, new Set(plan.length > 1 ? [...files, HF_INDEX_FILE] : files));
  return { files, totalSize };
}

/** Weight files of an earlier save (model.safetensors, model-*-of-*.safetensors, the index) not in `keep`. */
async function removeStaleWeights(dir: string, keep: ReadonlySet<string>): Promise<void> {
  const weights = /^(model\.safetensors|model-\d{5}-of-\d{5}\.safetensors|model\.safetensors\.index\.json)$/;
  for (const name of await readdir(dir)) {
    if (weights.test(name) && !keep.has(name)) await rm(join(dir, name), { force: true });
  }
}
