import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { asFloat32, bytesOf, readSafetensors, widenHalf, writeSafetensors, type NamedTensor } from '@trainer/checkpoint';
import { saveModelDir } from '@trainer/launcher';
import { GPT, initBackend, initParams, MODEL_CONFIGS, Rng, type GPTConfig } from '@trainer/model';
import { killAllStarted, runTrainer } from './helpers/processes.js';
import { maxAbsDiff, referenceLogits, runReference, toBf16, toF16, torchPython, writeShardedSafetensors } from './helpers/torch-reference.js';

/**
 * The trainer's models against an independent PyTorch forward pass (scripts/hf_reference_forward.py,
 * written from the published GPT-2 and Llama definitions): a model is saved, exported to the
 * Hugging Face layout with `trainer export`, and the reference's logits of the export must equal
 * the trainer's own within 1e-4. Needs Debian's python3-torch (scripts/setup.sh installs it): the
 * tests fail, saying so, where it is missing.
 *
 * A new architecture is one more case: a config, `exportedModel(config, ...)` and
 * `expectLogitsMatch(...)`.
 */

afterEach(() => killAllStarted());
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const TOLERANCE = 1e-4;
const dir = mkdtempSync(join(tmpdir(), 'trainer-hf-reference-'));

/** Random parameters with every tensor (biases and norm weights too) far from its init value. */
function randomParams(config: GPTConfig, seed: number, scale = 0.2): Float32Array {
  const params = initParams(config, seed);
  const rng = new Rng(seed + 1);
  for (let i = 0; i < params.length; i++) params[i] += scale * rng.normal();
  return params;
}

/** Saves the model as a trainer model folder and `trainer export`s it; returns the export's folder. */
async function exportedModel(name: string, config: GPTConfig, params: Float32Array): Promise<string> {
  const model = join(dir, name, 'model');
  await saveModelDir(model, { modelName: name, config, params, tokenizerJson: undefined, info: {} });
  const out = join(dir, name, 'hf');
  const r = await runTrainer(['export', model, '--out', out]);
  expect(r.code, r.stdout + r.stderr).toBe(0);
  return out;
}

/** The trainer's logits of every position, [batch][position][vocab], from lastLogits of each prefix. */
async function trainerLogits(config: GPTConfig, params: Float32Array, tokens: number[][]): Promise<number[][][]> {
  const gpt = new GPT(config);
  try {
    gpt.setParams(params);
    const B = tokens.length;
    const T = tokens[0].length;
    const V = config.vocabSize;
    const out: number[][][] = tokens.map(() => []);
    for (let t = 1; t <= T; t++) {
      const last = await gpt.lastLogits(Int32Array.from(tokens.flatMap((s) => s.slice(0, t))), B);
      for (let b = 0; b < B; b++) out[b].push(Array.from(last.subarray(b * V, (b + 1) * V)));
    }
    return out;
  } finally {
    gpt.dispose();
  }
}

function randomTokens(config: GPTConfig, batch: number, length: number, seed: number): number[][] {
  const rng = new Rng(seed);
  return Array.from({ length: batch }, () => Array.from({ length }, () => rng.nextU32() % config.vocabSize));
}

function largest(x: number[][][]): number {
  return Math.max(...x.flat(2).map(Math.abs));
}

beforeAll(async () => {
  torchPython(); // fails every test here, saying to run scripts/setup.sh, where there is no PyTorch
  await initBackend('wasm', () => undefined);
}, 120_000);

describe('the PyTorch reference forward pass (scripts/hf_reference_forward.py)', () => {
  const micro = MODEL_CONFIGS['gpt-micro'];
  const params = randomParams(micro, 11);
  let gpt2Export: string;

  it('GPT-2: the logits of `trainer export` match the trainer\'s own within 1e-4 at every position', async () => {
    gpt2Export = await exportedModel('gpt2', micro, params);
    expect(JSON.parse(readFileSync(join(gpt2Export, 'config.json'), 'utf8')).model_type).toBe('gpt2');
    const tokens = randomTokens(micro, 4, micro.contextLength, 5); // the whole context: every wpe row
    const ours = await trainerLogits(micro, params, tokens);
    const reference = await referenceLogits(gpt2Export, tokens);
    expect(largest(reference)).toBeGreaterThan(1); // logits of a real size, not all near 0
    const diff = maxAbsDiff(ours, reference);
    expect(diff, `max |trainer - reference| = ${diff}`).toBeLessThan(TOLERANCE);
    // A short batch reads positions 0..T-1 only.
    const short = randomTokens(micro, 3, 5, 6);
    expect(maxAbsDiff(await trainerLogits(micro, params, short), await referenceLogits(gpt2Export, short))).toBeLessThan(TOLERANCE);
  }, 120_000);

  for (const [label, config] of [
    ['Llama (GQA 4:2, untied head)', { ...MODEL_CONFIGS['llama-nano'], vocabSize: 96, contextLength: 12, layers: 2, dModel: 32, ffnHidden: 48 }],
    ['Llama (MQA, tied head, Llama 3.1 RoPE scaling, theta 500000)', {
      ...MODEL_CONFIGS['llama-nano'], vocabSize: 96, contextLength: 12, layers: 2, dModel: 32, ffnHidden: 48, kvHeads: 1, tiedHead: true, ropeTheta: 500000,
      ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8 },
    }],
  ] as [string, GPTConfig][]) {
    it(`${label}: the logits of \`trainer export\` (LlamaForCausalLM) match the trainer's own within 1e-4 at every position`, async () => {
      const p = randomParams(config, 12, 0.05);
      const hf = await exportedModel(`llama-${config.kvHeads}-${String(config.tiedHead)}`, config, p);
      const hfConfig = JSON.parse(readFileSync(join(hf, 'config.json'), 'utf8'));
      expect(hfConfig.model_type).toBe('llama');
      expect(hfConfig.num_key_value_heads).toBe(config.kvHeads);
      const tokens = randomTokens(config, 3, config.contextLength, 8);
      const ours = await trainerLogits(config, p, tokens);
      const reference = await referenceLogits(hf, tokens);
      expect(largest(reference)).toBeGreaterThan(0.5);
      const diff = maxAbsDiff(ours, reference);
      expect(diff, `max |trainer - reference| = ${diff}`).toBeLessThan(TOLERANCE);
    }, 120_000);
  }

  it('reads sharded BF16 and F16 files (index.json, `transformer.` names) as the F32 file of the same rounded weights', async () => {
    const exported = await readSafetensors(join(gpt2Export, 'model.safetensors'));
    const tensors = [...exported.tensors.values()];
    const half = Math.ceil(tensors.length / 2);
    const sharded: NamedTensor[] = [];
    const rounded: NamedTensor[] = [];
    let changed = 0;
    tensors.forEach((t, i) => {
      const values = asFloat32(t);
      const dtype = i < half ? 'BF16' as const : 'F16' as const; // first shard bf16, second fp16
      const codes = dtype === 'BF16' ? toBf16(values) : toF16(values);
      const widened = widenHalf(dtype, codes);
      widened.forEach((v, j) => {
        expect(Math.abs(v - values[j])).toBeLessThanOrEqual(Math.abs(values[j]) * (dtype === 'BF16' ? 2 ** -8 : 2 ** -11) + 2 ** -25);
        if (v !== values[j]) changed++;
      });
      sharded.push({ name: `transformer.${t.name}`, dtype, shape: t.shape, data: bytesOf(codes) });
      rounded.push({ name: t.name, dtype: 'F32', shape: t.shape, data: bytesOf(widened) });
    });
    expect(changed).toBeGreaterThan(1000);
    const config = readFileSync(join(gpt2Export, 'config.json'), 'utf8');
    const shardedDir = join(dir, 'gpt2-sharded');
    await writeShardedSafetensors(shardedDir, sharded, 2);
    writeFileSync(join(shardedDir, 'config.json'), config);
    const index = JSON.parse(readFileSync(join(shardedDir, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
    expect(new Set(Object.values(index.weight_map)).size).toBe(2);
    const roundedDir = join(dir, 'gpt2-rounded');
    mkdirSync(roundedDir);
    await writeSafetensors(join(roundedDir, 'model.safetensors'), rounded, { format: 'pt' });
    writeFileSync(join(roundedDir, 'config.json'), config);

    const tokens = randomTokens(micro, 3, 9, 7);
    const fromShards = await referenceLogits(shardedDir, tokens);
    expect(maxAbsDiff(fromShards, await referenceLogits(roundedDir, tokens))).toBe(0);
    // ... and the rounding shows: the half-precision model's logits are not the F32 export's.
    expect(maxAbsDiff(fromShards, await referenceLogits(gpt2Export, tokens))).toBeGreaterThan(1e-4);
  }, 120_000);

  it('refuses other model types, ragged batches and token ids outside the vocabulary', async () => {
    const other = join(dir, 'other');
    mkdirSync(other);
    await writeSafetensors(join(other, 'model.safetensors'), [], {});
    writeFileSync(join(other, 'config.json'), JSON.stringify({ model_type: 'mistral', vocab_size: 8 }));
    const r = await runReference(other, JSON.stringify({ tokens: [[1]] }));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/model_type 'mistral' is not supported/);
    const ragged = await runReference(gpt2Export, JSON.stringify({ tokens: [[1, 2], [3]] }));
    expect(ragged.code).toBe(2);
    expect(ragged.stderr).toMatch(/same length/);
    const outside = await runReference(gpt2Export, JSON.stringify({ tokens: [[1, micro.vocabSize]] }));
    expect(outside.code).toBe(2);
    expect(outside.stderr).toMatch(/not an integer in \[0, 64\)/);
  }, 60_000);
});
