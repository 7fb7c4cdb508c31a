import { exitCode } from '../action.js';
import { Command } from 'commander';
import { BpeTokenizer } from '@trainer/data';
import { TrainerError } from '@trainer/errors';
import { createLogger, resolveFinetune } from '@trainer/launcher';
import { ChatTemplate, encodeFinetune, loadFinetuneFile } from '@trainer/tasks';
import { addHostOptions, addLaunchOptions, launchAnywhere, type LaunchOptions } from './launch.js';
import { addConfigOption, resolvedRunConfig, userGave } from '../run-config.js';

interface FinetuneOptions extends LaunchOptions {
  from: string;
  pack?: boolean;
}

/** Options of `launch` that describe the model or corpus: the pretrained model decides them. */
const MODEL_OPTIONS = ['model', 'vocabSize', 'contextLength', 'layers', 'heads', 'dModel', 'kvHeads', 'ffnHidden', 'ropeTheta', 'tokenizer'] as const;

/**
 * `trainer finetune --from MODEL --data task.jsonl [launch options]`: the launch path of
 * `trainer launch` (every parallel mode applies; local workers, --hostfile over SSH, or srun)
 * with the pretrained model's parameters, config and tokenizer, and a task file as the data
 * (loss on completion tokens only). On several hosts the workers read --from and the task
 * file at the same paths as here (a shared filesystem, as for the corpus and --out).
 */
export function finetuneCommand(): Command {
  const cmd = addConfigOption(addHostOptions(addLaunchOptions(new Command('finetune')
    .description('fine-tune a saved model on prompt/completion or chat examples (a .jsonl task file); loss on completion tokens or assistant turns only')
    .requiredOption('--from <model>', 'model folder, run folder, checkpoint, or `trainer export` folder to start from')
    .option('--pack', 'pack each micro-batch\'s examples into shared rows of --seq-len (attention and positions stay within each example; the loss is unchanged)'))));
  return cmd.action(exitCode(async (o: FinetuneOptions, command: Command) => {
    for (const name of MODEL_OPTIONS) {
      if (userGave(cmd, name)) {
        const flag = name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
        const inFile = cmd.getOptionValueSource(name) === 'config';
        throw new TrainerError('TRAINER_ERR_USAGE', `--${flag}${inFile ? ` (${flag} in ${o.config})` : ''} does not apply to finetune: the model and its tokenizer come from --from`, { hint: inFile ? `remove ${flag} from ${o.config}` : 'drop the option' });
      }
    }
    if (!userGave(cmd, 'data') || o.data.length !== 1) {
      throw new TrainerError('TRAINER_ERR_USAGE', 'finetune needs one task file: --data task.jsonl', { hint: 'each line of the file is {"prompt": "...", "completion": "..."} or {"messages": [{"role": ..., "content": ...}, ...]}' });
    }
    const log = createLogger({ base: { role: 'launcher' } });
    const finetune = await resolveFinetune({ from: o.from, task: o.data[0], pack: o.pack === true });
    // Rows only as long as the longest example needs (padding costs compute), unless --seq-len says.
    let seqLen = o.seqLen;
    if (seqLen === undefined) {
      const tokenizer = BpeTokenizer.fromJSON(JSON.parse(finetune.tokenizerJson));
      const template = finetune.chatTemplate ? new ChatTemplate(finetune.chatTemplate) : undefined;
      const longest = Math.max(...encodeFinetune(await loadFinetuneFile(finetune.taskPath), tokenizer, Number.MAX_SAFE_INTEGER, finetune.taskPath, template).map((e) => e.ids.length));
      seqLen = Math.min(finetune.config.contextLength, longest - 1);
      log.info(`rows of ${seqLen} tokens (the longest example; --seq-len overrides)`);
    }
    // The model options do not apply (refused above): the saved run-config.yaml leaves them out.
    return launchAnywhere(o, command, { modelName: finetune.modelName, finetune, seqLen }, log, resolvedRunConfig(command, MODEL_OPTIONS));
  }));
}
