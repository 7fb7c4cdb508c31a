import { Command, CommanderError } from 'commander';
import { asTrainerError } from '@trainer/errors';
import { benchCommand } from './commands/bench.js';
import { estimateMemoryCommand } from './commands/estimate-memory.js';
import { coordinatorCommand } from './commands/coordinator.js';
import { evalCommand } from './commands/eval.js';
import { exportCommand } from './commands/export.js';
import { generateCommand } from './commands/generate.js';
import { launchCommand } from './commands/launch.js';
import { tokenizerCommand } from './commands/tokenizer.js';
import { dataCommand } from './commands/data.js';
import { workerCommand } from './commands/worker.js';
import { checkpointCommand } from './commands/checkpoint.js';
import { finetuneCommand } from './commands/finetune.js';
import { reportCommand } from './commands/report.js';
import { taskCommand } from './commands/task.js';
import { agentCommand } from './commands/agent.js';

/**
 * `trainer`: the command line. Every action returns its exit code; a TrainerError is printed as
 * `CODE: message` plus its hint (never a bare stack trace) and exits with 2 when it was raised
 * before any work started, which is where input is checked.
 */
export function buildProgram(): Command {
  const program = new Command('trainer')
    .description('distributed GPT training in TypeScript on TensorFlow.js: data parallel over a WebSocket ring')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  for (const cmd of [launchCommand(), coordinatorCommand(), workerCommand(), tokenizerCommand(), dataCommand(), evalCommand(), generateCommand(), exportCommand(), estimateMemoryCommand(), benchCommand(), checkpointCommand(), finetuneCommand(), reportCommand(), taskCommand(), agentCommand()]) {
    program.addCommand(cmd);
  }
  // addCommand does not pass settings down: errors must come back to main(), not exit the process.
  // Usage errors carry a stable code like every other error: `trainer: TRAINER_ERR_USAGE: ...`.
  const output = { outputError: (str: string, write: (s: string) => void) => write(str.replace(/^error: /, 'trainer: TRAINER_ERR_USAGE: ')) };
  program.configureOutput(output);
  const inherit = (cmd: Command) => {
    for (const sub of cmd.commands) {
      sub.exitOverride().showHelpAfterError('(run with --help for usage)').configureOutput(output);
      inherit(sub);
    }
  };
  inherit(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return Number(process.exitCode ?? 0);
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here with exit code 0; every usage error exits with 2.
      return err.exitCode === 0 ? 0 : 2;
    }
    const e = asTrainerError(err);
    process.stderr.write(`trainer: ${e.format()}\n`);
    if (e.code === 'TRAINER_ERR_INTERNAL' && err instanceof Error && err.stack) process.stderr.write(err.stack + '\n');
    return 2;
  }
}
