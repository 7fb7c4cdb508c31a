import { readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { asFloat32, readSafetensors } from '@trainer/checkpoint';
import { TrainerError } from '@trainer/errors';
import { paramLayout, validateConfig, type GPTConfig } from '@trainer/model';
import { describeCheckpointModel } from '../checkpointing/checkpoint-model.js';
import { readModelDirConfig, type SavedModel } from '../model-files.js';

/**
 * Where fine-tuning starts from: a trainer model folder (<run>/model), a run folder, a sharded
 * checkpoint (a checkpoint, a checkpoints folder, or a run folder with only checkpoints/), or a
 * Hugging Face GPT-2 export (`trainer export`: config.json of model_type gpt2, model.safetensors,
 * trainer-tokenizer.json). The coordinator resolves the path once; every worker loads it.
 */
export type PretrainedKind = 'model' | 'checkpoint' | 'huggingface';

export interface PretrainedSource {
  kind: PretrainedKind;
  /** Absolute path of the folder to load. */
  path: string;
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

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
    throw new TrainerError('TRAINER_ERR_MODEL_NOT_FOUND', `${path} does not exist`, { hint: 'pass a run folder, its model/ folder, a checkpoint, or a `trainer export` folder' });
  }
  if (await exists(join(abs, 'manifest.json'))) return { kind: 'checkpoint', path: abs };
  if (await exists(join(abs, 'model', 'config.json'))) return { kind: 'model', path: join(abs, 'model') };
  const config = await readJsonObject(join(abs, 'config.json'));
  if (config?.model_type === 'gpt2') return { kind: 'huggingface', path: abs };
  if (config) return { kind: 'model', path: abs };
  if ((await exists(join(abs, 'latest'))) || (await exists(join(abs, 'checkpoints')))) return { kind: 'checkpoint', path: abs };
  return { kind: 'model', path: abs }; // loadModelDir says what is missing
}

/** What a pretrained model is, without its parameters: each worker later reads only its ranges (pretrained-ranges.ts). */
export interface PretrainedInfo {
  dir: string;
  modelName: string;
  config: GPTConfig;
  tokenizerJson?: string;
}

export async function describePretrained(src: PretrainedSource): Promise<PretrainedInfo> {
  switch (src.kind) {
    case 'checkpoint':
      return describeCheckpointModel(src.path);
    case 'huggingface': {
      const raw = await readJsonObject(join(src.path, 'config.json'));
      if (!raw) throw new TrainerError('TRAINER_ERR_MODEL_NOT_FOUND', `${src.path}/config.json is missing or not JSON`, { hint: 'pass a folder written by `trainer export`' });
      return {
        dir: src.path, modelName: typeof raw.trainer_model_name === 'string' ? raw.trainer_model_name : 'gpt2-export',
        config: configFromHuggingFace(raw, `${src.path}/config.json`), tokenizerJson: await readOptional(join(src.path, 'trainer-tokenizer.json')),
      };
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

/** The GPT-2 config of a Hugging Face config.json, as this trainer's GPTConfig. */
export function configFromHuggingFace(c: Record<string, unknown>, where: string): GPTConfig {
  const int = (k: string): number => {
    const v = c[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new TrainerError('TRAINER_ERR_MODEL_FORMAT', `${where}: ${k} is missing or not a positive integer`, { hint: 'a GPT-2 config.json has vocab_size, n_positions, n_layer, n_head, n_embd' });
    return v;
  };
  if (c.n_inner !== undefined && c.n_inner !== null) throw new TrainerError('TRAINER_ERR_MODEL_FORMAT', `${where}: n_inner ${String(c.n_inner)} is not supported (the MLP is 4 x n_embd)`, { hint: 'export a model with n_inner null' });
  if (c.activation_function !== undefined && c.activation_function !== 'gelu_new') throw new TrainerError('TRAINER_ERR_MODEL_FORMAT', `${where}: activation ${String(c.activation_function)} is not supported (tanh GELU, "gelu_new")`, { hint: 'export a GPT-2 model with activation_function gelu_new' });
  const config: GPTConfig = {
    vocabSize: int('vocab_size'), contextLength: int('n_positions'), layers: int('n_layer'), heads: int('n_head'), dModel: int('n_embd'),
    layerNormEps: typeof c.layer_norm_epsilon === 'number' ? c.layer_norm_epsilon : 1e-5,
  };
  validateConfig(config, where);
  return config;
}

/** A `trainer export` folder (or any GPT-2 safetensors with the trainer tokenizer beside it). */
export async function loadHuggingFaceExport(dir: string): Promise<SavedModel & { dir: string }> {
  const raw = await readJsonObject(join(dir, 'config.json'));
  if (!raw) throw new TrainerError('TRAINER_ERR_MODEL_NOT_FOUND', `${dir}/config.json is missing or not JSON`, { hint: 'pass a folder written by `trainer export`' });
  const config = configFromHuggingFace(raw, `${dir}/config.json`);
  const file = await readSafetensors(join(dir, 'model.safetensors'));
  const layout = paramLayout(config);
  const params = new Float32Array(layout.totalSize);
  for (const e of layout.entries) {
    // GPT2LMHeadModel saves under "transformer."; GPT2Model and `trainer export` without it.
    const t = file.tensors.get(e.name) ?? file.tensors.get(`transformer.${e.name}`);
    if (!t) throw new TrainerError('TRAINER_ERR_MODEL_FORMAT', `${dir}/model.safetensors lacks the tensor ${e.name}`, { hint: 'the file is not a GPT-2 of this config' });
    if (JSON.stringify(t.shape) !== JSON.stringify(e.shape)) {
      throw new TrainerError('TRAINER_ERR_MODEL_FORMAT', `${dir}/model.safetensors: ${e.name} has shape ${JSON.stringify(t.shape)}, the config needs ${JSON.stringify(e.shape)}`);
    }
    params.set(asFloat32(t), e.offset);
  }
  const tokenizerJson = await readOptional(join(dir, 'trainer-tokenizer.json'));
  return { modelName: typeof raw.trainer_model_name === 'string' ? raw.trainer_model_name : 'gpt2-export', config, params, tokenizerJson, info: {}, dir };
}
