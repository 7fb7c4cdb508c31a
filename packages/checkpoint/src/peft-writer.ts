/**
 * A Hugging Face PEFT adapter folder (what `PeftModel.from_pretrained(base, DIR)` loads):
 *
 *   adapter_config.json          the LoRA config (model/src/lora/peft-names.ts builds it)
 *   adapter_model.safetensors    every adapter tensor under PEFT's name, F32, PEFT's orientation
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bytesOf, readSafetensors, writeJsonAtomic, writeSafetensors, asFloat32 } from './safetensors.js';

export const PEFT_CONFIG_FILE = 'adapter_config.json';
export const PEFT_WEIGHTS_FILE = 'adapter_model.safetensors';

export interface PeftAdapterTensor {
  name: string;
  shape: number[];
  values: Float32Array;
}

export async function writePeftAdapter(dir: string, config: Record<string, unknown>, tensors: readonly PeftAdapterTensor[]): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeSafetensors(join(dir, PEFT_WEIGHTS_FILE), tensors.map((t) => ({ name: t.name, dtype: 'F32' as const, shape: t.shape, data: bytesOf(t.values) })), { format: 'pt' });
  await writeJsonAtomic(join(dir, PEFT_CONFIG_FILE), config);
}

/** Reads a PEFT adapter folder: its config and tensors (fp32) by PEFT name. */
export async function readPeftAdapter(dir: string): Promise<{ config: Record<string, unknown>; tensors: Map<string, { shape: number[]; values: Float32Array }> }> {
  const config = JSON.parse(await readFile(join(dir, PEFT_CONFIG_FILE), 'utf8')) as Record<string, unknown>;
  const file = await readSafetensors(join(dir, PEFT_WEIGHTS_FILE));
  const tensors = new Map<string, { shape: number[]; values: Float32Array }>();
  for (const [name, t] of file.tensors) tensors.set(name, { shape: t.shape, values: asFloat32(t) });
  return { config, tensors };
}
