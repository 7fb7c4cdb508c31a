import { byteFallbackIds } from './bpe-byte-fallback.js';

/** Hugging Face's penalty below the lowest piece score for an unknown character (kUnkPenalty). */
const UNK_PENALTY = 10;

/**
 * A Unigram model (SentencePiece's default): a word is cut into the pieces whose scores (log
 * probabilities) sum highest, by Viterbi over the word's characters. Exactly Hugging Face's
 * `Unigram::encode_optimized` and `tokenize`: candidates at each position in order of length
 * (a later one replaces an earlier only with a strictly higher score); a character no piece
 * starts with is unknown, scored `min score - 10`; consecutive unknowns fuse into one piece; a
 * piece outside the vocabulary (a fused unknown) becomes its `<0xXX>` byte tokens with
 * `byte_fallback`, else the unknown token.
 */
export class UnigramModel {
  private readonly ids = new Map<string, number>();
  private readonly maxPieceLength: number;
  private readonly unkScore: number;
  private readonly byteTokenIds: Int32Array | undefined;
  private readonly utf8 = new TextEncoder();

  /** pieces[id] and scores[id]; unkId -1 for none. */
  constructor(pieces: readonly string[], private readonly scores: ArrayLike<number>, private readonly unkId: number, byteFallback: boolean) {
    let maxLength = 1;
    let minScore = Infinity;
    pieces.forEach((piece, id) => {
      if (!this.ids.has(piece)) this.ids.set(piece, id);
      maxLength = Math.max(maxLength, piece.length);
      minScore = Math.min(minScore, scores[id]);
    });
    this.maxPieceLength = maxLength;
    this.unkScore = minScore - UNK_PENALTY;
    this.byteTokenIds = byteFallback ? byteFallbackIds(this.ids) : undefined;
  }

  encode(word: string): number[] {
    const n = word.length;
    if (n === 0) return [];
    // Best path to each UTF-16 position: its score, where its last piece starts, and that piece's id.
    const score = new Float64Array(n + 1);
    const startsAt = new Int32Array(n + 1).fill(-1);
    const pieceId = new Int32Array(n + 1);
    for (let start = 0; start < n; start = nextChar(word, start)) {
      if (start > 0 && startsAt[start] < 0) continue; // unreachable (inside a surrogate pair)
      const here = score[start];
      const charEnd = nextChar(word, start);
      let hasSingle = false;
      for (let end = start + 1; end <= Math.min(n, start + this.maxPieceLength); end++) {
        const id = this.ids.get(word.slice(start, end));
        if (id === undefined) continue;
        const candidate = here + this.scores[id];
        if (startsAt[end] < 0 || candidate > score[end]) {
          score[end] = candidate;
          startsAt[end] = start;
          pieceId[end] = id;
        }
        if (end === charEnd) hasSingle = true;
      }
      if (!hasSingle) {
        const candidate = here + this.unkScore;
        if (startsAt[charEnd] < 0 || candidate > score[charEnd]) {
          score[charEnd] = candidate;
          startsAt[charEnd] = start;
          pieceId[charEnd] = -1; // unknown
        }
      }
    }
    // Back from the end: pieces, with runs of unknown characters fused into one string.
    const pieces: Array<{ text: string; id: number }> = [];
    let unknownEnd = -1;
    for (let end = n; end > 0; end = startsAt[end]) {
      const start = startsAt[end];
      if (pieceId[end] < 0 && this.unkId >= 0) {
        if (unknownEnd < 0) unknownEnd = end;
        if (start === 0 || pieceId[start] >= 0) {
          pieces.push({ text: word.slice(start, unknownEnd), id: -1 });
          unknownEnd = -1;
        }
        continue;
      }
      pieces.push({ text: word.slice(start, end), id: pieceId[end] });
    }
    pieces.reverse();
    const out: number[] = [];
    for (const piece of pieces) {
      const id = piece.id >= 0 ? piece.id : this.ids.get(piece.text);
      if (id !== undefined) {
        out.push(id);
        continue;
      }
      if (this.byteTokenIds) {
        const bytes = this.utf8.encode(piece.text);
        if (bytes.every((b) => this.byteTokenIds![b] >= 0)) {
          for (const b of bytes) out.push(this.byteTokenIds[b]);
          continue;
        }
      }
      if (this.unkId >= 0) out.push(this.unkId); // (without an unknown token Hugging Face fails the encode; the piece is dropped here)
    }
    return out;
  }
}

function nextChar(text: string, at: number): number {
  const unit = text.charCodeAt(at);
  return unit >= 0xd800 && unit <= 0xdbff && at + 1 < text.length ? at + 2 : at + 1;
}
