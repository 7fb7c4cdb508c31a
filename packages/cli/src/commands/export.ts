import { exitCode } from '../action.js';
import { Command } from 'commander';
import { looksLikeHfTokenizerJson } from '@trainer/data';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { bytesOf, transposeMatrix, writeHfWeights, writeJsonAtomic, HF_DEFAULT_MAX_SHARD_BYTES, PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE, type HfWeightsWritten } from '@trainer/checkpoint';
import { TrainerError } from '@trainer/errors';
import { encodeBf16 } from '@trainer/comm';
import { hfConfigJson, hfTensors, type GPTConfig } from '@trainer/model';
import { loadModelFrom } from '../model-source.js';
import { oneOf, parseByteSize } from '../parse.js';

/**
 * `trainer export MODEL --out DIR`: the model as a Hugging Face folder that transformers'
 * from_pretrained loads (GPT2LMHeadModel or LlamaForCausalLM):
 *
 *   config.json                 hfConfigJson (torch_dtype float32 or bfloat16)
 *   model.safetensors           every tensor under its Hugging Face name (hf-names.ts), or above
 *                               --max-shard-size model-0000i-of-0000N.safetensors + the index
 *   trainer-tokenizer.json      the trainer's tokenizer, when the model has one
 *
 * GPT-2 tensors are a straight copy (Conv1D is [in, out] like ours); Llama's linears go back to
 * nn.Linear's [out, in]. bf16 rounds each fp32 to nearest even. The model is held once: each
 * tensor is converted and written in turn (writeHfWeights), never a second copy of the whole.
 */
export type ExportDtype = 'f32' | 'bf16';

/** Hugging Face tokenizer files copied along when the model comes from a Hugging Face folder. */
const HF_TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'vocab.json', 'merges.txt'];

/** Writes the weights and config.json of `params` (the flat fp32 vector of `config`) into `out`. */
export async function writeHuggingFaceModel(out: string, config: GPTConfig, params: Float32Array, opts: { dtype: ExportDtype; maxShardBytes: number }): Promise<HfWeightsWritten> {
  const tensors = hfTensors(config);
  const dtype = opts.dtype === 'bf16' ? 'BF16' as const : 'F32' as const;
  const specs = tensors.map((t) => ({ name: t.hfName, dtype, shape: t.hfShape }));
  const written = await writeHfWeights(out, specs, (i) => {
    const { entry: e, transposed } = tensors[i];
    const ours = params.subarray(e.offset, e.offset + e.size);
    const values = transposed ? transposeMatrix(ours, e.shape[0], e.shape[1]) : ours; // [in, out] -> [out, in]
    if (dtype === 'F32') return bytesOf(values);
    const codes = new Uint16Array(values.length);
    encodeBf16(values, codes);
    return bytesOf(codes);
  }, { maxShardBytes: opts.maxShardBytes, metadata: { format: 'pt' } });
  await writeJsonAtomic(join(out, 'config.json'), hfConfigJson(config, dtype === 'BF16' ? 'bfloat16' : 'float32'));
  return written;
}

export function exportCommand(): Command {
  return new Command('export')
    .description('write a model as a Hugging Face folder (GPT2LMHeadModel or LlamaForCausalLM: config.json + safetensors)')
    .argument('<model>', 'run folder, model folder, sharded checkpoint (any layout; a checkpoints folder means its latest), or Hugging Face folder')
    .requiredOption('--out <dir>', 'output folder')
    .option('--dtype <dtype>', 'tensor dtype: f32, or bf16 (rounded to nearest even)', oneOf(['f32', 'bf16'] as const), 'f32')
    .option('--merge', 'a LoRA run: write the merged model (W + alpha/r A B) as a Hugging Face folder instead of its PEFT adapter')
    .option('--max-shard-size <size>', 'largest weight file before the weights are split into model-0000i-of-0000N.safetensors + model.safetensors.index.json (like save_pretrained: 5GB = 5e9 bytes)', parseByteSize, HF_DEFAULT_MAX_SHARD_BYTES)
    .action(exitCode(async (path: string, o: { out: string; dtype: ExportDtype; maxShardSize: number; merge?: boolean }) => {
      // A LoRA run: its PEFT adapter folder (<run>/adapter), or with --merge its merged model (<run>/model).
      const adapter = join(path, 'adapter');
      const isLora = existsSync(join(adapter, PEFT_CONFIG_FILE));
      if (o.merge && !isLora) {
        throw new TrainerError('TRAINER_ERR_USAGE', `--merge: ${path} is not a LoRA run (no adapter/${PEFT_CONFIG_FILE})`, { hint: 'drop --merge: the model is exported as it is' });
      }
      if (isLora && !o.merge) {
        await mkdir(o.out, { recursive: true });
        for (const f of [PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE]) await copyFile(join(adapter, f), join(o.out, f));
        process.stdout.write(`exported the LoRA adapter of ${path} (PEFT: ${PEFT_CONFIG_FILE} + ${PEFT_WEIGHTS_FILE}) to ${o.out}; --merge writes the merged model\n`);
        return 0;
      }
      const saved = await loadModelFrom(path);
      await mkdir(o.out, { recursive: true });
      const written = await writeHuggingFaceModel(o.out, saved.config, saved.params, { dtype: o.dtype, maxShardBytes: o.maxShardSize });
      // The tokenizer: a Hugging Face folder's own files as they are; a Hugging Face tokenizer.json
      // (a model fine-tuned from one) under its own name, which transformers loads; ours as trainer-tokenizer.json.
      if (saved.tokenizerDir) {
        if (resolve(saved.tokenizerDir) !== resolve(o.out)) {
          for (const f of HF_TOKENIZER_FILES) if (existsSync(join(saved.tokenizerDir, f))) await copyFile(join(saved.tokenizerDir, f), join(o.out, f));
        }
      } else if (saved.tokenizerJson) {
        const hf = looksLikeHfTokenizerJson(JSON.parse(saved.tokenizerJson));
        await writeFile(join(o.out, hf ? 'tokenizer.json' : 'trainer-tokenizer.json'), saved.tokenizerJson);
        // A chat fine-tune's model folder keeps the chat template (and bos/eos) in Hugging Face's file: it goes along.
        if (hf && existsSync(join(saved.dir, 'tokenizer_config.json'))) await copyFile(join(saved.dir, 'tokenizer_config.json'), join(o.out, 'tokenizer_config.json'));
      }
      const files = written.files.length === 1 ? written.files[0] : `${written.files.length} shards + index`;
      process.stdout.write(`exported ${saved.modelName} (${saved.params.length.toLocaleString('en-US')} parameters, ${o.dtype}, ${files}) to ${o.out}\n`);
      return 0;
    }));
}
