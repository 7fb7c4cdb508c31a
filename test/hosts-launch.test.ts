import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { maxParamDiff, tinyRun, type TinyRun } from './helpers/checkpoint-run.js';
import { killAllStarted, logLines, pidsWithMarker, startTrainer, waitFor } from './helpers/processes.js';
import { createTestNetwork, netnsUnavailableReason } from './helpers/netns.js';
import { createSshHosts, sshHostsUnavailableReason, type SshTestHosts } from './helpers/ssh-hosts.js';
import { tinyJobArgs, tinyWorkspace } from './helpers/tiny-run.js';

const reason = sshHostsUnavailableReason();
const netnsReason = netnsUnavailableReason();
if (reason) console.warn(`skipping the multi-host launch tests: ${reason}`);

const TOKEN = 'hosts-test-token-0123456789abcdef';
let hosts: SshTestHosts | undefined;
afterEach(() => {
  killAllStarted();
  hosts?.destroy();
  hosts = undefined;
});

/** A process's network namespace (an inode: equal means the same network stack). */
function netnsOf(pid: number | string): string {
  return readlinkSync(`/proc/${pid}/ns/net`);
}

function environOf(pid: number): Record<string, string> {
  return Object.fromEntries(readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
}

function cmdlineOf(pid: number): string {
  return readFileSync(`/proc/${pid}/cmdline`, 'latin1').replace(/\0/g, ' ');
}

/**
 * `trainer launch --hostfile`: hosts are network namespaces with their own address and an SSH
 * server; the launcher reaches them by address over SSH, an agent on each starts its workers,
 * and the workers reach the coordinator and each other by address, never by loopback.
 */
describe.skipIf(reason !== null)('trainer launch --hostfile (SSH to separate hosts)', () => {
  it('trains on 2 hosts over TCP between their addresses, with the working directory and environment travelling, the token on no command line, and the same result as one machine', async () => {
    const ws = tinyWorkspace();
    const reference: TinyRun = await tinyRun(ws, 'local', 2, ['--steps', '150', '--eval-every', '50']);
    expect(reference.code, reference.output).toBe(0);

    hosts = await createSshHosts(2);
    writeFileSync(join(ws.dir, 'hostfile'), `# two test hosts\n${hosts.hosts[0].ip} slots=1\n${hosts.hosts[1].ip} slots=1\n`);
    writeFileSync(join(ws.dir, '.trainer_env'), 'FROM_ENV_FILE=yes\n');
    // Relative paths: they only resolve on the hosts if the working directory travelled.
    const args = tinyJobArgs({ corpus: 'corpus.txt', cache: 'cache' }, ['--out', 'run', '--steps', '150', '--eval-every', '50']);
    const run = startTrainer(['launch', '--hostfile', 'hostfile', '--ssh-opts', hosts.sshOptions, ...args], {
      cwd: ws.dir, env: { TRAINER_TOKEN: TOKEN, TRAINER_PROBE: 'travelled' },
    });
    // While it trains: the workers run on the hosts, with the environment, and talk TCP between host addresses.
    const seen = { netns: new Set<string>(), env: [] as Record<string, string>[], tcp: '', unix: '', unixConnected: '', cmdlines: [] as string[] };
    await waitFor(() => /step +\d+\/150/.test(run.output()) || run.child.exitCode !== null, 90_000, 'training to start');
    for (const pid of pidsWithMarker(run.marker)) {
      seen.cmdlines.push(cmdlineOf(pid));
      if (!cmdlineOf(pid).includes(' worker ')) continue;
      seen.netns.add(netnsOf(pid));
      seen.env.push(environOf(pid));
    }
    seen.tcp = execFileSync('ip', ['netns', 'exec', hosts.hosts[0].namespace, 'ss', '-tnH', 'state', 'established'], { encoding: 'utf8' });
    seen.unix = execFileSync('ip', ['netns', 'exec', hosts.hosts[0].namespace, 'ss', '-xlH'], { encoding: 'utf8' });
    seen.unixConnected = execFileSync('ip', ['netns', 'exec', hosts.hosts[0].namespace, 'ss', '-xH', 'state', 'connected'], { encoding: 'utf8' });
    const r = await run.result;
    expect(r.code, run.output()).toBe(0);

    expect(seen.netns.size, `${JSON.stringify(seen.cmdlines)}\n${run.output()}`).toBe(2); // one worker in each host's namespace ...
    expect(seen.netns.has(netnsOf(process.pid))).toBe(false); // ... none on the launcher's
    for (const env of seen.env) {
      expect(env.TRAINER_PROBE).toBe('travelled');
      expect(env.FROM_ENV_FILE).toBe('yes');
      expect([hosts.hosts[0].ip, hosts.hosts[1].ip]).toContain(env.TRAINER_HOST_NAME);
    }
    // Data plane: host 0 has TCP connections to host 1's address; nothing to or from loopback.
    expect(seen.tcp).toContain(`${hosts.hosts[1].ip}:`);
    expect(seen.tcp).not.toMatch(/127\.0\.0\.1/);
    expect(seen.tcp.split('\n').filter((l) => l.includes(hosts!.hosts[0].ip) && l.includes(hosts!.hosts[1].ip)).length).toBeGreaterThanOrEqual(2);
    // Each worker still listens on its abstract Unix socket for same-machine peers, but no peer is connected to it.
    expect(seen.unix).toMatch(/@trainer-comm-\d+/);
    expect(seen.unixConnected).not.toMatch(/trainer-comm/);
    // The token is on no command line (ssh's, the agents', the workers') and in no output.
    expect(seen.cmdlines.length).toBeGreaterThanOrEqual(5);
    for (const c of seen.cmdlines) expect(c).not.toContain(TOKEN);
    expect(run.output()).not.toContain(TOKEN);
    // Logs come back through the agents, labelled by host and local rank.
    const labels = new Set(logLines(r.stdout).map((l) => l.worker).filter(Boolean));
    expect(labels).toEqual(new Set([`${hosts.hosts[0].ip}/0`, `${hosts.hosts[1].ip}/0`, hosts.hosts[0].ip, hosts.hosts[1].ip]));
    const summary = JSON.parse(readFileSync(join(ws.dir, 'run', 'summary.json'), 'utf8'));
    expect(summary).toMatchObject({ ok: true, world: 2, steps: 150, restarts: 0, hosts: [hosts.hosts[0].ip, hosts.hosts[1].ip] });
    const hostRun = { ...reference, params: (await tinyRunParams(join(ws.dir, 'run'))) };
    expect(maxParamDiff(reference, hostRun)).toBe(0);
    await waitFor(() => pidsWithMarker(run.marker).length === 0, 10_000, 'every agent and worker to exit');
  }, 180_000);

  it('names an unreachable host before any training starts', async () => {
    const ws = tinyWorkspace();
    hosts = await createSshHosts(2, { noSshd: [1] });
    writeFileSync(join(ws.dir, 'hostfile'), `${hosts.hosts[0].ip}\n${hosts.hosts[1].ip}\n`);
    const run = startTrainer(['launch', '--hostfile', join(ws.dir, 'hostfile'), '--ssh-opts', hosts.sshOptions, ...tinyJobArgs(ws, ['--out', ws.out('run')])], { env: { TRAINER_TOKEN: TOKEN } });
    const r = await run.result;
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`TRAINER_ERR_HOST_UNREACHABLE: 1 of 2 host\\(s\\) failed the check before training: ${hosts.hosts[1].ip.replace(/\./g, '\\.')} is unreachable over SSH`));
    expect(r.stderr).not.toContain(`${hosts.hosts[0].ip} is unreachable`);
    expect(existsSync(ws.out('run'))).toBe(false); // nothing was prepared, nothing trained
    expect(run.output()).not.toMatch(/coordinator listening/);
    // A bad hostfile is refused with the line named.
    writeFileSync(join(ws.dir, 'bad-hostfile'), `${hosts.hosts[0].ip} slots=two\n`);
    const bad = await startTrainer(['launch', '--hostfile', join(ws.dir, 'bad-hostfile'), ...tinyJobArgs(ws, ['--out', ws.out('bad')])]).result;
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(`TRAINER_ERR_HOSTFILE: ${join(ws.dir, 'bad-hostfile')}:1: "slots=two" is not slots=N`);
  }, 60_000);

  it('fine-tunes on 2 hosts exactly as on one machine (trainer finetune --hostfile)', async () => {
    const ws = tinyWorkspace();
    const pretrained = ws.out('pretrained');
    const task = join(ws.dir, 'task.jsonl');
    writeFileSync(task, [['The whale', ' swam past the ship'], ['Call me', ' Ishmael'], ['The sea was', ' calm'], ['A harpoon', ' flew'], ['The crew sang', ' songs'], ['the wind', ' rose']]
      .map(([prompt, completion]) => JSON.stringify({ prompt, completion })).join('\n') + '\n');
    const pre = await startTrainer(['launch', '--nodes', '1', ...tinyJobArgs(ws, ['--out', pretrained, '--steps', '4'])]).result;
    expect(pre.code, pre.stderr).toBe(0);
    const ft = (out: string) => ['finetune', '--from', pretrained, '--data', task, '--backend', 'wasm', '--steps', '4', '--global-batch', '2', '--lr', '3e-3', '--warmup-steps', '1',
      '--eval-every', '2', '--eval-batches', '1', '--val-fraction', '0.2', '--sample-tokens', '0', '--seed', '3', '--out', out];
    const local = await startTrainer([...ft(ws.out('ft-local')), '--nodes', '2']).result;
    expect(local.code, local.stderr).toBe(0);

    hosts = await createSshHosts(2);
    writeFileSync(join(ws.dir, 'hostfile'), `${hosts.hosts[0].ip} slots=1\n${hosts.hosts[1].ip} slots=1\n`);
    const run = startTrainer([...ft(ws.out('ft-hosts')), '--hostfile', join(ws.dir, 'hostfile'), '--ssh-opts', hosts.sshOptions], { env: { TRAINER_TOKEN: TOKEN } });
    const r = await run.result;
    expect(r.code, run.output()).toBe(0);
    expect(run.output()).toMatch(/fine-tuning .* on 2 worker\(s\) over 2 host\(s\)/);
    const summaryOf = (out: string) => JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { losses: number[]; hosts?: string[]; kind?: string };
    const [a, b] = [summaryOf(ws.out('ft-local')), summaryOf(ws.out('ft-hosts'))];
    expect(b.hosts).toEqual([hosts.hosts[0].ip, hosts.hosts[1].ip]);
    expect(b.losses).toEqual(a.losses); // the same layout: bit for bit
  }, 120_000);
});

async function tinyRunParams(out: string): Promise<Map<string, Float32Array>> {
  const { asFloat32, readSafetensors } = await import('@trainer/checkpoint');
  const model = await readSafetensors(join(out, 'model', 'model.safetensors'));
  return new Map([...model.tensors].map(([n, t]) => [n, asFloat32(t)]));
}

/** A stand-in for Slurm's srun: runs its command once per node, each node a network namespace of the test. */
const FAKE_SRUN = `#!/usr/bin/env node
const { spawn } = require('child_process');
const args = process.argv.slice(2);
let nodes = 1, chdir = process.cwd(), i = 0;
for (; i < args.length && args[i].startsWith('--'); i++) {
  const [k, v] = args[i].split('=');
  if (k === '--nodes') nodes = Number(v);
  if (k === '--chdir') chdir = v;
}
const namespaces = process.env.FAKE_SRUN_NAMESPACES.split(',');
let left = nodes, worst = 0;
const tasks = [];
for (let n = 0; n < nodes; n++) {
  const env = { ...process.env, SLURMD_NODENAME: 'node-' + n, SLURM_PROCID: String(n), SLURM_NODEID: String(n) };
  const c = spawn('ip', ['netns', 'exec', namespaces[n], ...args.slice(i)], { cwd: chdir, env, stdio: 'inherit' });
  tasks.push(c);
  c.on('exit', (code) => { worst = Math.max(worst, code ?? 1); if (--left === 0) process.exit(worst); });
}
process.on('SIGTERM', () => { for (const c of tasks) c.kill('SIGKILL'); process.exit(143); });
`;

describe.skipIf(netnsReason !== null)('trainer launch inside a Slurm allocation (srun)', () => {
  it('starts one agent per node with srun, the token in the environment, hosts named by Slurm', async () => {
    const ws = tinyWorkspace();
    const net = createTestNetwork(2);
    try {
      mkdirSync(join(ws.dir, 'bin'));
      writeFileSync(join(ws.dir, 'bin', 'srun'), FAKE_SRUN, { mode: 0o755 });
      const run = startTrainer(['launch', '--master-addr', net.gatewayIp, '--procs-per-node', '1', ...tinyJobArgs(ws, ['--out', ws.out('run'), '--steps', '40'])], {
        env: {
          TRAINER_TOKEN: TOKEN, SLURM_JOB_ID: '42', SLURM_JOB_NUM_NODES: '2', FAKE_SRUN_NAMESPACES: net.hosts.map((h) => h.namespace).join(','),
          PATH: `${join(ws.dir, 'bin')}:${process.env.PATH}`,
        },
      });
      await waitFor(() => /step +3\/40/.test(run.output()) || run.child.exitCode !== null, 90_000, 'training to start');
      const cmdlines = pidsWithMarker(run.marker).map(cmdlineOf);
      const r = await run.result;
      expect(r.code, run.output()).toBe(0);
      expect(cmdlines.some((c) => /srun --nodes=2 --ntasks=2 --ntasks-per-node=1/.test(c))).toBe(true);
      expect(cmdlines.filter((c) => c.includes(' agent ')).length).toBeGreaterThanOrEqual(2);
      for (const c of cmdlines) expect(c).not.toContain(TOKEN);
      const labels = new Set(logLines(r.stdout).map((l) => l.worker).filter(Boolean));
      expect(labels).toContain('node-0/0');
      expect(labels).toContain('node-1/0');
      expect(JSON.parse(readFileSync(join(ws.out('run'), 'summary.json'), 'utf8'))).toMatchObject({ ok: true, world: 2, nodes: 2 });
    } finally {
      net.destroy();
    }
  }, 120_000);
});
