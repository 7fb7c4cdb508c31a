import { exitCode } from '../action.js';
import { Command } from 'commander';
import { BpeTokenizer } from '@trainer/data';
import { TrainerError } from '@trainer/errors';
import { GPT, initBackend } from '@trainer/model';
import { loadModelFrom } from '../model-source.js';
import { int, num, oneOf } from '../parse.js';
import { BACKENDS } from '../train-options.js';

export function generateCommand(): Command {
  return new Command('generate')
    .description('continue a prompt with a saved model')
    .argument('<model>', 'run folder or model folder')
    .requiredOption('--prompt <text>', 'text to continue')
    .option('--max-new-tokens <n>', 'tokens to generate', int(1), 200)
    .option('--temperature <x>', 'sampling temperature (0: greedy)', num(0), 0.8)
    .option('--top-k <n>', 'sample among the k most likely tokens (0: all)', int(0), 40)
    .option('--seed <n>', 'sampling seed', int(0), 0)
    .option('--backend <name>', `compute backend: ${BACKENDS.join(', ')}`, oneOf(BACKENDS), 'auto')
    .action(exitCode(async (path: string, o: { prompt: string; maxNewTokens: number; temperature: number; topK: number; seed: number; backend: (typeof BACKENDS)[number] }) => {
      const saved = await loadModelFrom(path);
      if (!saved.tokenizerJson) throw new TrainerError('TRAINER_ERR_MODEL_FORMAT', `${saved.dir} has no tokenizer.json`, { hint: 'generate needs the tokenizer the model was trained with' });
      const tokenizer = BpeTokenizer.fromJSON(JSON.parse(saved.tokenizerJson));
      await initBackend(o.backend, (m) => process.stderr.write(m + '\n'));
      const model = new GPT(saved.config);
      model.setParams(saved.params);
      const prompt = tokenizer.encode(o.prompt);
      const ids = await model.generate(prompt, { maxNewTokens: o.maxNewTokens, temperature: o.temperature, topK: o.topK, seed: o.seed });
      model.dispose();
      process.stdout.write(tokenizer.decode(ids) + '\n');
      return 0;
    }));
}
