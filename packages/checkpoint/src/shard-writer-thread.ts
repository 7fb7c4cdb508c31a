import { createHash } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { parentPort } from 'node:worker_threads';
import { fsyncDir } from './durable.js';

/**
 * The writer thread of a ShardWriter: writes a packed shard to `<path>.partial`, hashes it
 * (SHA-256 of the whole file), fsyncs, renames it to `path` and fsyncs the folder. All of it
 * off the training thread: the buffer arrives by transfer, not by copy.
 */
export interface WriteTask {
  id: number;
  path: string;
  bytes: Uint8Array;
  /** Test faults: 'enospc' fails halfway as a full disk does; 'corrupt' flips a byte after hashing. */
  fault?: 'enospc' | 'corrupt';
}

/** Allocate a buffer of `bytes` and touch every page, off the training thread (the first save's copy then finds it mapped). */
export interface PrepareTask {
  prepare: number;
}

/** Replies to writes (with the buffer handed back, or the error) and to prepares. */

export type WriteReply =
  | { prepared: ArrayBuffer }
  | { id: number; ok: true; bytes: number; sha256: string; writeMs: number; buffer: ArrayBuffer }
  | { id: number; ok: false; message: string; errno?: string };

/** Linux refuses single writes above 0x7ffff000 bytes; 1 GiB chunks stay below. */
const MAX_WRITE = 1 << 30;

async function writeShard(task: WriteTask): Promise<Extract<WriteReply, { ok: true }>> {
  const started = performance.now();
  const partial = `${task.path}.partial`;
  const sha256 = createHash('sha256').update(task.bytes).digest('hex');
  if (task.fault === 'corrupt') task.bytes[task.bytes.length - 1] ^= 0xff;
  const fh = await open(partial, 'w');
  try {
    const limit = task.fault === 'enospc' ? task.bytes.length >> 1 : task.bytes.length;
    let done = 0;
    while (done < limit) {
      const { bytesWritten } = await fh.write(task.bytes, done, Math.min(MAX_WRITE, limit - done), done);
      done += bytesWritten;
    }
    if (task.fault === 'enospc') {
      throw Object.assign(new Error(`ENOSPC: no space left on device, write (injected by TRAINER_SAVE_FAULT after ${done} of ${task.bytes.length} bytes)`), { code: 'ENOSPC' });
    }
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => undefined);
    await unlink(partial).catch(() => undefined);
    throw err;
  }
  await fh.close();
  await rename(partial, task.path);
  await fsyncDir(dirname(task.path));
  return { id: task.id, ok: true, bytes: task.bytes.length, sha256, writeMs: performance.now() - started, buffer: task.bytes.buffer as ArrayBuffer };
}

parentPort!.on('message', (task: WriteTask | PrepareTask) => {
  if ('prepare' in task) {
    const buffer = new ArrayBuffer(task.prepare);
    new Uint8Array(buffer).fill(1); // any value: the point is to fault every page in here
    parentPort!.postMessage({ prepared: buffer } satisfies WriteReply, [buffer]);
    return;
  }
  writeShard(task).then(
    (reply) => parentPort!.postMessage(reply, [reply.buffer]), // the buffer goes back for the next save
    (err: unknown) => parentPort!.postMessage({
      id: task.id, ok: false, message: err instanceof Error ? err.message : String(err),
      ...(typeof (err as { code?: unknown })?.code === 'string' ? { errno: (err as { code: string }).code } : {}),
    } satisfies WriteReply),
  );
});
