/**
 * Training batches from prepared datasets (`trainer data prepare`), read by ranges: a rank reads
 * only the windows of its own micro-batches, with positional reads that run on libuv's thread
 * pool (off the compute thread), and the next step's windows are requested while this step
 * computes (`prefetch`). Memory per worker is a few micro-batches, whatever the dataset's size.
 *
 * The data order is a function of (seed, step) only, as BatchSampler's: sample i of step s is
 *   dataset d = the first with u < cumulative weight, u = uniform(mix stream of (seed, s), i)
 *   start   = uniformIndex(stream (seed, s), i, length_d - T)   (tokens [start, start + T + 1))
 * so any world size and layout see the same global batch, and a resumed run the same data. One
 * dataset needs no mixing draw (its starts are exactly BatchSampler's over the same tokens).
 * Validation reads the first datasets' held-out split as consecutive windows (validationBatches'
 * windows: k covers [kT, kT + T + 1)).
 */
import { streamKey, uniformIndex } from '@trainer/data';
import type { MicroBatch } from '@trainer/engine';
import { TrainerError } from '@trainer/errors';

/** What a prepared dataset offers the sampler (PreparedDataset of @trainer/data). */
export interface TokenRanges {
  /** Tokens in a split. */
  length(split: 'train' | 'val'): number;
  /** Tokens [start, start + count) of a split's concatenated shards. */
  read(split: 'train' | 'val', start: number, count: number): Promise<ArrayLike<number>>;
}

export interface MicroBatchSlice {
  rank: number;
  dpSize: number;
  microBatch: number;
  micro: number;
}

/** The stream of the mixing draws: splitmix of the step stream with a fixed tag, never equal to a step's. */
const MIX_TAG = 0x6d69786d69786d69n; // "mixmixmi"

export class PreparedBatches {
  private readonly cumulative: number[];
  private readonly pending = new Map<string, Promise<MicroBatch>>();

  constructor(
    private readonly datasets: readonly TokenRanges[],
    weights: readonly number[],
    private readonly seqLen: number,
    private readonly globalBatch: number,
    private readonly seed: number,
  ) {
    const total = weights.reduce((a, b) => a + b, 0);
    let acc = 0;
    this.cumulative = weights.map((w) => (acc += w / total));
    datasets.forEach((d, i) => {
      if (d.length('train') < seqLen + 1) {
        throw new TrainerError('TRAINER_ERR_CORPUS_TOO_SHORT', `prepared dataset ${i + 1} has ${d.length('train')} training tokens, fewer than one sequence of ${seqLen + 1}`, {
          hint: 'prepare more data or use a shorter --seq-len',
        });
      }
    });
  }

  /** This rank's micro-batch `slice.micro` of step `step` (from the prefetch when it was asked for). */
  batch(step: number, slice: MicroBatchSlice): Promise<MicroBatch> {
    const key = `${step}/${slice.rank}/${slice.dpSize}/${slice.microBatch}/${slice.micro}`;
    const ready = this.pending.get(key);
    if (ready) {
      this.pending.delete(key);
      return ready;
    }
    return this.read(step, slice);
  }

  /** Starts reading these micro-batches of `step` now (kept until batch() takes them). */
  prefetch(step: number, slices: readonly MicroBatchSlice[]): void {
    for (const slice of slices) {
      const key = `${step}/${slice.rank}/${slice.dpSize}/${slice.microBatch}/${slice.micro}`;
      if (this.pending.has(key)) continue;
      const p = this.read(step, slice);
      p.catch(() => undefined); // a failed prefetch is reported when batch() takes it
      this.pending.set(key, p);
    }
  }

  /** The (dataset, start) of samples [first, first + count) of step's global batch. */
  samples(step: number, first: number, count: number): { dataset: number; start: number }[] {
    const key = streamKey(this.seed, step);
    const mixKey = key ^ MIX_TAG;
    const out: { dataset: number; start: number }[] = [];
    for (let i = first; i < first + count; i++) {
      let dataset = 0;
      if (this.datasets.length > 1) {
        const u = uniformIndex(mixKey, i, 2 ** 52) / 2 ** 52;
        while (dataset < this.cumulative.length - 1 && u >= this.cumulative[dataset]) dataset++;
      }
      out.push({ dataset, start: uniformIndex(key, i, this.datasets[dataset].length('train') - this.seqLen) });
    }
    return out;
  }

  /** Validation micro-batches: the first `count` batches of `microBatch` consecutive windows of the first dataset's held-out split. */
  async valBatches(microBatch: number, count: number): Promise<MicroBatch[]> {
    const T = this.seqLen;
    const ds = this.datasets[0];
    const windows = Math.min(Math.floor((ds.length('val') - 1) / T), microBatch * count);
    if (windows < 1) return [];
    const tokens = await ds.read('val', 0, windows * T + 1);
    const out: MicroBatch[] = [];
    for (let first = 0; first < windows; first += microBatch) {
      const B = Math.min(microBatch, windows - first);
      const mb = { tokens: new Int32Array(B * T), targets: new Int32Array(B * T), batch: B };
      for (let b = 0; b < B; b++) {
        const at = (first + b) * T;
        for (let t = 0; t < T; t++) {
          mb.tokens[b * T + t] = tokens[at + t];
          mb.targets[b * T + t] = tokens[at + t + 1];
        }
      }
      out.push(mb);
    }
    return out;
  }

  private async read(step: number, slice: MicroBatchSlice): Promise<MicroBatch> {
    const { rank, dpSize, microBatch, micro } = slice;
    const perRank = this.globalBatch / dpSize;
    const T = this.seqLen;
    const samples = this.samples(step, rank * perRank + micro * microBatch, microBatch);
    const windows = await Promise.all(samples.map((s) => this.datasets[s.dataset].read('train', s.start, T + 1)));
    const tokens = new Int32Array(microBatch * T);
    const targets = new Int32Array(microBatch * T);
    windows.forEach((w, b) => {
      for (let t = 0; t < T; t++) {
        tokens[b * T + t] = w[t];
        targets[b * T + t] = w[t + 1];
      }
    });
    return { tokens, targets, batch: microBatch };
  }
}
