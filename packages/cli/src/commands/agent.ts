import { exitCode } from '../action.js';
import { Command } from 'commander';
import { hostname } from 'node:os';
import { createLogger, detectGpus, parseHostPort, resolveClusterToken, runAgent, wantsPrettyLogs } from '@trainer/launcher';
import { TrainerError } from '@trainer/errors';
import { CLI_BIN } from '../paths.js';
import { int } from '../parse.js';
import { addTlsOptions, type TlsCliOptions } from '../cluster-options.js';
import { channelTls } from '../tls.js';

interface AgentCliOptions extends TlsCliOptions {
  coordinator: string;
  hostName?: string;
  slots?: number;
  tokenStdin?: boolean;
  tokenFile?: string;
}

/**
 * `trainer agent`: started on every host by `trainer launch --hostfile` (over SSH) or by srun;
 * starts and restarts this host's workers for the coordinator. Not usually run by hand.
 */
export function agentCommand(): Command {
  const cmd = new Command('agent')
    .description('per-host agent of a multi-host launch: starts this host\'s workers for every round (started by `trainer launch --hostfile`)')
    .requiredOption('--coordinator <host:port>', 'the coordinator to serve')
    .option('--host-name <name>', 'how logs and failures name this host (default: SLURMD_NODENAME or the hostname)')
    .option('--slots <n>', 'workers to start per round (default: one per GPU, else 1)', int(1, 1024))
    .option('--token-stdin', 'read the cluster token from the first line of stdin; stdin closing means the launcher is gone')
    .option('--token-file <file>', 'cluster token file (default: TRAINER_TOKEN)');
  addTlsOptions(cmd);
  return cmd.action(exitCode(async (o: AgentCliOptions) => {
    const coordinator = parseHostPort(o.coordinator, '--coordinator');
    const stdin = o.tokenStdin ? await readTokenLine() : undefined;
    const token = stdin?.token ?? (await resolveClusterToken({ tokenFile: o.tokenFile, required: true }))!;
    const hostName = o.hostName ?? process.env.SLURMD_NODENAME ?? hostname();
    const log = createLogger({ base: { role: 'agent', host: hostName } });
    process.stdout.on('error', () => {}); // the session went away: the agent notices through stdin or the coordinator
    const gpus = await detectGpus();
    const code = await runAgent({
      coordinator, token, hostName, slots: o.slots ?? (gpus.length || 1), gpus, logger: log, pretty: wantsPrettyLogs(),
      workerCommand: { execPath: process.execPath, args: [CLI_BIN, 'worker'] },
      ...(stdin ? { launcherGone: stdin.closed } : {}),
      channel: await channelTls(o),
    });
    process.exit(code);
  }));
}

/** The token from stdin's first line; `closed` resolves when stdin ends (the SSH session is gone). */
function readTokenLine(): Promise<{ token: string; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    let got = false;
    const closed = new Promise<void>((done) => {
      process.stdin.on('end', () => done());
      process.stdin.on('close', () => done());
    });
    process.stdin.on('data', (chunk: Buffer) => {
      if (got) return;
      buffered += chunk.toString('utf8');
      const nl = buffered.indexOf('\n');
      if (nl < 0) {
        if (buffered.length > 4096) reject(new TrainerError('TRAINER_ERR_TOKEN_MISSING', 'no token line on stdin', { hint: '--token-stdin expects the token and a newline on stdin' }));
        return;
      }
      got = true;
      resolve({ token: buffered.slice(0, nl).trim(), closed });
    });
    void closed.then(() => {
      if (!got) reject(new TrainerError('TRAINER_ERR_TOKEN_MISSING', 'stdin closed before a token line arrived', { hint: '--token-stdin expects the token and a newline on stdin' }));
    });
  });
}
