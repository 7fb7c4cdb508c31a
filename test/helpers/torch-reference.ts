import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeSafetensors, writeJsonAtomic, type NamedTensor } from '@trainer/checkpoint';

/**
 * scripts/hf_reference_forward.py: an independent PyTorch forward pass (GPT-2 and Llama, written
 * from the published architectures, not from this trainer's code) over a model in the Hugging
 * Face layout. Tests compare the trainer's logits, and its exports, with it.
 */
export const REFERENCE_SCRIPT = fileURLToPath(new URL('../../scripts/hf_reference_forward.py', import.meta.url));

/**
 * Debian's python3-torch installs for /usr/bin/python3; another python3 on PATH (pyenv, say) may
 * lack it. TRAINER_TORCH_PYTHON names another python to use (a virtual environment's, say).
 */
const PYTHONS = process.env.TRAINER_TORCH_PYTHON ? [process.env.TRAINER_TORCH_PYTHON] : ['/usr/bin/python3', 'python3'];

let found: string | undefined;

/**
 * The first python with torch and numpy. Throws, saying to run scripts/setup.sh, where there is
 * none: the reference tests fail rather than skip (setup installs Debian's python3-torch).
 */
export function torchPython(): string {
  if (found) return found;
  const tried: string[] = [];
  for (const python of PYTHONS) {
    try {
      execFileSync(python, ['-c', 'import numpy, torch'], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 60_000 });
      found = python;
      return python;
    } catch (err) {
      const e = err as { code?: string; stderr?: Buffer };
      tried.push(`${python}: ${e.code === 'ENOENT' ? 'not found' : (e.stderr?.toString().trim().split('\n').pop() ?? String(err))}`);
    }
  }
  throw new Error(
    `no python3 with PyTorch and numpy for the reference tests (${tried.join('; ')}): run scripts/setup.sh as root ` +
    "(it installs Debian's python3-torch), or apt-get install --no-install-recommends python3-torch libopenblas0-pthread");
}

/**
 * The reference logits of every position of each sequence, [batch][position][vocab], of the model
 * in `dir` (config.json, and model.safetensors or model.safetensors.index.json with its shards),
 * computed in float64 and returned as float32 values. The sequences must have equal lengths.
 * Works for any model_type the script knows (gpt2, llama); `adapter`: a PEFT LoRA folder applied on top (llama).
 */
export function referenceLogits(dir: string, tokens: number[][], adapter?: string): Promise<number[][][]> {
  const python = torchPython();
  return new Promise((resolve, reject) => {
    const child = execFile(python, [REFERENCE_SCRIPT, dir, ...(adapter ? ['--adapter', adapter] : [])], { maxBuffer: 1 << 30, timeout: 300_000 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`${REFERENCE_SCRIPT} ${dir} failed (${err.message.split('\n')[0]}): ${stderr}`));
        return;
      }
      try {
        resolve((JSON.parse(stdout) as { logits: number[][][] }).logits);
      } catch (e) {
        reject(new Error(`${REFERENCE_SCRIPT} printed no JSON logits (${String(e)}): ${stdout.slice(0, 200)} ${stderr}`));
      }
    });
    child.stdin!.end(JSON.stringify({ tokens }));
  });
}

/** The reference script's exit status and stderr (for its refusals). */
export function runReference(dir: string, input: string): Promise<{ code: number | null; stderr: string }> {
  const python = torchPython();
  return new Promise((resolve) => {
    const child = execFile(python, [REFERENCE_SCRIPT, dir], { timeout: 120_000 }, (err, _stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stderr });
    });
    child.stdin!.end(input);
  });
}

/** The largest |a - b| over two equally shaped nested arrays of numbers (throws on a shape mismatch). */
export function maxAbsDiff(a: unknown, b: unknown, where = ''): number {
  if (typeof a === 'number' && typeof b === 'number') return Math.abs(a - b);
  if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) {
    throw new Error(`shapes differ at ${where || 'the top'}: ${Array.isArray(a) ? a.length : typeof a} vs ${Array.isArray(b) ? b.length : typeof b}`);
  }
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, maxAbsDiff(a[i], b[i], `${where}[${i}]`));
  return m;
}

/** bfloat16 codes of float32 values, rounded to nearest even (finite values). */
export function toBf16(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < bits.length; i++) {
    const u = bits[i];
    out[i] = ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
  }
  return out;
}

function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  return d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
}

/** IEEE half-precision codes of float32 values, rounded to nearest even (|x| < 65520). */
export function toF16(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const x = values[i];
    const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
    const a = Math.abs(x);
    if (a === 0) {
      out[i] = sign;
      continue;
    }
    let e = Math.floor(Math.log2(a));
    if (2 ** e > a) e--;
    if (2 ** (e + 1) <= a) e++;
    if (e < -14) {
      out[i] = sign | roundHalfEven(a / 2 ** -24); // subnormal (1024 rounds up to the smallest normal)
      continue;
    }
    let m = roundHalfEven(a / 2 ** (e - 10)); // 1024 ..= 2048, exact: a is a float32
    if (m === 2048) {
      m = 1024;
      e++;
    }
    if (e > 15) throw new Error(`${x} is outside float16's range`);
    out[i] = sign | ((e + 15) << 10) | (m - 1024);
  }
  return out;
}

/**
 * A sharded safetensors model in the Hugging Face layout: the tensors split in order over
 * `shards` files model-0000i-of-0000n.safetensors, and model.safetensors.index.json mapping each
 * name to its file. (config.json is the caller's.)
 */
export async function writeShardedSafetensors(dir: string, tensors: NamedTensor[], shards: number): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const per = Math.ceil(tensors.length / shards);
  const weightMap: Record<string, string> = {};
  let total = 0;
  for (let s = 0; s < shards; s++) {
    const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const part = tensors.slice(s * per, (s + 1) * per);
    for (const t of part) {
      weightMap[t.name] = file;
      total += t.data.byteLength;
    }
    writeFileSync(join(dir, file), Buffer.concat(encodeSafetensors(part, { format: 'pt' })));
  }
  await writeJsonAtomic(join(dir, 'model.safetensors.index.json'), { metadata: { total_size: total }, weight_map: weightMap });
}
