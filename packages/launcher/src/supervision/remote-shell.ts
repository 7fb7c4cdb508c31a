import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TrainerError } from '@trainer/errors';
import { TOKEN_ENV } from '../cluster-token.js';
import type { HostEntry } from './hostfile.js';

/**
 * How the launcher reaches other hosts: OpenSSH (as DeepSpeed's launcher does) or, inside a
 * Slurm allocation, `srun`. The remote command runs in the launcher's working directory with
 * the environment that should travel (below); it assumes the same paths on every host (a shared
 * filesystem or identical installs), like torchrun and DeepSpeed do.
 *
 * What travels: variables named TRAINER_*, NODE_*, TF_*, NCCL_*, UCX_*, OMP_* (except the token
 * and the per-worker ones), plus KEY=VALUE lines of a `.trainer_env` file in the working
 * directory (DeepSpeed's `.deepspeed_env`). The cluster token never appears on a command line:
 * over SSH it is written to the agent's stdin; srun passes it in the environment.
 */
const TRAVELLING = /^(TRAINER_|NODE_|TF_|NCCL_|UCX_|OMP_)/;
const PER_PROCESS = new Set([TOKEN_ENV, 'TRAINER_ROUND', 'TRAINER_HOST_NAME', 'LOCAL_RANK', 'RANK', 'WORLD_SIZE']);
export const ENV_FILE = '.trainer_env';

/** The environment that travels to every host. */
export function travellingEnv(env: NodeJS.ProcessEnv, cwd: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && TRAVELLING.test(k) && !PER_PROCESS.has(k)) out[k] = v;
  let file = '';
  try {
    file = readFileSync(join(cwd, ENV_FILE), 'utf8');
  } catch {
    return out; // no .trainer_env
  }
  for (const [i, raw] of file.split('\n').entries()) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m || m[1] === TOKEN_ENV) throw new TrainerError('TRAINER_ERR_BAD_ENV', `${join(cwd, ENV_FILE)}:${i + 1} is not KEY=VALUE${m ? ` (the token never goes in ${ENV_FILE})` : ''}`, { hint: `fix the line, or remove ${ENV_FILE}` });
    out[m[1]] = m[2];
  }
  return out;
}

/** One argument for a POSIX shell, quoted. */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** `cd DIR && exec env K=V ... ARGV` for the remote shell. */
export function remoteCommand(cwd: string, env: Record<string, string>, argv: string[]): string {
  const assignments = Object.entries(env).map(([k, v]) => shellQuote(`${k}=${v}`));
  return `cd ${shellQuote(cwd)} && exec env ${assignments.join(' ')} ${argv.map(shellQuote).join(' ')}`;
}

/** ssh's own options: never prompt, fail fast on an unreachable host, notice a dead link. */
export function sshArgs(host: string, extra: readonly string[], command: string): string[] {
  return [...extra, '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10', '-o', 'ServerAliveInterval=5', '-o', 'ServerAliveCountMax=3', host, '--', command];
}

export interface ProbeResult {
  host: HostEntry;
  /** GPUs nvidia-smi lists there (0: none, or no nvidia-smi). */
  gpus: number;
}

/**
 * Before any training: every host must answer over SSH and have node and the trainer at the
 * launcher's paths. All hosts are probed at once; every one that fails is named in one error.
 */
export async function probeHosts(hosts: readonly HostEntry[], o: { sshOptions: readonly string[]; execPath: string; cliPath: string; cwd: string; timeoutMs?: number }): Promise<ProbeResult[]> {
  const check = `cd ${shellQuote(o.cwd)} || { echo "no directory ${o.cwd}" >&2; exit 3; }; test -x ${shellQuote(o.execPath)} || { echo "no node at ${o.execPath}" >&2; exit 3; }; ` +
    `test -f ${shellQuote(o.cliPath)} || { echo "no trainer at ${o.cliPath}" >&2; exit 3; }; nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true`;
  const results = await Promise.all(hosts.map((host) => new Promise<{ host: HostEntry; code: number | null; stdout: string; stderr: string }>((resolve) => {
    execFile('ssh', sshArgs(host.host, o.sshOptions, check), { timeout: o.timeoutMs ?? 20_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null) : 0;
      resolve({ host, code, stdout: String(stdout), stderr: String(stderr) });
    });
  })));
  const bad = results.filter((r) => r.code !== 0);
  if (bad.length) {
    const lines = bad.map((r) => {
      const why = r.stderr.trim().split('\n').filter(Boolean).pop() ?? (r.code === null ? 'no answer in time' : `exit code ${r.code}`);
      return r.code === 255 || r.code === null ? `${r.host.host} is unreachable over SSH (${why})` : `${r.host.host} cannot run the trainer: ${why}`;
    });
    throw new TrainerError('TRAINER_ERR_HOST_UNREACHABLE', `${bad.length} of ${hosts.length} host(s) failed the check before training: ${lines.join('; ')}`, {
      hint: 'check that `ssh HOST` works without a password (BatchMode), that the host is up, and that node and trainer exist at the same paths there (or pass --ssh-opts)',
      details: { hosts: bad.map((r) => r.host.host) },
    });
  }
  return results.map((r) => ({ host: r.host, gpus: Number.parseInt(r.stdout.trim().split('\n').pop() ?? '0', 10) || 0 }));
}

/** Starts one agent over SSH; the token goes to its stdin, which stays open (its EOF tells the agent the launcher is gone). */
export function spawnSshAgent(host: HostEntry, o: { sshOptions: readonly string[]; cwd: string; env: Record<string, string>; agentArgv: string[]; token: string }): ChildProcess {
  const command = remoteCommand(o.cwd, o.env, [...o.agentArgv, '--token-stdin']);
  const child = spawn('ssh', sshArgs(host.host, o.sshOptions, command), { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin!.on('error', () => {}); // the session ended
  child.stdin!.write(o.token + '\n');
  return child;
}

/** Inside a Slurm allocation: one agent per node with a single srun (the token travels in its environment). */
export function spawnSrunAgents(nodes: number, o: { cwd: string; env: Record<string, string>; agentArgv: string[]; token: string }): ChildProcess {
  const args = [`--nodes=${nodes}`, `--ntasks=${nodes}`, '--ntasks-per-node=1', '--kill-on-bad-exit=0', `--chdir=${o.cwd}`, '--export=ALL', ...o.agentArgv];
  return spawn('srun', args, { env: { ...process.env, ...o.env, [TOKEN_ENV]: o.token }, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Inside a Slurm allocation of several nodes (`trainer launch` then uses srun). */
export function inSlurmAllocation(env: NodeJS.ProcessEnv = process.env): { nodes: number } | undefined {
  const nodes = Number(env.SLURM_JOB_NUM_NODES ?? env.SLURM_NNODES);
  return env.SLURM_JOB_ID && Number.isInteger(nodes) && nodes > 1 ? { nodes } : undefined;
}
