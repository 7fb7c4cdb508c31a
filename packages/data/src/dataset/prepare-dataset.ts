import { availableParallelism } from 'node:os';
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { TrainerError } from '@trainer/errors';
import { BpeTokenizer } from '../bpe-tokenizer.js';
import { DataErrorCode } from '../codes.js';
import { writeFileAtomic } from '../internal/atomic-write.js';
import { DATASET_FORMAT, DATASET_FORMAT_VERSION, DATASET_SPLITS, type DatasetManifest, type DatasetSplit, MANIFEST_FILE, type SplitManifest } from './manifest.js';
import { openOutputFolder } from './output-folder.js';
import { type DatasetIdentity, PROGRESS_FILE, PROGRESS_FORMAT, PROGRESS_FORMAT_VERSION, type PrepareProgress, datasetIdOf, datasetIdentity, writeProgress } from './progress-file.js';
import { type SourcePosition, SourceReader, type UnitBatch } from './source-reader.js';
import { type DatasetSource, resolveSources } from './sources.js';
import { SplitWriter } from './split-writer.js';
import type { TokenizerInfo } from './tokenize-thread.js';
import { PoolClosedError, type TokenizedBatch, TokenizerPool } from './tokenizer-pool.js';
import { DEFAULT_DATASET_VAL_FRACTION, validationThreshold } from './validation-split.js';

/** Default --shard-size: 256 MiB per shard file. */
export const DEFAULT_SHARD_BYTES = 256 * 2 ** 20;
/** Smallest --shard-size accepted (tests use tiny shards; real datasets want hundreds of MiB). */
export const MIN_SHARD_BYTES = 1024;
/** Besides after every shard, progress is saved this often, so kill -9 loses at most this much work. */
export const CHECKPOINT_INTERVAL_MS = 30_000;
/** Text per batch sent to a tokenizer thread. */
const BATCH_BYTES = 256 * 1024;

export interface PrepareDatasetOptions {
  /** `--data`: built-in corpus names, files, folders (see sources.ts). */
  data: readonly string[];
  /** A tokenizer file or folder, as BpeTokenizer.load reads. */
  tokenizer: string;
  /** Output folder. */
  out: string;
  /** Target shard file size in bytes (default DEFAULT_SHARD_BYTES); shards end on a document end. */
  shardBytes?: number;
  /** Tokenizer threads (default: os.availableParallelism()). The output does not depend on it. */
  threads?: number;
  /** Fraction of documents held out, by content hash (default 0.0005). */
  valFraction?: number;
  /** Replace a dataset or unfinished run of other inputs in `out` instead of refusing. */
  overwrite?: boolean;
  /** Abort: stop after the batch being written, save progress, resolve with status 'interrupted'. */
  signal?: AbortSignal;
  /** Called about every progressIntervalMs (default 1000) while tokenizing. */
  onProgress?: (report: PrepareProgressReport) => void;
  progressIntervalMs?: number;
  /** Default CHECKPOINT_INTERVAL_MS. */
  checkpointIntervalMs?: number;
  log?: (message: string) => void;
}

export interface PrepareProgressReport {
  /** Bytes of the sources read from disk, of diskBytesTotal (compressed sizes for .gz/.zst). */
  diskBytesRead: number;
  diskBytesTotal: number;
  /** Consumed so far (earlier runs included). */
  documents: number;
  tokens: number;
  textBytes: number;
  shards: number;
  /** Of this run: seconds tokenizing, tokens and text bytes per second, and the time left (undefined until known). */
  seconds: number;
  tokensPerSecond: number;
  textBytesPerSecond: number;
  etaSeconds: number | undefined;
}

export interface PrepareDatasetResult {
  status: 'done' | 'already-done' | 'interrupted';
  /** The manifest written (or found, for 'already-done'); undefined when interrupted. */
  manifest: DatasetManifest | undefined;
  /** Documents, tokens and text bytes this run tokenized: after a resume, only what was left. */
  tokenizedDocuments: number;
  tokenizedTokens: number;
  tokenizedTextBytes: number;
  /** Where a resumed run picked up. */
  resumedFrom: { documents: number; shards: number } | undefined;
  /** The whole call, and the part after start-up (tokenizer loaded by the threads, output folder checked). */
  seconds: number;
  tokenizingSeconds: number;
  threads: number;
}

/**
 * `trainer data prepare`: tokenizes the sources into shard files (see manifest.ts and
 * shard-format.ts for the formats). One pass, streaming: the main thread reads the sources in order
 * and packs their units into batches, `threads` tokenizer threads encode them, and the main thread
 * writes the results back in batch order, so the files do not depend on the thread count. Resumable
 * at the last checkpoint (see progress-file.ts) after SIGINT, SIGTERM or kill -9.
 */
export async function prepareDataset(opts: PrepareDatasetOptions): Promise<PrepareDatasetResult> {
  const started = performance.now();
  const threads = opts.threads ?? availableParallelism();
  const shardBytes = opts.shardBytes ?? DEFAULT_SHARD_BYTES;
  const valFraction = opts.valFraction ?? DEFAULT_DATASET_VAL_FRACTION;
  checkOptions(threads, shardBytes);
  const valThreshold = validationThreshold(valFraction);
  // The threads start while this thread loads the tokenizer, once (the threads get it as typed
  // arrays: parsing and hash-checking it in every thread cost each about 0.4 s) and lists the sources.
  const pool = new TokenizerPool(threads, { valThreshold });
  let run: PreparationRun;
  try {
    const [{ sources, skipped }, loaded] = await Promise.all([resolveSources(opts.data), BpeTokenizer.load(resolve(opts.tokenizer))]);
    pool.start(loaded.threadForm());
    const tokenizer = await pool.ready();
    const log = opts.log ?? (() => undefined);
    if (skipped.length > 0) log(`skipped ${skipped.length} file(s) with other extensions, e.g. ${skipped[0]}`);
    const identity = datasetIdentity({ tokenizerHash: tokenizer.hash, vocabSize: tokenizer.vocabSize, eotToken: tokenizer.eotToken, sources: sources.map((s) => s.entry), valFraction, shardBytes });
    const datasetId = datasetIdOf(identity);
    const out = resolve(opts.out);
    const state = await openOutputFolder(out, identity, datasetId, opts.overwrite ?? false);
    if (state.kind === 'done') {
      await pool.close();
      log(`${out} already holds this dataset (${state.manifest.totals.tokens} tokens): nothing to do`);
      const seconds = (performance.now() - started) / 1000;
      return { status: 'already-done', manifest: state.manifest, tokenizedDocuments: 0, tokenizedTokens: 0, tokenizedTextBytes: 0, resumedFrom: undefined, seconds, tokenizingSeconds: 0, threads };
    }
    const progress = state.kind === 'resume' ? state.progress : undefined;
    run = await PreparationRun.start({ out, sources, identity, datasetId, tokenizer, pool, threads, opts, log }, progress);
  } catch (err) {
    await pool.close(); // live threads would keep the process from exiting
    throw err;
  }
  return run.execute(started);
}

function checkOptions(threads: number, shardBytes: number): void {
  if (!Number.isSafeInteger(threads) || threads < 1 || threads > 1024) {
    throw new TrainerError(DataErrorCode.DATA_OPTION, `threads ${threads} must be an integer in [1, 1024]`, { hint: 'pass --threads N, e.g. the number of cores' });
  }
  if (!Number.isSafeInteger(shardBytes) || shardBytes < MIN_SHARD_BYTES) {
    throw new TrainerError(DataErrorCode.DATA_OPTION, `shard size ${shardBytes} bytes is below the minimum of ${MIN_SHARD_BYTES}`, { hint: 'pass --shard-size like 256MiB' });
  }
}

interface RunContext {
  out: string;
  sources: DatasetSource[];
  identity: DatasetIdentity;
  datasetId: string;
  tokenizer: TokenizerInfo;
  pool: TokenizerPool;
  threads: number;
  opts: PrepareDatasetOptions;
  log: (message: string) => void;
}

/** The bookkeeping that goes with a batch sent to a thread. */
type BatchMeta = Pick<UnitBatch, 'source' | 'firstLine' | 'offsets' | 'ends' | 'count'>;

/** One run of prepareDataset from a fresh or resumed state to the manifest (or an interruption). */
class PreparationRun {
  private readonly pool: TokenizerPool;
  private readonly metas: BatchMeta[] = [];
  private position: SourcePosition;
  private documents: number;
  private tokens: number;
  private textBytes: number;
  private readonly runs: number;
  private readonly resumedFrom: { documents: number; shards: number } | undefined;
  private tokenizedDocuments = 0;
  private tokenizedTokens = 0;
  private tokenizedTextBytes = 0;
  private stopping = false;
  private reader: { base: number; reader: SourceReader } | undefined;
  private lastCheckpoint = performance.now();
  private lastReport = 0;
  private runStarted = performance.now();
  /** Where this run starts reading (a compressed source is read again from its start). */
  private readonly diskBytesAtStart: number;

  private constructor(private readonly ctx: RunContext, private readonly writers: Record<DatasetSplit, SplitWriter>, progress: PrepareProgress | undefined) {
    this.position = progress?.position ?? { source: 0, offset: 0, line: 0 };
    this.documents = progress?.documents ?? 0;
    this.tokens = progress?.tokens ?? 0;
    this.textBytes = progress?.textBytes ?? 0;
    this.runs = (progress?.runs ?? 0) + 1;
    this.resumedFrom = progress ? { documents: this.documents, shards: this.shardCount() } : undefined;
    const current = ctx.sources[this.position.source];
    this.diskBytesAtStart = ctx.sources.slice(0, this.position.source).reduce((n, s) => n + s.entry.bytes, 0)
      + (current && !current.builtin && current.compression === 'none' ? this.position.offset : 0);
    this.pool = ctx.pool;
  }

  static async start(ctx: RunContext, progress: PrepareProgress | undefined): Promise<PreparationRun> {
    const bytesPerToken = ctx.tokenizer.vocabSize <= 65536 ? 2 : 4;
    const writerFor = (split: DatasetSplit) => SplitWriter.create(
      { dir: ctx.out, split, shardBytes: ctx.identity.shardBytes, bytesPerToken, vocabSize: ctx.tokenizer.vocabSize, tokenizerHash: ctx.tokenizer.hash, datasetId: ctx.datasetId },
      progress?.splits[split],
    );
    const writers = { train: await writerFor('train'), val: await writerFor('val') };
    const run = new PreparationRun(ctx, writers, progress);
    if (progress) {
      const p = progress.position;
      ctx.log(`resuming ${ctx.out}: ${run.resumedFrom!.shards} completed shard(s) verified; continuing after document ${progress.documents} (source ${p.source + 1} of ${ctx.sources.length}, unit ${p.line})`);
    }
    await run.checkpoint(); // records the identity at once, so a second run with other inputs is refused
    return run;
  }

  async execute(started: number): Promise<PrepareDatasetResult> {
    const onAbort = () => (this.stopping = true);
    this.ctx.opts.signal?.addEventListener('abort', onAbort);
    if (this.ctx.opts.signal?.aborted) this.stopping = true;
    this.runStarted = performance.now();
    const producing = this.produce().catch((err: unknown) => this.pool.fail(err));
    let failed = true;
    try {
      await this.consume();
      failed = false;
    } finally {
      this.ctx.opts.signal?.removeEventListener('abort', onAbort);
      if (failed || this.stopping) {
        await this.pool.close();
        await producing;
      }
      if (failed) for (const split of DATASET_SPLITS) await this.writers[split].close();
    }
    const tail = { tokenizedDocuments: this.tokenizedDocuments, tokenizedTokens: this.tokenizedTokens, tokenizedTextBytes: this.tokenizedTextBytes, resumedFrom: this.resumedFrom, threads: this.ctx.threads };
    if (this.stopping) {
      await this.checkpoint();
      for (const split of DATASET_SPLITS) await this.writers[split].close();
      this.ctx.log(`interrupted: progress saved after document ${this.documents}; run the same command again to continue`);
      return { ...tail, status: 'interrupted', manifest: undefined, seconds: (performance.now() - started) / 1000, tokenizingSeconds: (performance.now() - this.runStarted) / 1000 };
    }
    await producing;
    await this.pool.close();
    const manifest = await this.finish();
    return { ...tail, status: 'done', manifest, seconds: (performance.now() - started) / 1000, tokenizingSeconds: (performance.now() - this.runStarted) / 1000 };
  }

  /** Reads the sources from the position on, in order, and feeds the pool. */
  private async produce(): Promise<void> {
    const { sources } = this.ctx;
    let base = sources.slice(0, this.position.source).reduce((n, s) => n + s.entry.bytes, 0);
    for (let s = this.position.source; s < sources.length && !this.stopping; s++) {
      const source = sources[s];
      const reader = new SourceReader(source, s, { batchBytes: BATCH_BYTES });
      this.reader = { base, reader };
      const from = s === this.position.source ? this.position : { offset: 0, line: 0 };
      for await (const batch of reader.batches(from)) {
        if (this.stopping) break;
        this.metas.push({ source: batch.source, firstLine: batch.firstLine, offsets: batch.offsets, ends: batch.ends, count: batch.count });
        await this.pool.submit({ path: source.entry.path, firstLine: batch.firstLine, jsonl: batch.jsonl, bytes: batch.bytes, ends: batch.ends, texts: batch.texts, count: batch.count });
      }
      base += source.entry.bytes;
    }
    this.reader = undefined;
    this.pool.end();
  }

  /** Takes the pool's results in order and writes them; checkpoints after every shard and every interval. */
  private async consume(): Promise<void> {
    const interval = this.ctx.opts.checkpointIntervalMs ?? CHECKPOINT_INTERVAL_MS;
    for (;;) {
      let reply: TokenizedBatch | undefined;
      try {
        reply = await this.pool.next();
      } catch (err) {
        if (err instanceof PoolClosedError && this.stopping) return;
        throw err;
      }
      if (reply === undefined) return;
      await this.writeBatch(reply, this.metas.shift()!);
      if (this.stopping) return;
      if (performance.now() - this.lastCheckpoint >= interval) await this.checkpoint();
      this.report();
    }
  }

  private async writeBatch(reply: TokenizedBatch, meta: BatchMeta): Promise<void> {
    const textBase = this.textBytes;
    let offset = 0;
    for (let i = 0; i < meta.count; i++) {
      const n = reply.lengths[i];
      if (n < 0) continue;
      const split: DatasetSplit = reply.val[i] === 1 ? 'val' : 'train';
      const full = this.writers[split].append(reply.tokens.subarray(offset, offset + n));
      offset += n;
      this.documents++;
      this.tokens += n;
      this.tokenizedDocuments++;
      this.tokenizedTokens += n;
      if (full) {
        this.position = { source: meta.source, offset: meta.offsets[i], line: meta.firstLine + i + 1 };
        this.textBytes = textBase + meta.ends[i];
        await this.writers[split].completeShard();
        await this.checkpoint();
      }
    }
    this.position = { source: meta.source, offset: meta.offsets[meta.count - 1], line: meta.firstLine + meta.count };
    this.textBytes = textBase + meta.ends[meta.count - 1];
    this.tokenizedTextBytes += meta.ends[meta.count - 1];
    for (const split of DATASET_SPLITS) await this.writers[split].flush();
  }

  /** fsync the open shards, write progress.json, then rename the shards it lists as completed. */
  private async checkpoint(): Promise<void> {
    const open = { train: await this.writers.train.sync(), val: await this.writers.val.sync() };
    const progress: PrepareProgress = {
      format: PROGRESS_FORMAT,
      version: PROGRESS_FORMAT_VERSION,
      datasetId: this.ctx.datasetId,
      identity: this.ctx.identity,
      position: this.position,
      documents: this.documents,
      tokens: this.tokens,
      textBytes: this.textBytes,
      splits: { train: { completed: this.writers.train.completed, open: open.train }, val: { completed: this.writers.val.completed, open: open.val } },
      runs: this.runs,
    };
    await writeProgress(join(this.ctx.out, PROGRESS_FILE), progress);
    for (const split of DATASET_SPLITS) await this.writers[split].commit();
    this.lastCheckpoint = performance.now();
  }

  /** Completes the last shards, writes manifest.json (the dataset's final marker), removes progress.json. */
  private async finish(): Promise<DatasetManifest> {
    if (this.documents === 0) {
      throw new TrainerError(DataErrorCode.CORPUS_EMPTY, `the sources (${this.ctx.sources.length} file(s)) hold no non-empty document`, {
        hint: 'add text: .txt files with content, or .jsonl lines {"text": "..."} with a non-empty text',
      });
    }
    for (const split of DATASET_SPLITS) await this.writers[split].completeShard();
    this.position = { source: this.ctx.sources.length, offset: 0, line: 0 };
    await this.checkpoint();
    const splitManifest = (split: DatasetSplit): SplitManifest => {
      const shards = this.writers[split].completed;
      return { tokens: shards.reduce((n, s) => n + s.tokens, 0), documents: shards.reduce((n, s) => n + s.documents, 0), shards };
    };
    const { tokenizer, identity } = this.ctx;
    const manifest: DatasetManifest = {
      format: DATASET_FORMAT,
      version: DATASET_FORMAT_VERSION,
      datasetId: this.ctx.datasetId,
      tokenizer: { hash: tokenizer.hash, vocabSize: tokenizer.vocabSize, eotToken: tokenizer.eotToken },
      dtype: tokenizer.vocabSize <= 65536 ? 'uint16' : 'uint32',
      bytesPerToken: tokenizer.vocabSize <= 65536 ? 2 : 4,
      valFraction: identity.valFraction,
      shardBytes: identity.shardBytes,
      splits: { train: splitManifest('train'), val: splitManifest('val') },
      totals: { tokens: this.tokens, documents: this.documents, textBytes: this.textBytes },
      sources: identity.sources,
      created: new Date().toISOString(),
    };
    await writeFileAtomic(join(this.ctx.out, MANIFEST_FILE), [Buffer.from(JSON.stringify(manifest, null, 1) + '\n')]);
    await rm(join(this.ctx.out, PROGRESS_FILE), { force: true });
    this.report(true);
    return manifest;
  }

  private shardCount(): number {
    return this.writers.train.completed.length + this.writers.val.completed.length;
  }

  private report(force = false): void {
    const { onProgress, progressIntervalMs } = this.ctx.opts;
    const now = performance.now();
    if (!onProgress || (!force && now - this.lastReport < (progressIntervalMs ?? 1000))) return;
    this.lastReport = now;
    const total = this.ctx.sources.reduce((n, s) => n + s.entry.bytes, 0);
    const read = force ? total : Math.min(total, this.reader ? this.reader.base + this.reader.reader.diskBytesRead : total);
    const seconds = (now - this.runStarted) / 1000;
    const rate = seconds > 0 ? (read - this.diskBytesAtStart) / seconds : 0;
    onProgress({
      diskBytesRead: read,
      diskBytesTotal: total,
      documents: this.documents,
      tokens: this.tokens,
      textBytes: this.textBytes,
      shards: this.shardCount(),
      seconds,
      tokensPerSecond: seconds > 0 ? this.tokenizedTokens / seconds : 0,
      textBytesPerSecond: seconds > 0 ? this.tokenizedTextBytes / seconds : 0,
      etaSeconds: rate > 0 ? (total - read) / rate : undefined,
    });
  }
}
