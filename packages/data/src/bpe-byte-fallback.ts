/**
 * The starting symbols of SentencePiece-style BPE (Llama 2, Mistral, Gemma): a word's characters,
 * each its vocabulary id; a character not in the vocabulary becomes its UTF-8 bytes as the
 * `<0xXX>` tokens (`byte_fallback`), else the unknown token (consecutive ones fused into one with
 * `fuse_unk`), else nothing. Exactly Hugging Face's `BPE::merge_word` before merging.
 */
export interface CharSymbolOptions {
  /** Token text -> id (the model's vocabulary, not the added tokens). */
  vocab: ReadonlyMap<string, number>;
  /** byteTokenIds[b]: id of `<0xXX>` for byte b, or -1 when the vocabulary lacks it; undefined without byte fallback. */
  byteTokenIds: Int32Array | undefined;
  /** Id of the unknown token, or -1 for none. */
  unkId: number;
  fuseUnk: boolean;
}

/** byteTokenIds of a vocabulary: the ids of `<0x00>`..`<0xFF>` (Hugging Face writes the hex digits upper case). */
export function byteFallbackIds(vocab: ReadonlyMap<string, number>): Int32Array {
  const ids = new Int32Array(256).fill(-1);
  for (let b = 0; b < 256; b++) ids[b] = vocab.get(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`) ?? -1;
  return ids;
}

const utf8 = new TextEncoder();

export function charSymbols(word: string, opts: CharSymbolOptions): Int32Array {
  const out: number[] = [];
  let pendingUnk = false; // an unknown token not yet pushed (it may fuse with the next one)
  for (const ch of word) {
    const id = opts.vocab.get(ch);
    if (id !== undefined) {
      if (pendingUnk) out.push(opts.unkId);
      pendingUnk = false;
      out.push(id);
      continue;
    }
    if (opts.byteTokenIds) {
      const bytes = utf8.encode(ch);
      let all = true;
      for (const b of bytes) if (opts.byteTokenIds[b] < 0) all = false;
      if (all) {
        // As Hugging Face: a pending unknown token stays pending across byte tokens.
        for (const b of bytes) out.push(opts.byteTokenIds[b]);
        continue;
      }
    }
    if (opts.unkId >= 0) {
      if (pendingUnk && !opts.fuseUnk) out.push(opts.unkId);
      pendingUnk = true;
    }
  }
  if (pendingUnk) out.push(opts.unkId);
  return Int32Array.from(out);
}
