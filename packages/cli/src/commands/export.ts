import { exitCode } from '../action.js';
import { Command } from 'commander';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bytesOf, writeJsonAtomic, writeSafetensors } from '@trainer/checkpoint';
import { paramLayout, type GPTConfig } from '@trainer/model';
import { loadModelFrom } from '../model-source.js';

/**
 * Hugging Face GPT-2 layout: config.json (GPT2Config) and model.safetensors with GPT-2's tensor
 * names. Our flat layout already uses those names and GPT-2's Conv1D orientation ([in, out],
 * q,k,v concatenated in c_attn), so the export is a copy; the output head is tied to wte.weight.
 */
export function huggingFaceConfig(c: GPTConfig): Record<string, unknown> {
  return {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    vocab_size: c.vocabSize,
    n_positions: c.contextLength,
    n_ctx: c.contextLength,
    n_embd: c.dModel,
    n_layer: c.layers,
    n_head: c.heads,
    n_inner: null,
    activation_function: 'gelu_new',
    layer_norm_epsilon: c.layerNormEps,
    resid_pdrop: 0.0,
    embd_pdrop: 0.0,
    attn_pdrop: 0.0,
    initializer_range: 0.02,
    scale_attn_weights: true,
    tie_word_embeddings: true,
    use_cache: true,
    torch_dtype: 'float32',
  };
}

export function exportCommand(): Command {
  return new Command('export')
    .description('write a saved model in the Hugging Face GPT-2 layout (config.json + model.safetensors)')
    .argument('<model>', 'run folder, model folder, or sharded checkpoint (any layout; a checkpoints folder means its latest)')
    .requiredOption('--out <dir>', 'output folder')
    .action(exitCode(async (path: string, o: { out: string }) => {
      const saved = await loadModelFrom(path);
      await mkdir(o.out, { recursive: true });
      const layout = paramLayout(saved.config);
      const tensors = layout.entries.map((e) => ({ name: e.name, dtype: 'F32' as const, shape: e.shape, data: bytesOf(saved.params.subarray(e.offset, e.offset + e.size)) }));
      await writeSafetensors(join(o.out, 'model.safetensors'), tensors, { format: 'pt' });
      await writeJsonAtomic(join(o.out, 'config.json'), huggingFaceConfig(saved.config));
      if (saved.tokenizerJson) await writeFile(join(o.out, 'trainer-tokenizer.json'), saved.tokenizerJson);
      process.stdout.write(`exported ${saved.modelName} (${layout.totalSize.toLocaleString('en-US')} parameters) to ${o.out}\n`);
      return 0;
    }));
}
