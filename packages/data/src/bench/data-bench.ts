/**
 * Data pipeline benchmark: prints one JSON line per measurement.
 *
 *   pnpm --filter @trainer/data bench          (after `pnpm build`)
 *   node packages/data/dist/bench/data-bench.js [--repeat N]
 *
 * Measures, on the built-in corpora: BPE training time (moby-dick, vocab 2048), encode throughput
 * with a cold and a warm pre-token cache, corpus sizes in tokens, token-cache build vs reuse, and
 * sampler cost per step. The peer beside our encode numbers is js-tiktoken (the JS port of
 * OpenAI's tiktoken) with the real GPT-2 vocabulary, run on the same text in the same process,
 * next to our tokenizer loaded with that same vocabulary.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tiktoken } from 'js-tiktoken/lite';
import gpt2Ranks from 'js-tiktoken/ranks/gpt2';
import { BatchSampler } from '../batch-sampler.js';
import { BpeTokenizer } from '../bpe-tokenizer.js';
import { trainBpe } from '../bpe-train.js';
import { type Corpus, loadCorpus } from '../corpus.js';
import { prepareTokens } from '../prepare-tokens.js';
import { gpt2FromTiktokenRanks } from './gpt2-vocab.js';

const repeat = Number(process.argv[process.argv.indexOf('--repeat') + 1]) || 3;

function emit(record: Record<string, unknown>): void {
  console.log(JSON.stringify(record));
}

function seconds<T>(fn: () => T): { value: T; seconds: number } {
  const start = performance.now();
  const value = fn();
  return { value, seconds: (performance.now() - start) / 1000 };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function utf8Bytes(corpus: Corpus): number {
  return corpus.documents.reduce((n, d) => n + Buffer.byteLength(d), 0);
}

async function main(): Promise<void> {
  const corpora: Corpus[] = [];
  for (const name of ['moby-dick', 'sotu']) {
    const loaded = await (async () => {
      const start = performance.now();
      const corpus = await loadCorpus(name);
      return { corpus, seconds: (performance.now() - start) / 1000 };
    })();
    corpora.push(loaded.corpus);
    emit({ bench: 'corpus-load', corpus: name, documents: loaded.corpus.documents.length, mbytes: utf8Bytes(loaded.corpus) / 1e6, seconds: loaded.seconds });
  }
  const [moby, sotu] = corpora;

  // Tokenizer training: median of `repeat` runs; every run must produce the same tokenizer.
  const trainTimes: number[] = [];
  let tokenizer: BpeTokenizer | undefined;
  for (let r = 0; r < repeat; r++) {
    const run = seconds(() => trainBpe(moby.documents, { vocabSize: 2048 }));
    trainTimes.push(run.seconds);
    if (tokenizer !== undefined && run.value.hash !== tokenizer.hash) throw new Error('training is not deterministic');
    tokenizer = run.value;
  }
  const tok = tokenizer as BpeTokenizer;
  emit({ bench: 'bpe-train', corpus: 'moby-dick', vocabSize: 2048, runs: repeat, medianSeconds: median(trainTimes), hash: tok.hash });
  const sotuTrain = seconds(() => trainBpe(sotu.documents, { vocabSize: 8192 }));
  emit({ bench: 'bpe-train', corpus: 'sotu', vocabSize: 8192, runs: 1, medianSeconds: sotuTrain.seconds });

  // Encode throughput: cold = fresh instance (empty pre-token cache), warm = same instance again.
  const gpt2 = new Tiktoken(gpt2Ranks);
  const ourGpt2 = gpt2FromTiktokenRanks().tokenizer;
  for (const corpus of corpora) {
    const mb = utf8Bytes(corpus) / 1e6;
    const fresh = BpeTokenizer.fromJSON(tok.toJSON());
    const cold = seconds(() => corpus.documents.reduce((n, d) => n + fresh.encode(d).length, 0));
    const warm = seconds(() => corpus.documents.reduce((n, d) => n + fresh.encode(d).length, 0));
    const peer = seconds(() => corpus.documents.reduce((n, d) => n + gpt2.encode(d).length, 0));
    emit({ bench: 'encode', corpus: corpus.name, vocabSize: tok.vocabSize, tokens: cold.value, mbytes: mb, bytesPerToken: (mb * 1e6) / cold.value, coldMBps: mb / cold.seconds, warmMBps: mb / warm.seconds });
    // Same vocabulary as the peer (GPT-2, 50257): identical ids (see gpt2-equivalence.test.ts).
    const freshGpt2 = BpeTokenizer.fromJSON(ourGpt2.toJSON());
    const same = seconds(() => corpus.documents.reduce((n, d) => n + freshGpt2.encode(d).length, 0));
    emit({ bench: 'encode-gpt2-vocab', corpus: corpus.name, tokens: same.value, coldMBps: mb / same.seconds });
    emit({ bench: 'encode-peer', peer: 'js-tiktoken gpt2 (vocab 50257)', corpus: corpus.name, tokens: peer.value, MBps: mb / peer.seconds });
  }

  // Token cache: first prepareTokens tokenizes and writes, the second reads the files back.
  const cacheDir = await mkdtemp(join(tmpdir(), 'trainer-data-bench-'));
  try {
    for (const corpus of corpora) {
      const build = performance.now();
      const first = await prepareTokens({ corpus, tokenizer: tok, cacheDir });
      const built = (performance.now() - build) / 1000;
      const reuse = performance.now();
      const second = await prepareTokens({ corpus, tokenizer: tok, cacheDir });
      const reused = (performance.now() - reuse) / 1000;
      if (!second.fromCache || first.fromCache) throw new Error('cache did not behave');
      emit({ bench: 'prepare-tokens', corpus: corpus.name, trainTokens: first.train.length, valTokens: first.val.length, splitBy: first.splitBy, buildSeconds: built, cachedSeconds: reused });
    }

    // Sampler: one rank's micro-batch for gpt-nano shapes (batch 8, T 128).
    const { train } = await prepareTokens({ corpus: moby, tokenizer: tok, cacheDir });
    const sampler = new BatchSampler({ tokens: train, contextLength: 128, globalBatch: 8, seed: 1 });
    const steps = 2000;
    const sample = seconds(() => {
      for (let s = 0; s < steps; s++) sampler.batch(s, { rank: 0, dpSize: 1, microBatch: 8, micro: 0 });
    });
    emit({ bench: 'sampler', globalBatch: 8, contextLength: 128, microsecondsPerStep: (sample.seconds / steps) * 1e6 });
  } finally {
    await rm(cacheDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
