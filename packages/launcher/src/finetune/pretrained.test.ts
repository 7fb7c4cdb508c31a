import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bytesOf, forEachRun, regionSize, transposeMatrix, widenBf16, writeHfWeights, type FlatTensor, type Region } from '@trainer/checkpoint';
import { encodeBf16 } from '@trainer/comm';
import { thrownSummary as codeOf } from '@trainer/errors';
import { hfConfigJson, hfTensors, paramLayout, type GPTConfig } from '@trainer/model';
import { openPretrainedRanges } from './pretrained-ranges.js';
import { configFromHuggingFace, describePretrained, loadHuggingFaceExport, resolvePretrained } from './pretrained.js';

const gpt2 = { model_type: 'gpt2', vocab_size: 300, n_positions: 32, n_layer: 2, n_head: 2, n_embd: 32, layer_norm_epsilon: 1e-5, n_inner: null, activation_function: 'gelu_new' };
const llama: GPTConfig = {
  vocabSize: 40, contextLength: 16, layers: 2, heads: 4, dModel: 16, layerNormEps: 1e-5,
  family: 'llama', kvHeads: 2, ffnHidden: 24, ropeTheta: 10000, tiedHead: false,
};

/** A Hugging Face folder of `config` with `params` (flat, ours), as `trainer export` writes it, in shards of `maxShardBytes`. */
async function hfFolder(config: GPTConfig, params: Float32Array, maxShardBytes: number): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'trainer-hf-'));
  const tensors = hfTensors(config);
  await writeHfWeights(dir, tensors.map((t) => ({ name: t.hfName, dtype: 'F32' as const, shape: t.hfShape })), (i) => {
    const { entry: e, transposed } = tensors[i];
    const v = params.slice(e.offset, e.offset + e.size);
    return bytesOf(transposed ? transposeMatrix(v, e.shape[0], e.shape[1]) : v);
  }, { maxShardBytes });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(hfConfigJson(config)));
  return dir;
}

describe('pretrained models for fine-tuning', () => {
  it('reads GPT-2 and Llama config.json and refuses what the model cannot run', () => {
    expect(configFromHuggingFace(gpt2, 'c')).toEqual({ vocabSize: 300, contextLength: 32, layers: 2, heads: 2, dModel: 32, layerNormEps: 1e-5 });
    expect(configFromHuggingFace(hfConfigJson(llama), 'c')).toEqual(llama);
    expect(codeOf(() => configFromHuggingFace({ ...gpt2, n_inner: 64 }, 'c'))).toMatch(/^TRAINER_ERR_MODEL_CONFIG: c: n_inner 64 is not supported/);
    expect(codeOf(() => configFromHuggingFace({ ...gpt2, activation_function: 'relu' }, 'c'))).toMatch(/activation relu is not supported/);
    expect(codeOf(() => configFromHuggingFace({ ...gpt2, n_layer: 0 }, 'c'))).toMatch(/n_layer is missing or not a positive integer/);
    expect(codeOf(() => configFromHuggingFace({ ...gpt2, n_embd: 33 }, 'c'))).toMatch(/^TRAINER_ERR_MODEL_CONFIG/);
  });

  it('tells a run folder, a model folder, a Hugging Face folder and a checkpoint apart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trainer-pretrained-'));
    mkdirSync(join(dir, 'run', 'model'), { recursive: true });
    writeFileSync(join(dir, 'run', 'model', 'config.json'), JSON.stringify({ format: 'trainer-model' }));
    mkdirSync(join(dir, 'export'));
    writeFileSync(join(dir, 'export', 'config.json'), JSON.stringify(gpt2));
    mkdirSync(join(dir, 'mistral'));
    writeFileSync(join(dir, 'mistral', 'config.json'), JSON.stringify({ ...hfConfigJson(llama), model_type: 'mistral' }));
    mkdirSync(join(dir, 'ckpt'));
    writeFileSync(join(dir, 'ckpt', 'manifest.json'), '{}');
    expect(await resolvePretrained(join(dir, 'run'))).toEqual({ kind: 'model', path: join(dir, 'run', 'model') });
    expect(await resolvePretrained(join(dir, 'run', 'model'))).toEqual({ kind: 'model', path: join(dir, 'run', 'model') });
    expect(await resolvePretrained(join(dir, 'export'))).toEqual({ kind: 'huggingface', path: join(dir, 'export') });
    const hf = await hfFolder(llama, new Float32Array(paramLayout(llama).totalSize), 1e9);
    expect(await resolvePretrained(hf)).toEqual({ kind: 'huggingface', path: hf });
    expect(await resolvePretrained(join(dir, 'ckpt'))).toEqual({ kind: 'checkpoint', path: join(dir, 'ckpt') });
    await expect(resolvePretrained(join(dir, 'none'))).rejects.toMatchObject({ code: 'TRAINER_ERR_MODEL_NOT_FOUND' });
    // Another model_type is a Hugging Face folder the config reader refuses by name.
    await expect(describePretrained(await resolvePretrained(join(dir, 'mistral')))).rejects.toMatchObject({ code: 'TRAINER_ERR_MODEL_CONFIG', message: expect.stringContaining('model_type "mistral" is not supported') });
    // The tokenizer: the trainer's when the export carries it, else the folder's own files.
    expect(await describePretrained({ kind: 'huggingface', path: hf })).toEqual({ dir: hf, modelName: 'llama-export', config: llama });
    writeFileSync(join(hf, 'tokenizer.json'), '{}');
    expect(await describePretrained({ kind: 'huggingface', path: hf })).toMatchObject({ tokenizerDir: hf });
    writeFileSync(join(hf, 'trainer-tokenizer.json'), '{"trainer": 1}');
    const both = await describePretrained({ kind: 'huggingface', path: hf });
    expect(both.tokenizerJson).toBe('{"trainer": 1}');
    expect(both.tokenizerDir).toBeUndefined();
    // The weights are checked (headers only) before any worker starts.
    rmSync(join(hf, 'model.safetensors'));
    await expect(describePretrained({ kind: 'huggingface', path: hf })).rejects.toMatchObject({ code: 'TRAINER_ERR_HF_WEIGHTS_MISSING' });
  });

  it('loads a sharded Llama folder whole, and by tensor-parallel regions read in pieces, equal to the model', async () => {
    const layout = paramLayout(llama);
    const params = Float32Array.from({ length: layout.totalSize }, (_, i) => Math.sin(i) * 0.1);
    const dir = await hfFolder(llama, params, 2000);
    expect(existsSync(join(dir, 'model.safetensors.index.json')), 'sharded').toBe(true);
    const whole = await loadHuggingFaceExport(dir);
    expect(whole.config).toEqual(llama);
    expect(whole.params).toEqual(params);
    // One rank of tp 2: column-parallel halves of q/k/v/gate/up, row-parallel halves of o/down, half the vocabulary.
    const tensors: FlatTensor[] = [];
    let offset = 0;
    for (const e of layout.entries) {
      const half = (n: number): [number, number] => [n / 2, n];
      let region: Region | undefined;
      if (/(q|k|v|gate|up)_proj/.test(e.name)) region = { cols: [half(e.shape[1])] };
      else if (/(o|down)_proj/.test(e.name)) region = { rows: half(e.shape[0]) };
      else if (e.shape.length === 2) region = { rows: [0, e.shape[0] / 2] };
      tensors.push({ name: e.name, shape: e.shape, offset, ...(region ? { region } : {}) });
      offset += regionSize(e.shape, region);
    }
    const expected = new Float32Array(offset);
    for (const t of tensors) {
      const e = layout.entries.find((x) => x.name === t.name)!;
      forEachRun(t.shape, t.region, 0, regionSize(t.shape, t.region), (to, ro, n) => expected.set(params.subarray(e.offset + to, e.offset + to + n), t.offset + ro));
    }
    const ranges = await openPretrainedRanges({ kind: 'huggingface', path: dir }, llama, tensors);
    try {
      const pieces = [0, 37, 38, 500, 1234, 2000, offset];
      for (let i = 1; i < pieces.length; i++) expect(await ranges.read(pieces[i - 1], pieces[i])).toEqual(expected.subarray(pieces[i - 1], pieces[i]));
    } finally {
      await ranges.close();
    }
    await expect(openPretrainedRanges({ kind: 'huggingface', path: dir }, { ...llama, ffnHidden: 32 }, tensors)).rejects.toMatchObject({ code: 'TRAINER_ERR_MODEL_FORMAT' });
  });

  it('reads GPT2LMHeadModel names ("transformer.") in BF16, whole and by ranges', async () => {
    const config = configFromHuggingFace(gpt2, 'c');
    const layout = paramLayout(config);
    const params = Float32Array.from({ length: layout.totalSize }, (_, i) => Math.cos(i) * 0.3);
    const codes = new Uint16Array(params.length);
    encodeBf16(params, codes);
    const rounded = new Float32Array(params.length);
    widenBf16(codes, rounded);
    const dir = mkdtempSync(join(tmpdir(), 'trainer-hf-'));
    await writeHfWeights(dir, layout.entries.map((e) => ({ name: `transformer.${e.name}`, dtype: 'BF16' as const, shape: e.shape })), (i) => {
      const e = layout.entries[i];
      return bytesOf(codes.slice(e.offset, e.offset + e.size));
    });
    writeFileSync(join(dir, 'config.json'), JSON.stringify(gpt2));
    expect((await loadHuggingFaceExport(dir)).params).toEqual(rounded);
    const tensors: FlatTensor[] = layout.entries.map((e) => ({ name: e.name, shape: e.shape, offset: e.offset }));
    const ranges = await openPretrainedRanges({ kind: 'huggingface', path: dir }, config, tensors);
    try {
      expect(await ranges.read(100, 5000)).toEqual(rounded.subarray(100, 5000));
    } finally {
      await ranges.close();
    }
  });
});
