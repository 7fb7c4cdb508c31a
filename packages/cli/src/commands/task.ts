import { exitCode } from '../action.js';
import { Command } from 'commander';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { buildCmudictTask, loadCmudict, writeTaskFile } from '@trainer/tasks';
import { int, num } from '../parse.js';

/** `trainer task cmudict --out DIR`: the example fine-tuning task, written as train/test task files. */
export function taskCommand(): Command {
  const task = new Command('task').description('write example task files for fine-tuning and evaluation');
  task.addCommand(new Command('cmudict')
    .description('English word -> pronunciation (CMU Pronouncing Dictionary, from the npm registry) with a held-out split by word')
    .requiredOption('--out <dir>', 'folder for train.jsonl and test.jsonl')
    .option('--test-fraction <x>', 'share of words held out', num(0.001, 0.5), 0.02)
    .option('--test-words <n>', 'at most this many test words (0: all held out)', int(0), 200)
    .option('--train-examples <n>', 'at most this many training examples (0: all)', int(0), 0)
    .option('--max-word-length <n>', 'longest word kept (letters)', int(2, 40), 10)
    .action(exitCode(async (o: { out: string; testFraction: number; testWords: number; trainExamples: number; maxWordLength: number }) => {
      const { train, test } = buildCmudictTask(loadCmudict(), { testFraction: o.testFraction, maxTestWords: o.testWords, maxTrainExamples: o.trainExamples, maxWordLength: o.maxWordLength });
      await mkdir(o.out, { recursive: true });
      await writeTaskFile(join(o.out, 'train.jsonl'), train);
      await writeTaskFile(join(o.out, 'test.jsonl'), test);
      const words = new Set(test.map((e) => e.prompt)).size;
      process.stdout.write(`wrote ${train.length} training examples to ${join(o.out, 'train.jsonl')} and ${test.length} test examples (${words} words, unseen in training) to ${join(o.out, 'test.jsonl')}\n`);
      return 0;
    })));
  return task;
}
