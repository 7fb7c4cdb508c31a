import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { TrainerError } from '@trainer/errors';
import { CommErrorCode } from '../codes.js';
import { getCodec, type Codec } from '../codecs/codec.js';
import { checkAlgorithm, type CollectiveAlgorithm } from '../collectives/algorithm.js';
import type { PeerAddress } from '../collectives/data-plane.js';
import type { WorkerInit, WorkerReport, WorkerStart } from './allreduce-worker.js';

/** One measured size, with nccl-tests' definitions (GB = 1e9 bytes). */
export interface AllReduceBenchResult {
  world: number;
  /** fp32 payload bytes of the buffer, whatever the codec. */
  bytes: number;
  codec: Codec;
  time_ms: number;
  /** bytes / time */
  algbw_gbs: number;
  /** algbw * 2(n-1)/n: the bandwidth each link must sustain, comparable across world sizes. */
  busbw_gbs: number;
  /** Rank 0's CPU time (user + system) per call: less sensitive than time_ms to other load on the machine. */
  cpu_ms?: number;
  /** CPU time per call summed over all ranks, and its kernel (system) part: on a machine with fewer cores than ranks, the cost. */
  cpu_all_ms?: number;
  sys_all_ms?: number;
}

export interface AllReduceBenchOptions {
  world: number;
  /** Buffer sizes in bytes (multiples of 4). */
  sizes: number[];
  codec?: Codec;
  /** Timed repetitions per size (default: nccl-tests-like, 3..50 depending on size). */
  reps?: number;
  onResult?: (r: AllReduceBenchResult) => void;
  /** Give up (and kill every worker) after this long; default 10 minutes. */
  timeoutMs?: number;
  /** Ring piece size in bytes (default DEFAULT_PIECE_BYTES). */
  pieceBytes?: number;
  /** Reduce-scatter / all-gather algorithm (default 'auto'). */
  algorithm?: CollectiveAlgorithm;
  /** The buffer reduced: a plain Float32Array (default, what most callers pass) or one from Communicator.allocBuffer. */
  buffer?: 'plain' | 'registered';
  /** Per-peer send window in bytes (default DEFAULT_DATA_HIGH_WATER_MARK). */
  highWaterMark?: number;
  /** How the local workers connect: 'unix' (default, Unix domain sockets) or 'tcp' (loopback TCP). */
  localTransport?: 'unix' | 'tcp';
  /** Called with the worker pids as soon as they exist (for tests and process monitors). */
  onSpawn?: (pids: number[]) => void;
  /** Extra node flags for the workers, e.g. ['--cpu-prof'] to profile them. */
  workerExecArgv?: string[];
  /** Test hook: this rank exits right after connecting, so the cleanup path runs. */
  crashRank?: number;
}

const WORKER = fileURLToPath(new URL('./allreduce-worker.js', import.meta.url));
export const DEFAULT_BENCH_TIMEOUT_MS = 10 * 60_000;

function benchError(message: string, hint: string, details?: Record<string, unknown>): TrainerError {
  return new TrainerError(CommErrorCode.BENCH_FAILED, message, { hint, details });
}

function validate(opts: AllReduceBenchOptions): void {
  const bad = (m: string, hint: string): TrainerError => new TrainerError(CommErrorCode.INVALID_ARGUMENT, `benchAllReduce: ${m}`, { hint });
  if (!Number.isInteger(opts.world) || opts.world < 1 || opts.world > 64) throw bad(`world must be an integer in [1, 64], got ${opts.world}`, 'e.g. --world 4');
  if (!Array.isArray(opts.sizes) || opts.sizes.length === 0) throw bad('no sizes given', 'e.g. --sizes 1MiB,16MiB,64MiB');
  for (const s of opts.sizes) {
    if (!Number.isInteger(s) || s < 4 || s % 4 !== 0 || s > 2 ** 31) throw bad(`size ${s} must be a multiple of 4 bytes in [4, 2 GiB]`, 'buffers are fp32');
  }
  if (opts.reps !== undefined && (!Number.isInteger(opts.reps) || opts.reps < 1)) throw bad(`reps must be a positive integer, got ${opts.reps}`, 'omit it for the default');
  getCodec(opts.codec ?? 'fp32');
  checkAlgorithm(opts.algorithm ?? 'auto', 'benchAllReduce');
  if (opts.buffer !== undefined && opts.buffer !== 'plain' && opts.buffer !== 'registered') throw bad(`unknown buffer kind ${JSON.stringify(opts.buffer)}`, "use 'plain' or 'registered'");
}

/**
 * Forks `world` local workers, connects them through a local rendezvous over the fork IPC
 * channel, and times allReduce for each size (2 warm-up calls, then `reps` timed ones; rank 0's
 * average is reported, as in the gloo reference). Every worker is killed on any failure, on
 * timeout and if this process exits, so no child outlives a run.
 */
export async function benchAllReduce(opts: AllReduceBenchOptions): Promise<AllReduceBenchResult[]> {
  validate(opts);
  const { world } = opts;
  const codec = opts.codec ?? 'fp32';
  const token = randomBytes(24).toString('hex');
  const children: ChildProcess[] = [];
  const killAll = (): void => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  };
  process.on('exit', killAll);
  const results: AllReduceBenchResult[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      let failed = false;
      const fail = (err: TrainerError): void => {
        if (failed) return;
        failed = true;
        killAll();
        reject(err);
      };
      const timer = setTimeout(() => fail(benchError(`benchmark did not finish within ${opts.timeoutMs ?? DEFAULT_BENCH_TIMEOUT_MS} ms`, 'use fewer or smaller sizes, or raise timeoutMs')), opts.timeoutMs ?? DEFAULT_BENCH_TIMEOUT_MS);
      const addresses: Array<PeerAddress | undefined> = new Array(world).fill(undefined);
      const perSize = new Map<number, Array<Extract<WorkerReport, { type: 'result' }>>>();
      let listening = 0;
      let done = 0;
      for (let rank = 0; rank < world; rank++) {
        const child = fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: opts.workerExecArgv ?? [] });
        children.push(child);
        child.on('error', (err) => fail(benchError(`worker ${rank} failed to start: ${err.message}`, 'check that @trainer/comm is built (pnpm build)', { rank })));
        child.on('exit', (code, signal) => {
          if (failed || done === world) return;
          fail(benchError(`worker ${rank} exited (${signal ?? `code ${code}`}) before the benchmark finished`, 'see the worker output above', { rank, code, signal }));
        });
        child.on('message', (m: WorkerReport) => {
          if (m.type === 'listening') {
            addresses[rank] = { rank, host: m.host, port: m.port };
            if (++listening === world) {
              const peers = addresses as PeerAddress[];
              children.forEach((c, r) => c.send({
                type: 'start', peers, sizes: opts.sizes, codec, reps: opts.reps, pieceBytes: opts.pieceBytes, algorithm: opts.algorithm, registered: opts.buffer === 'registered', crash: r === opts.crashRank,
              } satisfies WorkerStart));
            }
          } else if (m.type === 'result') {
            // every rank reports; time is rank 0's (as in the gloo reference), CPU is summed
            const seen = perSize.get(m.bytes) ?? [];
            perSize.set(m.bytes, seen);
            seen[rank] = m;
            if (seen.filter(Boolean).length < world) return;
            perSize.delete(m.bytes);
            const first = seen[0];
            const algbw = first.bytes / (first.time_ms / 1e3) / 1e9;
            const r: AllReduceBenchResult = {
              world, bytes: first.bytes, codec, time_ms: first.time_ms, algbw_gbs: algbw, busbw_gbs: (algbw * 2 * (world - 1)) / world, cpu_ms: first.cpu_ms,
              cpu_all_ms: seen.reduce((a, x) => a + x.cpu_ms, 0), sys_all_ms: seen.reduce((a, x) => a + x.sys_ms, 0),
            };
            results.push(r);
            opts.onResult?.(r);
          } else if (m.type === 'error') {
            fail(benchError(`worker ${rank}: ${m.error.code}: ${m.error.message}`, 'see the worker output above', { rank, cause: m.error }));
          } else if (m.type === 'done') {
            if (++done === world) {
              clearTimeout(timer);
              resolve();
            }
          }
        });
        child.send({ type: 'init', rank, world, token, highWaterMark: opts.highWaterMark, localTransport: opts.localTransport } satisfies WorkerInit);
      }
      opts.onSpawn?.(children.map((c) => c.pid!).filter((p) => p !== undefined));
    });
    // Workers exit on their own after 'done'; wait briefly, then make sure.
    await Promise.all(children.map((c) => (c.exitCode !== null || c.signalCode !== null ? undefined : new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        c.kill('SIGKILL');
        resolve();
      }, 5_000);
      c.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
    }))));
  } finally {
    killAll();
    process.off('exit', killAll);
  }
  return results;
}
