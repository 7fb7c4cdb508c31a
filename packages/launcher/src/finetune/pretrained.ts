import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { HfModelFolder, pathExists } from '@trainer/checkpoint';
import { readTokenizerJson } from '@trainer/data';
import { TrainerError } from '@trainer/errors';
import { configFromHf, familyOf, hfTensors, paramLayout, type GPTConfig, type HfTensor } from '@trainer/model';
import { describeCheckpointModel } from '../checkpointing/checkpoint-model.js';
import { readModelDirConfig, type SavedModel } from '../model-files.js';

/**
 * Where fine-tuning starts from: a trainer model folder (<run>/model), a run folder, a sharded
 * checkpoint (a checkpoint, a checkpoints folder, or a run folder with only checkpoints/), or a
 * Hugging Face model folder: config.json with a model_type (gpt2 and llama are read), weights in
 * model.safetensors or shards listed by model.safetensors.index.json, as `trainer export` and
 * transformers' save_pretrained write them. The coordinator resolves the path once; every worker
 * loads it.
 */
export type PretrainedKind = 'model' | 'checkpoint' | 'huggingface';

export interface PretrainedSource {
  kind: PretrainedKind;
  /** Absolute path of the folder to load. */
  path: string;
}

const exists = pathExists;

async function readJsonObject(p: string): Promise<Record<string, unknown> | undefined> {
  try {
    const v = JSON.parse(await readFile(p, 'utf8')) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export async function resolvePretrained(path: string): Promise<PretrainedSource> {
  const abs = resolve(path);
  if (!(await exists(abs))) {
    throw new TrainerError('TRAINER_ERR_MODEL_NOT_FOUND', `${path} does not exist`, { hint: 'pass a run folder, its model/ folder, a checkpoint, or a Hugging Face model folder (`trainer export`)' });
  }
  if (await exists(join(abs, 'manifest.json'))) return { kind: 'checkpoint', path: abs };
  if (await exists(join(abs, 'model', 'config.json'))) return { kind: 'model', path: join(abs, 'model') };
  const config = await readJsonObject(join(abs, 'config.json'));
  // Any model_type is Hugging Face's: configFromHf then says which ones are read (gpt2, llama).
  if (config && typeof config.model_type === 'string' && config.format === undefined) return { kind: 'huggingface', path: abs };
  if (config) return { kind: 'model', path: abs };
  if ((await exists(join(abs, 'latest'))) || (await exists(join(abs, 'checkpoints')))) return { kind: 'checkpoint', path: abs };
  return { kind: 'model', path: abs }; // loadModelDir says what is missing
}

/** What a pretrained model is, without its parameters: each worker later reads only its ranges (pretrained-ranges.ts). */
export interface PretrainedInfo {
  dir: string;
  modelName: string;
  config: GPTConfig;
  /** The trainer's own tokenizer (tokenizer.json of a model folder, trainer-tokenizer.json of an export). */
  tokenizerJson?: string;
  /**
   * A Hugging Face folder without trainer-tokenizer.json whose tokenizer is Hugging Face's
   * (tokenizer.json, or vocab.json + merges.txt): the folder, for the Hugging Face tokenizer loader.
   */
  tokenizerDir?: string;
}

export async function describePretrained(src: PretrainedSource): Promise<PretrainedInfo> {
  switch (src.kind) {
    case 'checkpoint':
      return describeCheckpointModel(src.path);
    case 'huggingface': {
      const { modelName, config } = await readHfConfig(src.path);
      await checkHfWeights(src.path, config); // headers only: a missing shard or tensor is named before any worker starts
      return { dir: src.path, modelName, config, ...(await hfTokenizer(src.path)) };
    }
    case 'model': {
      const { modelName, config } = await readModelDirConfig(src.path);
      return { dir: src.path, modelName, config, tokenizerJson: await readOptional(join(src.path, 'tokenizer.json')) };
    }
  }
}

async function readOptional(p: string): Promise<string | undefined> {
  try {
    return await readFile(p, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * A Hugging Face folder's tokenizer: the trainer's (trainer-tokenizer.json) first, else the
 * folder's own files (tokenizer.json, or GPT-2's vocab.json + merges.txt) as a Hugging Face
 * tokenizer.json (readTokenizerJson: what BpeTokenizer.fromJSON loads with the files' ids).
 */
async function hfTokenizer(dir: string): Promise<{ tokenizerJson?: string; tokenizerDir?: string }> {
  const tokenizerJson = await readOptional(join(dir, 'trainer-tokenizer.json'));
  if (tokenizerJson !== undefined) return { tokenizerJson };
  const own = (await exists(join(dir, 'tokenizer.json'))) || ((await exists(join(dir, 'vocab.json'))) && (await exists(join(dir, 'merges.txt'))));
  if (!own) return {};
  return { tokenizerJson: JSON.stringify(await readTokenizerJson(dir)), tokenizerDir: dir };
}

/** A Hugging Face folder's config.json as a GPTConfig (configFromHf), with a name for the model. */
export async function readHfConfig(dir: string): Promise<{ modelName: string; config: GPTConfig }> {
  const raw = await readJsonObject(join(dir, 'config.json'));
  if (!raw) throw new TrainerError('TRAINER_ERR_MODEL_NOT_FOUND', `${dir}/config.json is missing or not JSON`, { hint: 'pass a Hugging Face model folder (config.json and model.safetensors), e.g. one written by `trainer export`' });
  const config = configFromHf(raw, `${dir}/config.json`);
  const name = [raw.trainer_model_name, raw._name_or_path].find((v): v is string => typeof v === 'string' && v.length > 0);
  return { modelName: name ?? `${familyOf(config)}-export`, config };
}

/** The GPT-2 or Llama config of a Hugging Face config.json, as this trainer's GPTConfig (configFromHf). */
export function configFromHuggingFace(c: Record<string, unknown>, where: string): GPTConfig {
  return configFromHf(c, where);
}

/**
 * The model's tensors in a Hugging Face folder, by this trainer's name: the name there, the
 * stored shape and orientation (hf-names.ts). GPT2LMHeadModel saves under "transformer.",
 * GPT2Model and `trainer export` without it: whichever the folder holds.
 */
export function hfTensorsIn(folder: HfModelFolder, config: GPTConfig): Map<string, HfTensor> {
  const prefixed = familyOf(config) === 'gpt2' && !folder.has('wte.weight') && folder.has('transformer.wte.weight');
  return new Map(hfTensors(config).map((t) => [t.entry.name, prefixed ? { ...t, hfName: `transformer.${t.hfName}` } : t]));
}

/** Every tensor of the model is in the folder, a float, of its shape (TRAINER_ERR_HF_* otherwise); reads headers only. */
export async function checkHfWeights(dir: string, config: GPTConfig): Promise<void> {
  const folder = await HfModelFolder.open(dir);
  try {
    for (const t of hfTensorsIn(folder, config).values()) await folder.check(t.hfName, t.hfShape);
  } finally {
    await folder.close();
  }
}

/**
 * A whole Hugging Face model (eval, generate, export, `--from` on one process): every tensor
 * checked first (present, a float, its shape), then read one at a time, widened to fp32 and
 * turned into the trainer's orientation, straight into the flat vector.
 */
export async function loadHuggingFaceExport(dir: string): Promise<SavedModel & { dir: string; tokenizerDir?: string }> {
  const { modelName, config } = await readHfConfig(dir);
  const params = new Float32Array(paramLayout(config).totalSize);
  const folder = await HfModelFolder.open(dir);
  try {
    const tensors = [...hfTensorsIn(folder, config).values()];
    for (const t of tensors) await folder.check(t.hfName, t.hfShape);
    for (const t of tensors) params.set(await folder.readRegion(t.hfName, t.entry.shape, undefined, 0, t.entry.size, t.transposed), t.entry.offset);
  } finally {
    await folder.close();
  }
  const { tokenizerJson, tokenizerDir } = await hfTokenizer(dir);
  return { modelName, config, params, tokenizerJson, info: {}, dir, ...(tokenizerDir ? { tokenizerDir } : {}) };
}
