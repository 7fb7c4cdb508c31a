/** Test helpers for the dataset tests: small sources, a small tokenizer, zstd frames without the zstd tool. */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { BpeTokenizer } from '../bpe-tokenizer.js';
import { trainBpe } from '../bpe-train.js';
import { loadBuiltinCorpus } from '../builtin-corpora.js';
import { tokenArrayFor, type TokenArray } from '../internal/token-buffer.js';
import { validationKey, validationThreshold } from './validation-split.js';

/** Moby Dick's chapters as documents (the first `count`). */
export function mobyChapters(count = 200): string[] {
  return loadBuiltinCorpus('moby-dick').documents.slice(0, count);
}

/** A 300-token tokenizer trained on a few chapters, saved to dir/tokenizer.json. */
export async function smallTokenizer(dir: string, vocabSize = 300): Promise<{ path: string; tokenizer: BpeTokenizer }> {
  const tokenizer = trainBpe(mobyChapters(12), { vocabSize });
  const path = join(dir, `tokenizer-${vocabSize}.json`);
  await tokenizer.save(path);
  return { path, tokenizer };
}

export function jsonlOf(documents: string[]): string {
  return documents.map((text) => JSON.stringify({ text })).join('\n') + '\n';
}

export async function writeText(path: string, content: string | Uint8Array): Promise<string> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, content);
  return path;
}

/** What the dataset's splits must hold: each document's tokens then eot, split by validationKey. */
export function expectedSplits(tokenizer: BpeTokenizer, documents: string[], valFraction: number): { train: TokenArray; val: TokenArray; trainDocs: number[]; valDocs: number[] } {
  const threshold = validationThreshold(valFraction);
  const parts = { train: [] as number[], val: [] as number[] };
  const lengths = { train: [] as number[], val: [] as number[] };
  const encoder = new TextEncoder();
  for (const doc of documents) {
    const split = validationKey(encoder.encode(doc)) < threshold ? 'val' : 'train';
    const ids = [...tokenizer.encode(doc), tokenizer.eotToken];
    for (const id of ids) parts[split].push(id);
    lengths[split].push(ids.length);
  }
  const typed = (xs: number[]) => {
    const out = tokenArrayFor(tokenizer.vocabSize, xs.length);
    out.set(xs);
    return out;
  };
  return { train: typed(parts.train), val: typed(parts.val), trainDocs: lengths.train, valDocs: lengths.val };
}

/**
 * A valid zstd stream of `data` in raw (stored) blocks, one frame per `frameBytes`: what `zstd`
 * writes for incompressible data, built here so tests need no zstd binary.
 */
export function zstdStoredFrames(data: Uint8Array, frameBytes = 100_000): Uint8Array {
  const parts: Buffer[] = [];
  for (let f = 0; f < Math.max(1, data.length); f += frameBytes) {
    const frame = data.subarray(f, f + frameBytes);
    const header = Buffer.alloc(4 + 1 + 8);
    header.writeUInt32LE(0xfd2fb528, 0); // magic
    header[4] = 0xe0; // single segment, 8-byte content size, no checksum
    header.writeBigUInt64LE(BigInt(frame.length), 5);
    parts.push(header);
    const blockMax = 128 * 1024;
    for (let b = 0; b === 0 || b < frame.length; b += blockMax) {
      const block = frame.subarray(b, b + blockMax);
      const last = b + blockMax >= frame.length ? 1 : 0;
      const bh = (block.length << 3) | (0 << 1) | last; // raw block
      parts.push(Buffer.from([bh & 0xff, (bh >> 8) & 0xff, (bh >> 16) & 0xff]), Buffer.from(block));
    }
  }
  return Buffer.concat(parts);
}

export async function dirFor(root: string, name: string): Promise<string> {
  const dir = join(root, name);
  await mkdir(dir, { recursive: true });
  return dir;
}
