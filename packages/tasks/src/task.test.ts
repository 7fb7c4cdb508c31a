import { describe, expect, it } from 'vitest';
import { BpeTokenizer, trainBpe } from '@trainer/data';
import { thrownSummary as codeOf } from '@trainer/errors';
import { encodeTask, rowsOf, TaskBatchSampler, taskValidationBatches } from './task-batches.js';
import { groupByPrompt, parseTaskJsonl, splitByPrompt } from './task-file.js';
import { buildCmudictTask } from './cmudict-task.js';

const tokenizer: BpeTokenizer = trainBpe(['word: cat\npronunciation: K AE1 T', 'word: dog\npronunciation: D AO1 G'], { vocabSize: 270 });

describe('task files', () => {
  it('parses prompt/completion lines and skips blank ones', () => {
    const ex = parseTaskJsonl('{"prompt":"a","completion":" b","extra":1}\n\n{"prompt":"c","completion":" d"}\n', 't.jsonl');
    expect(ex).toEqual([{ prompt: 'a', completion: ' b', line: 1 }, { prompt: 'c', completion: ' d', line: 3 }]);
  });

  it('names the file and line of a malformed example', () => {
    expect(codeOf(() => parseTaskJsonl('{"prompt":"a","completion":"b"}\n{"prompt":"a"', 't.jsonl'))).toMatch(/^TRAINER_ERR_TASK_FORMAT: t\.jsonl:2: not valid JSON/);
    expect(codeOf(() => parseTaskJsonl('[1]', 't.jsonl'))).toMatch(/^TRAINER_ERR_TASK_FORMAT: t\.jsonl:1: not a JSON object/);
    expect(codeOf(() => parseTaskJsonl('\n{"prompt":"a"}', 't.jsonl'))).toMatch(/t\.jsonl:2: no "completion" field/);
    expect(codeOf(() => parseTaskJsonl('{"prompt":3,"completion":"b"}', 't.jsonl'))).toMatch(/t\.jsonl:1: "prompt" is not a string/);
    expect(codeOf(() => parseTaskJsonl('{"prompt":"","completion":"b"}', 't.jsonl'))).toMatch(/"prompt" is empty/);
    expect(codeOf(() => parseTaskJsonl('{"prompt":"a","completion":""}', 't.jsonl'))).toMatch(/"completion" is empty/);
    expect(codeOf(() => parseTaskJsonl('\n  \n', 't.jsonl'))).toMatch(/^TRAINER_ERR_TASK_EMPTY/);
  });

  it('groups references by prompt and splits deterministically by prompt', () => {
    const ex = parseTaskJsonl(['{"prompt":"a","completion":"1"}', '{"prompt":"b","completion":"2"}', '{"prompt":"a","completion":"3"}'].join('\n'), 't');
    expect(groupByPrompt(ex)).toEqual([{ prompt: 'a', references: ['1', '3'] }, { prompt: 'b', references: ['2'] }]);
    const many = Array.from({ length: 400 }, (_, i) => ({ prompt: `p${i % 200}`, line: i }));
    const s = splitByPrompt(many, 0.25);
    expect(splitByPrompt([...many].reverse(), 0.25).heldOut.map((e) => e.line).sort()).toEqual(s.heldOut.map((e) => e.line).sort());
    expect(s.heldOut.length).toBeGreaterThan(50);
    expect(s.heldOut.length).toBeLessThan(150);
    const held = new Set(s.heldOut.map((e) => e.prompt));
    expect(s.train.some((e) => held.has(e.prompt))).toBe(false);
  });
});

describe('task batches', () => {
  const examples = parseTaskJsonl(['{"prompt":"word: cat\\npronunciation:","completion":" K AE1 T"}', '{"prompt":"word: dog\\npronunciation:","completion":" D AO1 G"}'].join('\n'), 't');

  it('masks prompt and padding targets: only the completion and the end marker count', () => {
    const enc = encodeTask(examples, tokenizer, 40);
    const e = enc[0];
    const prompt = tokenizer.encode(examples[0].prompt);
    const completion = tokenizer.encode(examples[0].completion);
    expect(e.trainedTargets).toBe(completion.length + 1);
    expect([...e.ids]).toEqual([...prompt, ...completion, tokenizer.eotToken]);
    const T = 40;
    const rows = rowsOf([e], T, tokenizer.eotToken);
    const counted = [...rows.targets].map((t, i) => [i, t]).filter(([, t]) => t >= 0);
    // position p predicts ids[p + 1]: the first counted is the last prompt position
    expect(counted.map(([i]) => i)).toEqual(Array.from({ length: completion.length + 1 }, (_, k) => prompt.length - 1 + k));
    expect(counted.map(([, t]) => t)).toEqual([...completion, tokenizer.eotToken]);
    expect([...rows.tokens.subarray(0, e.ids.length)]).toEqual([...e.ids]);
    expect([...rows.tokens.subarray(e.ids.length)].every((t) => t === tokenizer.eotToken)).toBe(true);
  });

  it('refuses an example longer than a row, naming its line', () => {
    expect(codeOf(() => encodeTask(examples, tokenizer, 5, 'task.jsonl'))).toMatch(/^TRAINER_ERR_TASK_TOO_LONG: task\.jsonl:1: the example has \d+ tokens/);
  });

  it('draws the same global batch whatever the number of data-parallel ranks', () => {
    const enc = encodeTask([...examples, ...examples, ...examples], tokenizer, 40);
    const s = new TaskBatchSampler(enc, { seqLen: 40, globalBatch: 8, seed: 3, pad: tokenizer.eotToken });
    const one = s.batch(5, { rank: 0, dpSize: 1, microBatch: 8, micro: 0 });
    const sameRows = (a: Int32Array, row: number) => expect([...a]).toEqual([...one.targets.subarray(row * 40, (row + 1) * 40)]);
    sameRows(s.batch(5, { rank: 3, dpSize: 4, microBatch: 1, micro: 1 }).targets, 7);
    sameRows(s.batch(5, { rank: 0, dpSize: 8, microBatch: 1, micro: 0 }).targets, 0);
    const half = s.batch(5, { rank: 1, dpSize: 2, microBatch: 2, micro: 1 });
    expect([...half.tokens]).toEqual([...one.tokens.subarray(6 * 40, 8 * 40)]);
    expect(s.indices(5)).toEqual(s.indices(5));
    expect(s.indices(6)).not.toEqual(s.indices(5));
  });

  it('yields held-out batches in file order', () => {
    const enc = encodeTask(examples, tokenizer, 40);
    const batches = [...taskValidationBatches(enc, 40, tokenizer.eotToken, 1)];
    expect(batches.map((b) => b.batch)).toEqual([1, 1]);
    expect([...batches[1].tokens.subarray(0, enc[1].ids.length)]).toEqual([...enc[1].ids]);
    expect([...taskValidationBatches(enc, 40, tokenizer.eotToken, 1, 1)].length).toBe(1);
  });
});

describe('the CMUdict task', () => {
  const dict = { CAT: 'K AE1 T', 'CAT(1)': 'K AE2 T', DOG: 'D AO1 G', "DON'T": 'D OW1 N T', X: 'EH1 K S', A42: 'EY1', ABCDEFGHIJKL: 'EY1' };
  it('keeps plain words, puts every pronunciation of a word on one side of the split', () => {
    const { train, test } = buildCmudictTask(dict, { testFraction: 0.5 });
    const all = [...train, ...test];
    expect(all.map((e) => e.prompt).sort()).toEqual(['word: cat\npronunciation:', 'word: cat\npronunciation:', 'word: dog\npronunciation:']);
    const cats = all.filter((e) => e.prompt.includes('cat'));
    expect(new Set(cats.map((e) => (train.includes(e) ? 'train' : 'test'))).size).toBe(1);
    expect(cats.map((e) => e.completion).sort()).toEqual([' K AE1 T', ' K AE2 T']);
  });
});
