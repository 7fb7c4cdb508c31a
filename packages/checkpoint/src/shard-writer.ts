import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { CheckpointErrorCode, checkpointError, writeFailure } from './errors.js';
import type { PackedShard } from './shard-file.js';
import type { PrepareTask, WriteReply, WriteTask } from './shard-writer-thread.js';

/**
 * Writes packed shards in the background, on a thread of its own: the caller's only cost is
 * handing the buffer over (a transfer, no copy). A write resolves once the file is hashed,
 * fsynced and renamed to its final name; it fails with TRAINER_ERR_CHECKPOINT_DISK_FULL or
 * TRAINER_ERR_CHECKPOINT_WRITE naming the file, and leaves no partial file behind.
 */
export interface WrittenShard {
  path: string;
  bytes: number;
  sha256: string;
  /** Time the thread spent writing, hashing and syncing. */
  writeMs: number;
}

export type ShardWriteFault = WriteTask['fault'];

export class ShardWriter {
  private thread: Worker | undefined;
  private nextId = 0;
  private readonly pending = new Map<number, { path: string; resolve: (w: WrittenShard) => void; reject: (e: Error) => void }>();
  /** The last written shard's buffer, back from the thread, for the next packShard. */
  private spare: ArrayBuffer | undefined;
  private readonly preparing: (() => void)[] = [];

  /**
   * Has the thread allocate and touch a buffer of `bytes` (the expected shard size) and hand it
   * over, so that even the first save copies into memory already mapped.
   */
  prepare(bytes: number): Promise<void> {
    const ready = new Promise<void>((resolve) => this.preparing.push(resolve));
    this.ensureThread().postMessage({ prepare: bytes } satisfies PrepareTask);
    return ready;
  }

  /** A buffer to pack the next shard into (see packShard), if a previous write or prepare returned one. */
  takeBuffer(): ArrayBuffer | undefined {
    const b = this.spare;
    this.spare = undefined;
    return b;
  }

  /** Writes `packed` to `path`. The packed buffer is transferred: do not use it afterwards. */
  write(path: string, packed: PackedShard, opts: { fault?: ShardWriteFault } = {}): Promise<WrittenShard> {
    const { bytes } = packed;
    if (bytes.byteOffset !== 0) throw new RangeError('ShardWriter: the packed shard must start its buffer (which is transferred)');
    const thread = this.ensureThread();
    const id = this.nextId++;
    const done = new Promise<WrittenShard>((resolve, reject) => this.pending.set(id, { path, resolve, reject }));
    const task: WriteTask = { id, path, bytes, ...(opts.fault ? { fault: opts.fault } : {}) };
    thread.ref(); // keep the process alive while a write is in flight
    thread.postMessage(task, [bytes.buffer as ArrayBuffer]);
    return done;
  }

  /** Stops the thread (after the writes the caller awaited). */
  async close(): Promise<void> {
    const t = this.thread;
    this.thread = undefined;
    if (t) await t.terminate();
    this.failAll(new Error('the shard writer was closed'));
    for (const resolve of this.preparing.splice(0)) resolve(); // nothing more will be prepared
  }

  private ensureThread(): Worker {
    if (this.thread) return this.thread;
    const t = new Worker(threadScript());
    t.on('message', (reply: WriteReply) => {
      if ('prepared' in reply) {
        this.spare ??= reply.prepared;
        this.preparing.shift()?.();
        return;
      }
      const p = this.pending.get(reply.id);
      if (!p) return;
      this.pending.delete(reply.id);
      if (this.pending.size === 0) t.unref();
      if (reply.ok) {
        this.spare = reply.buffer;
        p.resolve({ path: p.path, bytes: reply.bytes, sha256: reply.sha256, writeMs: reply.writeMs });
      }
      else p.reject(writeFailure(Object.assign(new Error(reply.message), reply.errno ? { code: reply.errno } : {}), p.path));
    });
    t.on('error', (err) => this.failAll(err));
    t.on('exit', () => {
      if (this.thread === t) this.thread = undefined;
      this.failAll(new Error('the shard writer thread exited'));
    });
    t.unref();
    this.thread = t;
    return t;
  }

  private failAll(cause: Error): void {
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.reject(checkpointError(CheckpointErrorCode.WRITE, `writing ${p.path} did not finish: ${cause.message}`, { cause, file: p.path }));
    }
  }
}

/** The compiled thread next to this module; from TypeScript sources (unit tests), the one in dist/. */
function threadScript(): URL {
  const here = new URL('./shard-writer-thread.js', import.meta.url);
  if (existsSync(fileURLToPath(here))) return here;
  return new URL('../dist/shard-writer-thread.js', import.meta.url);
}
