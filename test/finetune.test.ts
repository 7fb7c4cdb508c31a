import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BpeTokenizer } from '@trainer/data';
import { loadModelDir } from '@trainer/launcher';
import { GPT, initBackend } from '@trainer/model';
// @trainer/tasks is a dependency of the launcher and the CLI, not of the workspace root.
import { encodeTask, loadTaskFile, splitByPrompt, TaskBatchSampler } from '@trainer/tasks';
import { killAllStarted, runTrainer } from './helpers/processes.js';
import { tinyJobArgs, tinyWorkspace } from './helpers/tiny-run.js';

afterEach(() => killAllStarted());

const ws = tinyWorkspace();
const pretrained = ws.out('pretrained');
const task = join(ws.dir, 'task.jsonl');
const pairs = [
  ['The whale', ' swam past the ship'], ['Call me', ' Ishmael'], ['The sea was', ' calm and the sky was grey'], ['A harpoon', ' flew and missed'],
  ['The crew sang', ' songs of home'], ['the wind', ' rose'], ['the great white', ' whale'], ['said the sailor to', ' the captain'],
  ['over the', ' harbour'], ['The ship', ' at dawn'], ['songs of', ' home while the wind rose'], ['the sky', ' was grey'],
];
const FT = ['--backend', 'wasm', '--steps', '6', '--global-batch', '4', '--lr', '3e-3', '--warmup-steps', '1', '--eval-every', '3', '--eval-batches', '1', '--val-fraction', '0.2', '--sample-tokens', '0', '--seed', '7'];

function losses(out: string): number[] {
  return (JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { losses: number[] }).losses;
}

beforeAll(async () => {
  writeFileSync(task, pairs.map(([prompt, completion]) => JSON.stringify({ prompt, completion })).join('\n') + '\n');
  // 2 blocks, so that a pipeline of 2 stages can fine-tune it too
  const r = await runTrainer(['launch', '--nodes', '1', ...tinyJobArgs(ws, ['--out', pretrained, '--steps', '6', '--layers', '2'])]);
  expect(r.code, r.stdout + r.stderr).toBe(0);
}, 120_000);

describe('trainer finetune (multi-process)', () => {
  it('starts from the pretrained parameters and counts only completion tokens in the loss', async () => {
    const out = ws.out('ft-1');
    const r = await runTrainer(['finetune', '--from', pretrained, '--data', task, '--nodes', '1', '--out', out, ...FT]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    // The first step's loss, recomputed here: the pretrained model on step 0's rows, prompt targets masked.
    await initBackend('wasm', () => undefined);
    const saved = await loadModelDir(join(pretrained, 'model'));
    const tokenizer = BpeTokenizer.fromJSON(JSON.parse(saved.tokenizerJson!));
    const { train } = splitByPrompt(await loadTaskFile(task), 0.2);
    const seqLen = (JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { seq_len: number }).seq_len;
    const encoded = encodeTask(train, tokenizer, seqLen);
    const sampler = new TaskBatchSampler(encoded, { seqLen, globalBatch: 4, seed: 7, pad: tokenizer.eotToken });
    const rows = sampler.batch(0, { rank: 0, dpSize: 1, microBatch: 4, micro: 0 });
    const gpt = new GPT(saved.config);
    gpt.setParams(saved.params);
    const expected = await gpt.loss(rows.tokens, rows.targets, rows.batch);
    gpt.dispose();
    expect(expected.count).toBe([...rows.targets].filter((t) => t >= 0).length);
    // counted: each row's completion tokens and its end marker, nothing of the prompt or the padding
    expect(expected.count).toBe(sampler.indices(0).reduce((n, i) => n + encoded[i].trainedTargets, 0));
    expect(losses(out)[0]).toBeCloseTo(expected.loss, 4);
    const l = losses(out);
    expect(l[l.length - 1]).toBeLessThan(l[0]);
  }, 120_000);

  it('follows the same trajectory on 2 workers, with ZeRO-2, tensor and pipeline parallelism', async () => {
    const one = losses(ws.out('ft-1'));
    for (const [name, extra] of [['ft-dp2', ['--nodes', '2']], ['ft-zero2', ['--nodes', '2', '--zero', '2']], ['ft-tp2', ['--nodes', '2', '--tp', '2']], ['ft-pp2', ['--nodes', '2', '--pp', '2']]] as const) {
      const out = ws.out(name);
      const r = await runTrainer(['finetune', '--from', pretrained, '--data', task, '--out', out, ...FT, ...extra]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const l = losses(out);
      expect(l.length).toBe(one.length);
      l.forEach((x, i) => expect(Math.abs(x - one[i]) / one[i], `${name} step ${i}`).toBeLessThan(1e-4));
    }
  }, 240_000);

  it('fine-tunes from a Hugging Face export exactly as from the run', async () => {
    const exported = ws.out('hf');
    expect((await runTrainer(['export', pretrained, '--out', exported])).code).toBe(0);
    const out = ws.out('ft-hf');
    const r = await runTrainer(['finetune', '--from', exported, '--data', task, '--nodes', '1', '--out', out, ...FT]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(losses(out)).toEqual(losses(ws.out('ft-1')));
  }, 120_000);

  it('scores completions with BLEU and exact match, and writes a report of the run', async () => {
    const before = await runTrainer(['eval', pretrained, '--task', task, '--json', '--backend', 'wasm', '--max-new-tokens', '8']);
    expect(before.code, before.stderr).toBe(0);
    const b = JSON.parse(before.stdout) as { metric: string; score: number; prompts: number; bleu: { score: number; hypLength: number }; exactMatch: number; samples: unknown[] };
    expect(b).toMatchObject({ metric: 'bleu', prompts: pairs.length });
    expect(b.score).toBe(b.bleu.score);
    expect(b.bleu.hypLength).toBeGreaterThan(0);
    const exact = await runTrainer(['eval', ws.out('ft-1'), '--task', task, '--metric', 'exact', '--json', '--backend', 'wasm', '--limit', '3']);
    const e = JSON.parse(exact.stdout) as { metric: string; score: number; prompts: number; exactMatch: number };
    expect(e).toMatchObject({ metric: 'exact', prompts: 3 });
    expect(e.score).toBeCloseTo(100 * e.exactMatch, 10);
    const report = await runTrainer(['report', ws.out('ft-dp2')]);
    expect(report.code, report.stderr).toBe(0);
    const html = readFileSync(join(ws.out('ft-dp2'), 'report.html'), 'utf8');
    expect(html).toContain('fine-tuning');
    expect(html).toContain('data-points="6"');
  }, 120_000);

  it('refuses a malformed task file, naming the line, before any worker starts', async () => {
    const bad = join(ws.dir, 'bad.jsonl');
    writeFileSync(bad, '{"prompt": "a", "completion": " b"}\n{"prompt": "c"}\n');
    const r = await runTrainer(['finetune', '--from', pretrained, '--data', bad, '--nodes', '2', '--out', ws.out('bad'), ...FT]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`TRAINER_ERR_TASK_FORMAT: ${bad}:2: no "completion" field`);
    const long = join(ws.dir, 'long.jsonl');
    writeFileSync(long, JSON.stringify({ prompt: 'The whale', completion: ' swam'.repeat(40) }) + '\n');
    const r2 = await runTrainer(['finetune', '--from', pretrained, '--data', long, '--out', ws.out('long'), ...FT]);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/TRAINER_ERR_TASK_TOO_LONG: .*long\.jsonl:1: the example has \d+ tokens/);
    const r3 = await runTrainer(['finetune', '--from', pretrained, '--data', task, '--layers', '3', '--out', ws.out('x'), ...FT]);
    expect(r3.code).toBe(2);
    expect(r3.stderr).toMatch(/TRAINER_ERR_USAGE: --layers does not apply to finetune/);
  }, 120_000);
});
