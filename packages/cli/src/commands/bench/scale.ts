import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { TrainerError } from '@trainer/errors';
import { createEmulatedHosts, emulationUnavailableReason, parseRate, type EmulatedNetwork } from '@trainer/launcher';
import { exitCode } from '../../action.js';
import { int, list, oneOf } from '../../parse.js';
import { runSynthetic } from './synthetic-run.js';

const DEFAULT_PEER = '/work/shared/bench/torch_gpt.py';

interface ScaleOptions {
  model: string;
  link: string;
  delay?: string;
  batch: number;
  steps: number;
  warmup: number;
  syncEvery: number[];
  outerPrecision: 'fp32' | 'bf16';
  outerOverlap?: boolean | number;
  peer?: string;
  python: string;
  json?: boolean;
  only: Variant[];
}

/** The runs bench scale can make (--only). */
const VARIANTS = ['dp', 'overlap', 'thread', 'diloco', 'hierarchical', 'ddp'] as const;
type Variant = (typeof VARIANTS)[number];

interface Row {
  run: string;
  placement: 'one host' | '2 hosts';
  step_ms: number;
  tokens_per_s: number;
  bytes_sent_per_step: number | null;
  /** 2 hosts: bytes that crossed the hosts' links (every host's veth counter, headers included) per step, warm-up and start-up included; null on one host. */
  link_bytes_per_step: number | null;
  /** DiLoCo with overlapped syncs: time a sync waited for the previous one's all-reduce, per step (JSON only). */
  sync_wait_ms_per_step?: number;
}

/**
 * `trainer bench scale`: what fraction of one host's speed a run keeps when its 2 workers sit on
 * 2 hosts joined by a slow link. The hosts are network namespaces on one machine, their links
 * shaped by tc (token bucket: rate only, this kernel has no netem for delay); root only. Each
 * variant runs with both workers on this host (loopback) and split over the 2 hosts; beside it
 * PyTorch DDP (gloo) run the same two ways. Exposed communication per step = split step time -
 * one-host step time (link efficiency alone flatters slower compute).
 */
export function addScaleBench(cmd: Command): void {
  cmd
    .command('scale')
    .description('2 workers on one host vs on 2 emulated hosts over a shaped link (root): tokens/s, link efficiency, exposed communication per step; every-step DP, DiLoCo --sync-every, PyTorch DDP beside')
    .option('--model <name>', 'model config', 'gpt-nano')
    .option('--link <rate>', 'each host\'s link rate, both ways (tc syntax: 100mbit, 1gbit)', '1gbit')
    .option('--delay <time>', 'added one-way delay per link (tc syntax: 1ms; needs a kernel with netem, which this project\'s machines lack)')
    .option('--batch <n>', 'sequences per worker per step', int(1), 8)
    .option('--steps <n>', 'timed steps (rounded up to whole --sync-every intervals)', int(1), 16)
    .option('--warmup <n>', 'untimed steps first (rounded up to whole intervals)', int(0), 2)
    .option('--sync-every <list>', 'DiLoCo intervals to run besides every-step DP (e.g. 8,32; 0: none)', list(int(0)), [16])
    .option('--outer-precision <p>', 'DiLoCo pseudo-gradients on the wire', oneOf(['fp32', 'bf16'] as const), 'fp32')
    .option('--outer-overlap [d]', 'also run each DiLoCo interval with its syncs behind the next d steps (--outer-overlap; default h/2)', int(1))
    .option('--peer <torch_gpt.py>', `PyTorch DDP peer script (default ${DEFAULT_PEER} when it exists; none: skip)`)
    .option('--python <path>', 'python with torch for the peer', '/usr/bin/python3')
    .option('--only <list>', `the runs to make, of ${VARIANTS.join(', ')} (overlap: --comm-thread off; thread: on; hierarchical: 4 workers, 2 per host, flat ring against hierarchical all-reduce; ddp: PyTorch)`, list(oneOf(VARIANTS)), [...VARIANTS])
    .option('--json', 'one JSON object per run, then a summary object')
    .action(exitCode(async (o: ScaleOptions) => {
      const reason = emulationUnavailableReason();
      if (reason) {
        throw new TrainerError('TRAINER_ERR_NETWORK_EMULATION', `bench scale emulates hosts with network namespaces, and ${reason}`, {
          hint: 'run it as root on Linux with iproute2 (ip, tc); without root, compare hosts for real with trainer launch --hostfile',
        });
      }
      parseRate(o.link);
      const intervals = o.syncEvery.filter((h) => h > 0);
      const lcm = intervals.reduce((a, h) => (a * h) / gcd(a, h), 1);
      // Warm-up and timed steps are whole intervals, so the timed steps hold exactly steps / H syncs.
      const warmup = Math.ceil(o.warmup / lcm) * lcm;
      const steps = Math.ceil(o.steps / lcm) * lcm;
      const out = (row: Row) => process.stdout.write(o.json ? `${JSON.stringify({ model: o.model, link: o.link, ...row })}\n`
        : `${row.run.padEnd(36)}${row.placement.padEnd(10)}${row.step_ms.toFixed(0).padStart(9)}${row.tokens_per_s.toFixed(0).padStart(11)}${row.bytes_sent_per_step === null ? ''.padStart(12) : (row.bytes_sent_per_step / 2 ** 20).toFixed(2).padStart(12)}${row.link_bytes_per_step === null ? '' : (row.link_bytes_per_step / 2 ** 20).toFixed(2).padStart(12)}\n`);
      if (!o.json) process.stdout.write(`${o.model}, 2 workers x ${o.batch} sequences, link ${o.link} each way, ${warmup} + ${steps} timed steps\nrun                                 placement   step ms   tokens/s  MiB sent/step/rank  link MiB/step\n`);
      const net = createEmulatedHosts(2);
      const rows: Row[] = [];
      try {
        for (const h of net.hosts) net.shape(h, o.link, o.delay);
        type Run = Pick<Parameters<typeof runSynthetic>[0], 'outer' | 'overlap' | 'commThread' | 'collectiveAlgorithm'> & { world?: number };
        const runs: [string, Run][] = [
          ...(o.only.includes('dp') ? [['DP every step, no overlap', { overlap: false, commThread: 'off' }] as [string, Run]] : []),
          ...(o.only.includes('overlap') ? [['DP every step, overlapped', { commThread: 'off' }] as [string, Run]] : []),
          ...(o.only.includes('thread') ? [['DP overlapped, --comm-thread on', { commThread: 'on' }] as [string, Run]] : []),
          ...(o.only.includes('diloco') ? intervals.flatMap((h) => [0, ...(o.outerOverlap === undefined ? [] : [typeof o.outerOverlap === 'number' ? o.outerOverlap : Math.max(1, Math.floor(h / 2))])].map((overlap): [string, Run] => [
            `DiLoCo --sync-every ${h}${o.outerPrecision === 'bf16' ? ' bf16' : ''}${overlap ? ` overlap ${overlap}` : ''}`,
            { outer: { syncEvery: h, lr: 0.7, momentum: 0.9, precision: o.outerPrecision, overlap } }])) : []),
          // 4 workers, 2 per host: the same overlapped DP with a flat all-reduce over all 4 (what auto takes on one
          // machine: direct at 4 ranks), and hierarchical (inside each host first). On one host both run the same.
          ...(o.only.includes('hierarchical') ? [['DP 2x2, flat (direct)', { world: 4, collectiveAlgorithm: 'direct', commThread: 'off' }], ['DP 2x2, hierarchical', { world: 4, collectiveAlgorithm: 'hierarchical', commThread: 'off' }]] as [string, Run][] : []),
        ];
        for (const [run, { world = 2, ...variant }] of runs) {
          for (const hosts of [undefined, net]) {
            const linkBefore = net.bytesFromHosts();
            const r = await runSynthetic({ model: o.model, world, globalBatch: world * o.batch, steps, warmup, backend: 'wasm', quiet: true, ...variant, hosts });
            if (!r.outcome.ok) return r.exitCode || 1;
            const s = r.outcome.results[0];
            const row: Row = {
              run, placement: hosts ? '2 hosts' : 'one host', step_ms: Number(s.step_ms), tokens_per_s: Number(s.tokens_per_s), bytes_sent_per_step: Number(s.bytes_sent_per_step),
              link_bytes_per_step: hosts ? (net.bytesFromHosts() - linkBefore) / (steps + warmup) : null,
              ...(s.outer_wait_ms_per_step !== undefined ? { sync_wait_ms_per_step: Number(s.outer_wait_ms_per_step) } : {}),
            };
            rows.push(row);
            out(row);
          }
        }
        const peer = o.peer === 'none' || !o.only.includes('ddp') ? undefined : o.peer ?? (existsSync(DEFAULT_PEER) ? DEFAULT_PEER : undefined);
        if (peer) {
          for (const hosts of [undefined, net]) {
            const r = await runPeer(peer, o, steps, warmup, hosts);
            const row: Row = { run: 'PyTorch DDP (gloo)', placement: hosts ? '2 hosts' : 'one host', step_ms: r.step_ms, tokens_per_s: r.tokens_per_s, bytes_sent_per_step: null, link_bytes_per_step: null };
            rows.push(row);
            out(row);
          }
        }
      } finally {
        net.destroy();
      }
      const summary = summarize(rows);
      if (o.json) process.stdout.write(`${JSON.stringify({ model: o.model, link: o.link, summary })}\n`);
      else {
        process.stdout.write('\nrun                                 link efficiency   exposed comm ms/step\n');
        for (const s of summary) process.stdout.write(`${s.run.padEnd(36)}${`${(100 * s.link_efficiency).toFixed(0)}%`.padStart(15)}${s.exposed_ms_per_step.toFixed(0).padStart(23)}\n`);
      }
      return 0;
    }));
}

/** Per run: split tokens/s over one-host tokens/s, and split step time minus one-host step time. */
function summarize(rows: Row[]): { run: string; link_efficiency: number; exposed_ms_per_step: number }[] {
  const runs = [...new Set(rows.map((r) => r.run))];
  return runs.flatMap((run) => {
    const one = rows.find((r) => r.run === run && r.placement === 'one host');
    const split = rows.find((r) => r.run === run && r.placement === '2 hosts');
    return one && split ? [{ run, link_efficiency: split.tokens_per_s / one.tokens_per_s, exposed_ms_per_step: split.step_ms - one.step_ms }] : [];
  });
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/** torch_gpt.py with the same model and batch: both ranks here, or one per emulated host (rank 0's address as MASTER_ADDR). */
async function runPeer(script: string, o: ScaleOptions, steps: number, warmup: number, net: EmulatedNetwork | undefined): Promise<{ step_ms: number; tokens_per_s: number }> {
  const args = [script, '--world', '2', '--steps', String(steps), '--warmup', String(warmup), '--batch', String(o.batch)];
  const env = { ...process.env, OMP_NUM_THREADS: '1' };
  const run = (command: string[], host?: EmulatedNetwork['hosts'][number]) => new Promise<string>((resolve, reject) => {
    // gloo takes the address its host name resolves to (loopback here): name the host's interface
    const child = host && net ? net.spawn(host, command[0], command.slice(1), { env: { ...env, GLOO_SOCKET_IFNAME: host.innerLinkName } })
      : spawn(command[0], command.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d));
    child.stderr!.on('data', (d: Buffer) => (stderr += d));
    child.once('exit', (code) => (code === 0 ? resolve(stdout) : reject(new TrainerError('TRAINER_ERR_BENCH_FAILED', `the PyTorch peer exited with ${code}: ${stderr.trim().split('\n').pop() ?? ''}`, { hint: 'check that python3 has torch (../shared/bench/peers.sh installs it), or pass --peer none' }))));
  });
  let outputs: string[];
  if (!net) outputs = [await run([o.python, ...args])];
  else {
    const port = 29611 + Math.floor(Math.random() * 1000);
    outputs = await Promise.all(net.hosts.map((h, rank) => run([o.python, ...args, '--rank', String(rank), '--addr', net.hosts[0].ip, '--port', String(port)], h)));
  }
  const line = outputs.join('\n').split('\n').find((l) => l.startsWith('{'));
  if (!line) throw new TrainerError('TRAINER_ERR_BENCH_FAILED', 'the PyTorch peer printed no result', { hint: 'run it by hand to see why' });
  const r = JSON.parse(line) as { step_ms: number; tokens_per_s: number };
  return { step_ms: r.step_ms, tokens_per_s: r.tokens_per_s };
}
