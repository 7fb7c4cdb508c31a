import type { Command } from 'commander';
import { BpeTokenizer } from '@trainer/data';
import { TrainerError } from '@trainer/errors';
import type { SavedModel } from '@trainer/launcher';
import { GPT } from '@trainer/model';
import { formatBleu, loadTaskFile } from '@trainer/tasks';
import { int, num, oneOf } from '../parse.js';
import { evaluateTask } from '../task-eval.js';

/** `trainer eval MODEL --task task.jsonl --metric bleu|exact`: generation scored against the task's completions. */
export const TASK_METRICS = ['bleu', 'exact'] as const;

export interface TaskEvalCliOptions {
  task?: string;
  metric: (typeof TASK_METRICS)[number];
  maxNewTokens: number;
  temperature: number;
  topK: number;
  seed: number;
  limit?: number;
  show: number;
  json?: boolean;
}

export function addTaskEvalOptions(cmd: Command): Command {
  return cmd
    .option('--task <file>', 'generate a completion for every prompt of this task file (.jsonl of {"prompt", "completion"}) and score it')
    .option('--metric <name>', `with --task: the headline metric (${TASK_METRICS.join(', ')}); both are reported`, oneOf(TASK_METRICS), 'bleu')
    .option('--max-new-tokens <n>', 'with --task: longest completion generated', int(1), 48)
    .option('--temperature <x>', 'with --task: sampling temperature (0: greedy)', num(0), 0)
    .option('--top-k <n>', 'with --task and a temperature: sample among the k most likely tokens (0: all)', int(0), 0)
    .option('--seed <n>', 'with --task and a temperature: sampling seed', int(0), 0)
    .option('--limit <n>', 'with --task: only the first n prompts', int(1))
    .option('--show <n>', 'with --task: print this many predictions beside their references', int(0), 5);
}

export async function runTaskEval(saved: SavedModel & { dir: string }, o: TaskEvalCliOptions & { task: string }): Promise<number> {
  if (!saved.tokenizerJson) throw new TrainerError('TRAINER_ERR_MODEL_FORMAT', `${saved.dir} has no tokenizer`, { hint: 'task evaluation needs the tokenizer the model was trained with' });
  const tokenizer = BpeTokenizer.fromJSON(JSON.parse(saved.tokenizerJson));
  let examples = await loadTaskFile(o.task);
  if (o.limit !== undefined) {
    const prompts = new Set<string>();
    examples = examples.filter((e) => (prompts.has(e.prompt) || prompts.size < o.limit! ? (prompts.add(e.prompt), true) : false));
  }
  const model = new GPT(saved.config);
  model.setParams(saved.params);
  const started = performance.now();
  let result;
  try {
    result = await evaluateTask(model, tokenizer, examples, {
      maxNewTokens: o.maxNewTokens, temperature: o.temperature, topK: o.topK, seed: o.seed,
      onPrompt: o.json ? undefined : (done, total) => { if (done % 50 === 0 || done === total) process.stderr.write(`generated ${done}/${total}\n`); },
    });
  } finally {
    model.dispose();
  }
  const seconds = (performance.now() - started) / 1000;
  const headline = o.metric === 'bleu' ? result.bleu.score : 100 * result.exactMatch;
  if (o.json) {
    const { predictions, ...figures } = result;
    process.stdout.write(JSON.stringify({ metric: o.metric, score: headline, ...figures, seconds, samples: predictions.slice(0, o.show) }) + '\n');
    return 0;
  }
  for (const p of result.predictions.slice(0, o.show)) {
    process.stdout.write(`${JSON.stringify(p.prompt)} -> ${JSON.stringify(p.prediction)}   (reference: ${p.references.map((r) => JSON.stringify(r)).join(' | ')})${p.exact ? '  exact' : ''}\n`);
  }
  process.stdout.write(`${formatBleu(result.bleu)}\n`);
  process.stdout.write(`exact match ${(100 * result.exactMatch).toFixed(2)}% of ${result.prompts} prompts (${seconds.toFixed(1)} s)\n`);
  process.stdout.write(`${o.metric === 'bleu' ? 'BLEU' : 'exact match'}: ${headline.toFixed(2)}\n`);
  return 0;
}
