import type { AddedToken } from './added-tokens.js';
import type { BpeModel, HfPipelineSpec } from './bpe-model.js';

/**
 * A BpeTokenizer's model as plain data and typed arrays, which postMessage and workerData copy in
 * about a millisecond: how `trainer data prepare` hands the tokenizer its main thread loaded (and
 * hash-checked) once to its tokenizer threads instead of every thread parsing the file again.
 * See BpeTokenizer.threadForm and BpeTokenizer.fromThreadForm.
 */
export interface BpeThreadForm {
  /** Merge r joins ids merges[2r] and merges[2r + 1]. */
  merges: Int32Array;
  /** MergeIds, for vocabularies not in trainer's layout. */
  byteIds: Int32Array | undefined;
  mergedIds: Int32Array | undefined;
  /** Token id's bytes are tokenBytes[tokenOffsets[id], tokenOffsets[id + 1]); none when tokenMissing[id] is 1. */
  tokenBytes: Uint8Array;
  tokenOffsets: Int32Array;
  tokenMissing: Uint8Array;
  vocabSize: number;
  eotToken: number;
  hash: string;
  pattern: string | null;
  addPrefixSpace: boolean;
  hf: HfPipelineSpec | undefined;
  /** BpeModel.vocab (char-level models), as entries. */
  vocab: Array<[string, number]> | undefined;
  wholeWords: Array<[string, number]> | undefined;
  allowSpecialByDefault: boolean;
  addedTokens: AddedToken[];
}

/** The thread form of a model (copies: the model is not shared with the form). */
export function threadFormOf(model: BpeModel): BpeThreadForm {
  const merges = new Int32Array(2 * model.merges.length);
  model.merges.forEach(([left, right], r) => {
    merges[2 * r] = left;
    merges[2 * r + 1] = right;
  });
  let total = 0;
  for (const bytes of model.tokenBytes) total += bytes?.length ?? 0;
  const tokenBytes = new Uint8Array(total);
  const tokenOffsets = new Int32Array(model.tokenBytes.length + 1);
  const tokenMissing = new Uint8Array(model.tokenBytes.length);
  let offset = 0;
  for (let id = 0; id < model.tokenBytes.length; id++) {
    const bytes = model.tokenBytes[id];
    tokenOffsets[id] = offset;
    if (bytes === undefined) tokenMissing[id] = 1;
    else {
      tokenBytes.set(bytes, offset);
      offset += bytes.length;
    }
  }
  tokenOffsets[model.tokenBytes.length] = offset;
  return {
    merges,
    byteIds: model.ids ? Int32Array.from(model.ids.byteIds) : undefined,
    mergedIds: model.ids ? Int32Array.from(model.ids.mergedIds) : undefined,
    tokenBytes,
    tokenOffsets,
    tokenMissing,
    vocabSize: model.vocabSize,
    eotToken: model.eotToken,
    hash: model.hash,
    pattern: model.pattern,
    addPrefixSpace: model.addPrefixSpace,
    hf: model.hf,
    vocab: model.vocab ? [...model.vocab] : undefined,
    wholeWords: model.wholeWords ? [...model.wholeWords] : undefined,
    allowSpecialByDefault: model.allowSpecialByDefault,
    addedTokens: model.addedTokens.map((t) => ({ ...t })),
  };
}

/** The model of a thread form; its toJSON throws (a thread form has no file to give back). */
export function modelOfThreadForm(form: BpeThreadForm): BpeModel {
  const merges: Array<[number, number]> = [];
  for (let r = 0; 2 * r < form.merges.length; r++) merges.push([form.merges[2 * r], form.merges[2 * r + 1]]);
  const tokenBytes: Array<Uint8Array | undefined> = [];
  for (let id = 0; id < form.tokenMissing.length; id++) {
    tokenBytes.push(form.tokenMissing[id] === 1 ? undefined : form.tokenBytes.subarray(form.tokenOffsets[id], form.tokenOffsets[id + 1]));
  }
  return {
    merges,
    ids: form.byteIds && form.mergedIds ? { byteIds: form.byteIds, mergedIds: form.mergedIds } : undefined,
    tokenBytes,
    vocabSize: form.vocabSize,
    addedTokens: form.addedTokens,
    eotToken: form.eotToken,
    pattern: form.pattern,
    addPrefixSpace: form.addPrefixSpace,
    hf: form.hf,
    vocab: form.vocab ? new Map(form.vocab) : undefined,
    wholeWords: form.wholeWords ? new Map(form.wholeWords) : undefined,
    allowSpecialByDefault: form.allowSpecialByDefault,
    hash: form.hash,
    toJSON: () => {
      throw new Error('this tokenizer was rebuilt from a thread form, which has no JSON form: save the tokenizer it came from');
    },
  };
}
