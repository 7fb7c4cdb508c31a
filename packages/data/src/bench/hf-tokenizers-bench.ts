/**
 * Published tokenizers, ours against @huggingface/tokenizers (transformers.js's tokenizers), on
 * the same text in the same process: Moby Dick's paragraphs encoded one by one (without special
 * tokens). Prints one JSON line per tokenizer; the run fails if the ids differ anywhere.
 *
 *   pnpm --filter @trainer/data bench:tokenizers            (after `pnpm build`)
 *   node packages/data/dist/bench/hf-tokenizers-bench.js [--repeat N] [--only llama3,gemma]
 *
 * "cold": a fresh tokenizer of each implementation per run (empty caches, as when a corpus is
 * tokenized once); "warm": the same instances again. Runs alternate which implementation goes
 * first. Target: ours >= 1x theirs, cold.
 */
import { readFile } from 'node:fs/promises';
import { Tokenizer } from '@huggingface/tokenizers';
import { BpeTokenizer } from '../bpe-tokenizer.js';
import { loadCorpus } from '../corpus.js';
import { PUBLISHED_TOKENIZERS, type PublishedTokenizerName, publishedTokenizerPath } from './published-tokenizers.js';

const argValue = (flag: string): string | undefined => (process.argv.includes(flag) ? process.argv[process.argv.indexOf(flag) + 1] : undefined);
const repeat = Number(argValue('--repeat')) || 3;
const only = argValue('--only')?.split(',');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Seconds to encode every text, and all ids (to compare). */
function encodeAll(encode: (text: string) => number[], texts: readonly string[]): { seconds: number; ids: number[] } {
  const start = performance.now();
  const ids: number[] = [];
  for (const text of texts) {
    const some = encode(text);
    for (let i = 0; i < some.length; i++) ids.push(some[i]);
  }
  return { seconds: (performance.now() - start) / 1000, ids };
}

function sameIds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((id, i) => id === b[i]);
}

async function benchOne(name: PublishedTokenizerName, texts: readonly string[], mbytes: number): Promise<void> {
  const json = JSON.parse(await readFile(publishedTokenizerPath(name), 'utf8')) as object;
  const load = { ours: [] as number[], theirs: [] as number[] };
  const cold = { ours: [] as number[], theirs: [] as number[] };
  const warm = { ours: [] as number[], theirs: [] as number[] };
  let tokens = 0;
  for (let r = 0; r < repeat; r++) {
    let start = performance.now();
    const ours = BpeTokenizer.fromJSON(json);
    load.ours.push((performance.now() - start) / 1000);
    start = performance.now();
    const theirs = new Tokenizer(json, {});
    load.theirs.push((performance.now() - start) / 1000);
    const runOurs = (): { seconds: number; ids: number[] } => encodeAll((t) => ours.encode(t), texts);
    const runTheirs = (): { seconds: number; ids: number[] } => encodeAll((t) => theirs.encode(t, { add_special_tokens: false }).ids, texts);
    const [a, b] = r % 2 === 0 ? [runOurs(), runTheirs()] : [runTheirs(), runOurs()].reverse();
    if (!sameIds(a.ids, b.ids)) throw new Error(`${name}: ours and @huggingface/tokenizers disagree`);
    cold.ours.push(a.seconds);
    cold.theirs.push(b.seconds);
    warm.ours.push(runOurs().seconds);
    warm.theirs.push(runTheirs().seconds);
    tokens = a.ids.length;
  }
  const perSecond = (seconds: number): number => Math.round(tokens / seconds);
  console.log(JSON.stringify({
    bench: 'tokenizer-encode',
    tokenizer: name,
    file: `${PUBLISHED_TOKENIZERS[name]}/models/tokenizer.json`,
    corpus: 'moby-dick paragraphs',
    mbytes: Number(mbytes.toFixed(2)),
    tokens,
    runs: repeat,
    oursColdTokensPerSecond: perSecond(median(cold.ours)),
    peer: '@huggingface/tokenizers 0.2.0',
    peerColdTokensPerSecond: perSecond(median(cold.theirs)),
    coldRatio: Number((median(cold.theirs) / median(cold.ours)).toFixed(2)),
    warmRatio: Number((median(warm.theirs) / median(warm.ours)).toFixed(2)),
    oursLoadSeconds: Number(median(load.ours).toFixed(3)),
    peerLoadSeconds: Number(median(load.theirs).toFixed(3)),
  }));
}

async function main(): Promise<void> {
  const corpus = await loadCorpus('moby-dick');
  const texts = corpus.documents.flatMap((d) => d.split('\n')).filter((p) => p.length > 0);
  const mbytes = texts.reduce((n, t) => n + Buffer.byteLength(t), 0) / 1e6;
  for (const name of Object.keys(PUBLISHED_TOKENIZERS) as PublishedTokenizerName[]) {
    if (!only || only.includes(name)) await benchOne(name, texts, mbytes);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
