import { readdir, readFile, stat } from 'node:fs/promises';
import { exists as pathExists } from './checkpoint-paths.js';
import { join } from 'node:path';
import { HfErrorCode, hfError } from './hf-errors.js';
import { planRegionRead } from './hf-region.js';
import { HfShardFile, type HfShardEntry } from './hf-shard.js';
import type { Region } from './region.js';

/**
 * The weights of a Hugging Face model folder, as transformers' save_pretrained leaves them:
 *
 *   model.safetensors                       every tensor in one file, or
 *   model.safetensors.index.json            { "metadata": { "total_size": bytes },
 *   model-00001-of-0000N.safetensors ...      "weight_map": { "<tensor>": "<file>", ... } }
 *
 * (model.safetensors wins when both are there, as in transformers.) Only headers are read when a
 * file is opened, and a shard is opened the first time a tensor in it is asked for: a rank that
 * owns two blocks of a sharded model touches only the shards that hold them. Tensors are read by
 * regions in the trainer's orientation (hf-region.ts), fp32 whatever the stored float dtype.
 * Names are the file's own; mapping them to the model's is the caller's (the model package's
 * hf-names.ts).
 */
export const HF_WEIGHTS_FILE = 'model.safetensors';
export const HF_INDEX_FILE = 'model.safetensors.index.json';


/** The index's weight_map, checked: every value a plain file name in the folder. */
async function readWeightMap(dir: string): Promise<Map<string, string>> {
  const path = join(dir, HF_INDEX_FILE);
  let index: unknown;
  try {
    index = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw hfError(HfErrorCode.INDEX, `${path} is not readable JSON`, { cause: err, file: path });
  }
  const map = (index as { weight_map?: unknown } | null)?.weight_map;
  if (!map || typeof map !== 'object' || Array.isArray(map)) throw hfError(HfErrorCode.INDEX, `${path} has no "weight_map" object`, { file: path });
  const weightMap = new Map<string, string>();
  for (const [tensor, file] of Object.entries(map as Record<string, unknown>)) {
    // A plain name: an index must not send the reader outside the folder.
    if (typeof file !== 'string' || !file.endsWith('.safetensors') || /[/\\]/.test(file) || file.startsWith('.')) {
      throw hfError(HfErrorCode.INDEX, `${path}: tensor ${tensor} maps to ${JSON.stringify(file)}, not a .safetensors file in the folder`, { file: path });
    }
    weightMap.set(tensor, file);
  }
  return weightMap;
}

export class HfModelFolder {
  private readonly shards = new Map<string, Promise<HfShardFile>>();

  private constructor(
    readonly dir: string,
    /** The file that says where tensors are: the index, or model.safetensors itself. */
    readonly listing: string,
    private readonly weightMap: ReadonlyMap<string, string>,
  ) {}

  static async open(dir: string): Promise<HfModelFolder> {
    const single = join(dir, HF_WEIGHTS_FILE);
    if (await pathExists(single)) {
      const file = await HfShardFile.open(single, () => hfError(HfErrorCode.WEIGHTS_MISSING, `${single} vanished while it was opened`, { file: single }));
      const folder = new HfModelFolder(dir, single, new Map([...file.entries.keys()].map((name) => [name, HF_WEIGHTS_FILE])));
      folder.shards.set(HF_WEIGHTS_FILE, Promise.resolve(file));
      return folder;
    }
    if (await pathExists(join(dir, HF_INDEX_FILE))) return new HfModelFolder(dir, join(dir, HF_INDEX_FILE), await readWeightMap(dir));
    const other = (await readdir(dir).catch(() => [] as string[])).filter((f) => /\.(bin|pt|pth|ckpt|gguf)$/.test(f));
    throw hfError(HfErrorCode.WEIGHTS_MISSING, `${dir} has no ${HF_WEIGHTS_FILE} and no ${HF_INDEX_FILE}${other.length ? ` (it has ${other.join(', ')})` : ''}`, { file: dir });
  }

  /** Whether the folder holds a tensor of this name. */
  has(name: string): boolean {
    return this.weightMap.has(name);
  }

  /** The header entry of a tensor, opening its shard if needed (TRAINER_ERR_HF_TENSOR_MISSING when absent). */
  async entry(name: string): Promise<HfShardEntry & { file: string }> {
    const { file, shard } = await this.shardOf(name);
    const e = shard.entries.get(name);
    if (!e) {
      throw hfError(HfErrorCode.TENSOR_MISSING, `${shard.path} has no tensor ${name} (${this.listing} places it there)`, { file: shard.path, details: { tensor: name } });
    }
    return { ...e, file: shard.path };
  }

  /**
   * Checks that a tensor is there, a float, of the stored shape `shape` (TRAINER_ERR_HF_*), so a
   * load fails before it reads anything.
   */
  async check(name: string, shape: readonly number[]): Promise<void> {
    const e = await this.entry(name);
    if (e.shape.length !== shape.length || e.shape.some((d, i) => d !== shape[i])) {
      throw hfError(HfErrorCode.TENSOR_SHAPE, `${e.file}: ${name} has shape ${JSON.stringify(e.shape)}, the model's config needs ${JSON.stringify(shape)}`, {
        file: e.file, details: { tensor: name, shape: e.shape, expected: shape },
      });
    }
    (await this.shardOf(name)).shard.floatEntry(name);
  }

  /**
   * Elements [start, end) of `region` (row-major) of a tensor whose shape in the trainer's
   * orientation is `shape`, as fp32; `transposed`: the file stores it as [shape[1], shape[0]].
   * Only the bytes of the region's rows that [start, end) touches are read.
   */
  async readRegion(name: string, shape: readonly number[], region: Region | undefined, start: number, end: number, transposed: boolean): Promise<Float32Array> {
    const plan = planRegionRead(shape, region, start, end, transposed);
    const { shard } = await this.shardOf(name);
    return plan.assemble(await shard.readRuns(name, plan.runs));
  }

  /** A whole tensor in the file's orientation, as fp32. */
  async readTensor(name: string): Promise<Float32Array> {
    const e = await this.entry(name);
    const n = e.shape.reduce((a, b) => a * b, 1);
    return (await this.shardOf(name)).shard.readRuns(name, [[0, n]]);
  }

  async close(): Promise<void> {
    const opened = await Promise.allSettled(this.shards.values());
    this.shards.clear();
    await Promise.all(opened.map((s) => (s.status === 'fulfilled' ? s.value.close() : undefined)));
  }

  private async shardOf(name: string): Promise<{ file: string; shard: HfShardFile }> {
    const file = this.weightMap.get(name);
    if (file === undefined) {
      throw hfError(HfErrorCode.TENSOR_MISSING, `${this.listing} has no tensor ${name}`, { file: this.listing, details: { tensor: name } });
    }
    let shard = this.shards.get(file);
    if (!shard) {
      const path = join(this.dir, file);
      shard = HfShardFile.open(path, () => hfError(HfErrorCode.SHARD_MISSING, `${this.listing} places ${name} in ${file}, which is not in ${this.dir}`, { file: path, details: { tensor: name } }));
      this.shards.set(file, shard);
    }
    return { file, shard: await shard };
  }
}
