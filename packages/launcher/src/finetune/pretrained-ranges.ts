import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CheckpointReader, checkTensorsMatch, forEachRun, readFlatRange, regionSize, SafetensorsRangeReader, verifyCheckpoint, type FlatTensor } from '@trainer/checkpoint';
import { TrainerError } from '@trainer/errors';
import type { GPTConfig } from '@trainer/model';
import { readModelDirConfig } from '../model-files.js';
import { configFromHuggingFace, type PretrainedSource } from './pretrained.js';

/**
 * A pretrained model's parameters read by ranges of one rank's flat vector (its tensor-parallel
 * shard of its pipeline stage, `tensors` as checkpoint-tensors.ts lays them out), never the
 * whole model: a checkpoint through its reader (any layout, as resume reads it), a model folder
 * or Hugging Face export through its safetensors file, by the byte runs of each tensor region.
 */
export interface PretrainedRanges {
  read(start: number, end: number): Promise<Float32Array>;
  close(): Promise<void>;
}

export async function openPretrainedRanges(src: PretrainedSource, config: GPTConfig, tensors: readonly FlatTensor[]): Promise<PretrainedRanges> {
  const same = (c: unknown, where: string) => {
    if (JSON.stringify(c) !== JSON.stringify(config)) {
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
  let nameOf: (name: string) => string = (name) => name;
  if (src.kind === 'model') {
    same((await readModelDirConfig(src.path)).config, src.path);
  } else {
    const raw = JSON.parse(await readFile(join(src.path, 'config.json'), 'utf8')) as Record<string, unknown>;
    same(configFromHuggingFace(raw, `${src.path}/config.json`), src.path);
  }
  const file = await SafetensorsRangeReader.open(join(src.path, 'model.safetensors'));
  try {
    // GPT2LMHeadModel saves under "transformer."; GPT2Model and `trainer export` without it.
    if (src.kind === 'huggingface' && !file.entries.has(tensors[0]?.name ?? '')) nameOf = (name) => `transformer.${name}`;
    for (const t of tensors) {
      const e = file.entries.get(nameOf(t.name));
      if (!e) throw new TrainerError('TRAINER_ERR_MODEL_FORMAT', `${file.path} lacks the tensor ${nameOf(t.name)}`, { hint: 'the file is not a GPT-2 of this config' });
      if (JSON.stringify(e.shape) !== JSON.stringify(t.shape)) {
        throw new TrainerError('TRAINER_ERR_MODEL_FORMAT', `${file.path}: ${t.name} has shape ${JSON.stringify(e.shape)}, the config needs ${JSON.stringify(t.shape)}`);
      }
    }
  } catch (err) {
    await file.close();
    throw err;
  }
  return {
    read: async (start, end) => {
      const out = new Float32Array(end - start);
      for (const t of tensors) {
        const size = regionSize(t.shape, t.region);
        const s = Math.max(start, t.offset);
        const e = Math.min(end, t.offset + size);
        if (e <= s) continue;
        const runs: [number, number, number][] = [];
        forEachRun(t.shape, t.region, s - t.offset, e - t.offset, (tensorOffset, regionOffset, n) => runs.push([tensorOffset, regionOffset, n]));
        for (const [tensorOffset, regionOffset, n] of runs) out.set(await file.readFloat32(nameOf(t.name), tensorOffset, n), t.offset + regionOffset - start);
      }
      return out;
    },
    close: () => file.close(),
  };
}
