/**
 * One rank of the all-reduce benchmark, forked by benchAllReduce. Talks to the parent over the
 * fork IPC channel only: init -> listening -> start -> result* -> done. Exits when the parent
 * goes away, so a dead parent never leaves it running.
 */
import { performance } from 'node:perf_hooks';
import { asTrainerError } from '@trainer/errors';
import type { Codec } from '../codecs/codec.js';
import type { CollectiveAlgorithm } from '../collectives/algorithm.js';
import { DataPlane, type PeerAddress } from '../collectives/data-plane.js';

export interface WorkerInit { type: 'init'; rank: number; world: number; token: string; highWaterMark?: number; localTransport?: 'unix' | 'tcp' }
export interface WorkerStart {
  type: 'start'; peers: PeerAddress[]; sizes: number[]; codec: Codec; reps: number | undefined; pieceBytes?: number; algorithm?: CollectiveAlgorithm;
  /** Reduce a Communicator.allocBuffer array instead of a plain one. */
  registered?: boolean;
  /** Test hook: exit with code 3 right after connecting (to exercise the parent's cleanup). */
  crash?: boolean;
}
export type WorkerReport =
  | { type: 'listening'; host: string; port: number }
  | { type: 'result'; bytes: number; time_ms: number; cpu_ms: number; sys_ms: number; reps: number }
  | { type: 'error'; error: { code: string; message: string } }
  | { type: 'done' };

/** nccl-tests-like repetition count: enough work to be measurable, bounded for big buffers. */
export function defaultReps(bytes: number): number {
  return Math.max(3, Math.min(50, Math.floor(4e8 / Math.max(bytes, 1))));
}

function send(msg: WorkerReport): void {
  process.send?.(msg);
}

function nextMessage<T>(): Promise<T> {
  return new Promise((resolve) => process.once('message', (m) => resolve(m as T)));
}

async function main(): Promise<void> {
  process.on('disconnect', () => process.exit(1));
  const init = await nextMessage<WorkerInit>();
  const plane = await DataPlane.listen({ token: init.token, highWaterMark: init.highWaterMark, localTransport: init.localTransport });
  send({ type: 'listening', ...plane.address });
  const start = await nextMessage<WorkerStart>();
  const comm = await plane.connect({ rank: init.rank, world: init.world, peers: start.peers, pieceBytes: start.pieceBytes, algorithm: start.algorithm, collectiveTimeoutMs: 120_000 });
  if (start.crash) process.exit(3);
  const group = comm.worldGroup;
  for (const bytes of start.sizes) {
    const buf = (start.registered ? comm.allocBuffer(bytes / 4) : new Float32Array(bytes / 4)).fill(init.rank + 1);
    const reps = start.reps ?? defaultReps(bytes);
    for (let i = 0; i < 2; i++) await group.allReduce(buf, { codec: start.codec });
    await group.barrier();
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    for (let i = 0; i < reps; i++) await group.allReduce(buf, { codec: start.codec });
    const dt = (performance.now() - t0) / reps;
    const cpu = process.cpuUsage(c0);
    send({ type: 'result', bytes, time_ms: dt, cpu_ms: (cpu.user + cpu.system) / 1e3 / reps, sys_ms: cpu.system / 1e3 / reps, reps });
  }
  await group.barrier();
  send({ type: 'done' });
  await comm.close();
  process.disconnect?.();
}

main().catch((err: unknown) => {
  const e = asTrainerError(err);
  send({ type: 'error', error: { code: e.code, message: e.message } });
  process.exitCode = 2;
  setTimeout(() => process.exit(2), 100).unref();
});
