/** Token arrays are stored as uint16 when every id fits (vocab <= 65536), else uint32. */
export type TokenArray = Uint16Array | Uint32Array;

export function tokenArrayFor(vocabSize: number, length: number): TokenArray {
  return vocabSize <= 65536 ? new Uint16Array(length) : new Uint32Array(length);
}

/** A growable token array (doubling), for encoding a corpus without a huge number[]. */
export class TokenBuffer {
  private data: TokenArray;
  private count = 0;

  constructor(private readonly vocabSize: number, initialCapacity = 1 << 16) {
    this.data = tokenArrayFor(vocabSize, initialCapacity);
  }

  get length(): number {
    return this.count;
  }

  push(ids: ArrayLike<number>): void {
    if (this.count + ids.length > this.data.length) {
      const grown = tokenArrayFor(this.vocabSize, Math.max(this.data.length * 2, this.count + ids.length));
      grown.set(this.data.subarray(0, this.count));
      this.data = grown;
    }
    for (let i = 0; i < ids.length; i++) this.data[this.count + i] = ids[i];
    this.count += ids.length;
  }

  /** A right-sized copy of tokens [start, end). */
  slice(start = 0, end = this.count): TokenArray {
    return this.data.slice(start, end);
  }
}
