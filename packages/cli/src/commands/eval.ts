import { exitCode } from '../action.js';
import { Command } from 'commander';
import { BpeTokenizer, loadCorpus, loadTokenIdsFile, prepareTokens, validationBatches } from '@trainer/data';
import { TrainerError } from '@trainer/errors';
import { defaultCacheDir } from '@trainer/launcher';
import { GPT, initBackend } from '@trainer/model';
import { loadModelFrom } from '../model-source.js';
import { int, num, oneOf } from '../parse.js';
import { BACKENDS } from '../train-options.js';
import { addTaskEvalOptions, runTaskEval, type TaskEvalCliOptions } from './eval-task.js';

interface EvalOptions extends TaskEvalCliOptions {
  tokenIds?: string;
  data?: string[];
  batches: number;
  batchSize: number;
  valFraction: number;
  cacheDir?: string;
  backend: (typeof BACKENDS)[number];
  json?: boolean;
}

/**
 * Perplexity of a saved model: mean next-token cross-entropy (nats) over every predicted token,
 * and exp of it. On a JSON file of token-id sequences (each scored as one sequence), or on the
 * held-out split of a corpus (windows of the model's context).
 */
export function evalCommand(): Command {
  return addTaskEvalOptions(new Command('eval')
    .description('validation loss and perplexity of a saved model (a run folder or its model/ folder); with --task, BLEU and exact match of its completions')
    .argument('<model>', 'run folder or model folder')
    .option('--token-ids <file>', 'JSON array of token-id sequences, each scored as one sequence')
    .option('--data <source...>', 'score the held-out split of this corpus instead (moby-dick, sotu, paths)')
    .option('--batches <n>', 'with --data: at most this many batches', int(1), 50)
    .option('--batch-size <n>', 'with --data: sequences per batch', int(1), 8)
    .option('--val-fraction <x>', 'with --data: held-out share (as in training)', num(0.0001, 0.5), 0.05)
    .option('--cache-dir <dir>', 'token cache folder')
    .option('--backend <name>', `compute backend: ${BACKENDS.join(', ')}`, oneOf(BACKENDS), 'auto')
    .option('--json', 'print one JSON object'))
    .action(exitCode(async (path: string, o: EvalOptions) => {
      const saved = await loadModelFrom(path);
      await initBackend(o.backend, o.json ? () => undefined : (m) => process.stderr.write(m + '\n'));
      if (o.task) return runTaskEval(saved, { ...o, task: o.task });
      const model = new GPT(saved.config);
      model.setParams(saved.params);
      let lossSum = 0;
      let count = 0;
      try {
        if (o.tokenIds) {
          const sequences = await loadTokenIdsFile(o.tokenIds, { vocabSize: saved.config.vocabSize });
          for (const [i, seq] of sequences.entries()) {
            if (seq.length > saved.config.contextLength + 1) {
              throw new TrainerError('TRAINER_ERR_SEQUENCE_TOO_LONG', `sequence ${i} of ${o.tokenIds} has ${seq.length} tokens; the model scores at most ${saved.config.contextLength + 1} (its context plus the last target)`, {
                hint: 'split long sequences into windows of the model\'s context length',
              });
            }
            if (seq.length < 2) continue;
            const r = await model.loss(Int32Array.from(seq.slice(0, -1)), Int32Array.from(seq.slice(1)), 1);
            lossSum += r.loss * r.count;
            count += r.count;
          }
        } else {
          if (!saved.tokenizerJson) throw new TrainerError('TRAINER_ERR_MODEL_FORMAT', `${saved.dir} has no tokenizer.json to tokenize a corpus with`, { hint: 'use --token-ids with already tokenized data' });
          const tokenizer = BpeTokenizer.fromJSON(JSON.parse(saved.tokenizerJson));
          const corpus = await loadCorpus(o.data && o.data.length ? (o.data.length === 1 ? o.data[0] : o.data) : 'moby-dick');
          const split = await prepareTokens({ corpus, tokenizer, cacheDir: o.cacheDir ?? defaultCacheDir(), valFraction: o.valFraction });
          for (const b of validationBatches(split.val, saved.config.contextLength, o.batchSize, o.batches)) {
            const r = await model.loss(b.tokens, b.targets, b.batch);
            lossSum += r.loss * r.count;
            count += r.count;
          }
        }
      } finally {
        model.dispose();
      }
      if (count === 0) throw new TrainerError('TRAINER_ERR_NOTHING_TO_EVALUATE', 'no token was scored (every sequence is shorter than 2 tokens)', { hint: 'give sequences of at least 2 tokens' });
      const loss = lossSum / count;
      const result = { loss, perplexity: Math.exp(loss), tokens: count };
      process.stdout.write(o.json ? JSON.stringify(result) + '\n' : `loss ${loss.toFixed(4)} nats/token, perplexity ${result.perplexity.toFixed(2)} over ${count} tokens\n`);
      return 0;
    }));
}
