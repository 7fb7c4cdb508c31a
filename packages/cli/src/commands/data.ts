import { join } from 'node:path';
import { rename, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { Command, Option } from 'commander';
import { BpeTokenizer, DEFAULT_DATASET_VAL_FRACTION, DEFAULT_SHARD_BYTES, prepareDataset, type PrepareProgressReport } from '@trainer/data';
import { createLogger } from '@trainer/launcher';
import { exitCode } from '../action.js';
import { int, num, parseByteSize } from '../parse.js';

/** Seconds between progress lines when stderr is not a terminal. */
const LOG_EVERY_SECONDS = 5;

interface PrepareFlags {
  data: string[];
  tokenizer: string;
  out: string;
  shardSize: number;
  threads: number;
  valFraction: number;
  overwrite: boolean;
}

/**
 * `trainer data prepare`: tokenize sources into a sharded dataset (packages/data/src/dataset).
 * Progress: a bar redrawn in place on a terminal (stderr), else a log line every few seconds.
 * Ctrl-C / SIGTERM save progress and exit 130 / 143; the same command then resumes.
 */
export function dataCommand(): Command {
  const cmd = new Command('data').description('datasets: tokenize corpora into shard files for training');
  cmd
    .command('prepare')
    .description('tokenize .txt/.jsonl files (also .gz, .zst), folders or built-in corpora into token shards, a document index and manifest.json; resumable')
    .requiredOption('--data <source...>', 'moby-dick, sotu, .txt/.jsonl files (optionally .gz or .zst) and folders of them')
    .requiredOption('--tokenizer <file>', "tokenizer: trainer's tokenizer.json, a Hugging Face tokenizer.json, GPT-2 vocab.json + merges.txt, or a model folder")
    .requiredOption('--out <dir>', 'output folder (shards, manifest.json)')
    .addOption(new Option('--shard-size <size>', 'target size of a shard file (shards end on a document end)').argParser(parseByteSize).default(DEFAULT_SHARD_BYTES, '256MiB'))
    .addOption(new Option('--threads <n>', 'tokenizer threads (the output does not depend on it)').argParser(int(1, 1024)).default(availableParallelism(), `all cores: ${availableParallelism()}`))
    .option('--val-fraction <f>', 'fraction of documents held out for validation, chosen by content hash', num(0, 0.5), DEFAULT_DATASET_VAL_FRACTION)
    .option('--overwrite', 'replace a dataset or unfinished run of other inputs in --out', false)
    .action(exitCode(prepareAction));
  return cmd;
}

async function prepareAction(o: PrepareFlags): Promise<number> {
  const log = createLogger({ base: { role: 'data' } });
  const abort = new AbortController();
  let signalCode = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signalCode !== 0) process.exit(signalCode); // a second Ctrl-C: stop now (the last checkpoint still resumes)
    signalCode = signal === 'SIGINT' ? 130 : 143;
    log.warn(`${signal} received: saving progress (again to stop at once)`);
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const bar = process.stderr.isTTY ? new ProgressBar() : undefined;
  let lastLine = 0;
  try {
    const result = await prepareDataset({
      data: o.data,
      tokenizer: o.tokenizer,
      out: o.out,
      shardBytes: o.shardSize,
      threads: o.threads,
      valFraction: o.valFraction,
      overwrite: o.overwrite,
      signal: abort.signal,
      progressIntervalMs: bar ? 250 : 1000,
      onProgress: (p) => {
        if (bar) return bar.draw(p);
        if (p.seconds - lastLine < LOG_EVERY_SECONDS) return;
        lastLine = p.seconds;
        log.info({ ...roundReport(p) }, `read ${percent(p)} of ${mb(p.diskBytesTotal)}: ${p.tokens} tokens, ${Math.round(p.tokensPerSecond)} tokens/s`);
      },
      log: (message) => {
        bar?.clear();
        log.info(message);
      },
    });
    bar?.clear();
    if (result.status === 'interrupted') return signalCode || 130;
    const m = result.manifest!;
    // The tokenizer goes with the data: training on the folder uses it unless --tokenizer says otherwise (and must match it).
    const tokenizer = await BpeTokenizer.load(o.tokenizer);
    if (tokenizer.hash !== m.tokenizer.hash) throw new Error(`internal: the tokenizer changed while the dataset was prepared`);
    await writeFile(join(o.out, 'tokenizer.json.tmp'), JSON.stringify(tokenizer.toJSON()));
    await rename(join(o.out, 'tokenizer.json.tmp'), join(o.out, 'tokenizer.json'));
    const shards = m.splits.train.shards.length + m.splits.val.shards.length;
    const rate = result.seconds > 0 ? result.tokenizedTokens / result.seconds : 0;
    log.info({
      status: result.status,
      out: o.out,
      tokens: m.totals.tokens,
      documents: m.totals.documents,
      trainTokens: m.splits.train.tokens,
      valTokens: m.splits.val.tokens,
      shards,
      threads: result.threads,
      seconds: Number(result.seconds.toFixed(2)),
      tokenizedDocuments: result.tokenizedDocuments,
      tokenizedTokens: result.tokenizedTokens,
      resumedFromDocument: result.resumedFrom?.documents ?? null,
      resumedShards: result.resumedFrom?.shards ?? null,
      tokensPerSecond: Math.round(rate),
      MBps: Number((result.tokenizedTextBytes / 1e6 / Math.max(result.seconds, 1e-9)).toFixed(2)),
    }, result.status === 'already-done'
      ? `${o.out} already holds this dataset: ${m.totals.tokens} tokens in ${shards} shard(s)`
      : `prepared ${o.out}: ${m.totals.documents} documents, ${m.splits.train.tokens} train + ${m.splits.val.tokens} val tokens in ${shards} shard(s) (${m.dtype})`);
    return 0;
  } finally {
    bar?.clear();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

function percent(p: PrepareProgressReport): string {
  return `${((100 * p.diskBytesRead) / Math.max(1, p.diskBytesTotal)).toFixed(1)}%`;
}

function roundReport(p: PrepareProgressReport): Record<string, number | null> {
  return {
    diskBytesRead: p.diskBytesRead,
    diskBytesTotal: p.diskBytesTotal,
    documents: p.documents,
    tokens: p.tokens,
    shards: p.shards,
    tokensPerSecond: Math.round(p.tokensPerSecond),
    etaSeconds: p.etaSeconds === undefined ? null : Math.round(p.etaSeconds),
  };
}

function duration(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return '--:--';
  const s = Math.round(seconds);
  const hms = [Math.floor(s / 3600), Math.floor((s % 3600) / 60), s % 60];
  return (hms[0] > 0 ? hms : hms.slice(1)).map((v, i) => (i === 0 ? String(v) : String(v).padStart(2, '0'))).join(':');
}

/** One line on a terminal, redrawn with \r: bar, bytes read of total, tokens/s, ETA. */
class ProgressBar {
  private drawn = false;

  draw(p: PrepareProgressReport): void {
    const width = 30;
    const fraction = Math.min(1, p.diskBytesRead / Math.max(1, p.diskBytesTotal));
    const filled = Math.round(fraction * width);
    const line = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${percent(p)} ${mb(p.diskBytesRead)}/${mb(p.diskBytesTotal)}  ${Math.round(p.tokensPerSecond).toLocaleString('en-US')} tokens/s  ${p.shards} shards  ETA ${duration(p.etaSeconds)}`;
    const columns = process.stderr.columns ?? 120;
    process.stderr.write(`\r${line.slice(0, columns - 1)}\x1b[K`);
    this.drawn = true;
  }

  clear(): void {
    if (!this.drawn) return;
    process.stderr.write('\r\x1b[K');
    this.drawn = false;
  }
}
