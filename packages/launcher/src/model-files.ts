import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { asFloat32, bytesOf, readSafetensors, SafetensorsStreamWriter, writeJsonAtomic } from '@trainer/checkpoint';
import { TrainerError } from '@trainer/errors';
import { paramLayout, type GPTConfig } from '@trainer/model';
import { ModelConfigSchema } from './job-spec.js';

/**
 * A trained model on disk: a folder with
 *   config.json        { format: 'trainer-model', version: 1, modelName, model: GPTConfig, ... }
 *   model.safetensors  one F32 tensor per parameter, named as in Hugging Face GPT-2
 *   tokenizer.json     the BPE tokenizer it was trained with
 * It is what `trainer eval`, `generate` and `export` read, and what a run leaves in <out>/model.
 */
export const MODEL_FORMAT = 'trainer-model';
export const MODEL_FORMAT_VERSION = 1;

export interface SavedModel {
  modelName: string;
  config: GPTConfig;
  params: Float32Array;
  tokenizerJson: string | undefined;
  info: Record<string, unknown>;
}

export async function saveModelDir(dir: string, m: SavedModel): Promise<void> {
  const w = await ModelDirWriter.open(dir, m);
  await w.write(m.params);
  await w.close();
}

/**
 * A model folder written as the parameters arrive, in flat order (unit by unit, say), so the
 * writer never holds the whole model: model.safetensors streams to disk, config.json and
 * tokenizer.json are written when it is complete.
 */
export class ModelDirWriter {
  private constructor(private readonly dir: string, private readonly m: Omit<SavedModel, 'params'>, private readonly file: SafetensorsStreamWriter) {}

  static async open(dir: string, m: Omit<SavedModel, 'params'>): Promise<ModelDirWriter> {
    await mkdir(dir, { recursive: true });
    const specs = paramLayout(m.config).entries.map((e) => ({ name: e.name, dtype: 'F32' as const, shape: e.shape }));
    const file = await SafetensorsStreamWriter.open(join(dir, 'model.safetensors'), specs, { format: MODEL_FORMAT, format_version: String(MODEL_FORMAT_VERSION) });
    return new ModelDirWriter(dir, m, file);
  }

  /** The next parameters of the flat vector (paramLayout order). */
  write(values: Float32Array): Promise<void> {
    return this.file.write(bytesOf(values));
  }

  async close(): Promise<void> {
    await this.file.close();
    if (this.m.tokenizerJson !== undefined) await writeJsonAtomic(join(this.dir, 'tokenizer.json'), JSON.parse(this.m.tokenizerJson));
    await writeJsonAtomic(join(this.dir, 'config.json'), { format: MODEL_FORMAT, version: MODEL_FORMAT_VERSION, modelName: this.m.modelName, model: this.m.config, ...this.m.info });
  }

  abort(): Promise<void> {
    return this.file.abort();
  }
}

/** A model folder's config.json, validated: the model's name, config and the rest of its info. */
export async function readModelDirConfig(dir: string): Promise<{ modelName: string; config: GPTConfig; info: Record<string, unknown> }> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
  } catch (err) {
    throw new TrainerError('TRAINER_ERR_MODEL_NOT_FOUND', `${dir} holds no readable trainer model (config.json is missing or not JSON)`, {
      cause: err, hint: 'pass a run folder\'s model directory (<out>/model) or a run folder',
    });
  }
  const cfg = raw as { format?: unknown; version?: unknown; modelName?: unknown; model?: unknown };
  if (cfg.format !== MODEL_FORMAT) {
    throw new TrainerError('TRAINER_ERR_MODEL_FORMAT', `${dir}/config.json is not a trainer model (format ${JSON.stringify(cfg.format)})`, {
      hint: 'Hugging Face exports are for other tools; point at the trainer run folder it came from',
    });
  }
  if (cfg.version !== MODEL_FORMAT_VERSION) {
    throw new TrainerError('TRAINER_ERR_MODEL_FORMAT', `${dir} has model format version ${String(cfg.version)}; this trainer reads version ${MODEL_FORMAT_VERSION}`, {
      hint: 'use the trainer version that wrote it, or re-export the model',
    });
  }
  const model = ModelConfigSchema.safeParse(cfg.model);
  if (!model.success) throw new TrainerError('TRAINER_ERR_MODEL_FORMAT', `${dir}/config.json has an invalid model config: ${model.error.message}`);
  const { format: _f, version: _v, modelName, model: _m, ...info } = raw as Record<string, unknown>;
  return { modelName: String(modelName ?? 'custom'), config: model.data, info };
}

export async function loadModelDir(dir: string): Promise<SavedModel> {
  const { modelName, config, info } = await readModelDirConfig(dir);
  const file = await readSafetensors(join(dir, 'model.safetensors'));
  const layout = paramLayout(config);
  const params = new Float32Array(layout.totalSize);
  for (const e of layout.entries) {
    const t = file.tensors.get(e.name);
    if (!t) throw new TrainerError('TRAINER_ERR_MODEL_FORMAT', `${dir}/model.safetensors lacks the tensor ${e.name}`);
    if (JSON.stringify(t.shape) !== JSON.stringify(e.shape)) {
      throw new TrainerError('TRAINER_ERR_MODEL_FORMAT', `${dir}/model.safetensors: ${e.name} has shape ${JSON.stringify(t.shape)}, the config needs ${JSON.stringify(e.shape)}`);
    }
    params.set(asFloat32(t), e.offset);
  }
  let tokenizerJson: string | undefined;
  try {
    tokenizerJson = await readFile(join(dir, 'tokenizer.json'), 'utf8');
  } catch {
    tokenizerJson = undefined;
  }
  return { modelName, config, params, tokenizerJson, info };
}
