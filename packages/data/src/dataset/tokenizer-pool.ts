import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { type SerializedTrainerError, TrainerError, asTrainerError, trainerErrorFrom } from '@trainer/errors';
import type { TokenArray } from '../internal/token-buffer.js';
import { DataErrorCode } from '../codes.js';
import type { BpeThreadForm } from '../bpe-tokenizer.js';
import type { TokenizeThreadData, TokenizeThreadInit, TokenizeThreadReady, TokenizerInfo } from './tokenize-thread.js';

/** A batch of units for a tokenizer thread (see UnitBatch); `bytes` is transferred. */
export interface TokenizeRequest {
  seq: number;
  /** The source's path, for error messages. */
  path: string;
  firstLine: number;
  jsonl: boolean;
  bytes: Uint8Array;
  ends: Float64Array;
  texts: string[] | undefined;
  count: number;
}

export interface TokenizedBatch {
  seq: number;
  ok: true;
  /** Every document's tokens then eot, in unit order. */
  tokens: TokenArray;
  /** Tokens per unit, eot included; -1 for a unit with no document. */
  lengths: Int32Array;
  /** 1 where the unit's document goes to validation. */
  val: Uint8Array;
}

export type TokenizeReply = TokenizedBatch | { seq: number; ok: false; error: SerializedTrainerError };

/** What waits on a pool get once it is closed (an interrupted run ignores it). */
export class PoolClosedError extends Error {
  constructor() {
    super('the tokenizer pool was closed');
  }
}

/** The compiled thread next to this module; from TypeScript sources (unit tests), the one in dist/. */
function threadScript(): URL {
  const here = new URL('./tokenize-thread.js', import.meta.url);
  if (existsSync(fileURLToPath(here))) return here;
  return new URL('../../dist/dataset/tokenize-thread.js', import.meta.url);
}

/**
 * `threads` tokenizer threads fed batches in sequence; next() hands the results back in the same
 * sequence whichever thread finished first, so the output does not depend on the thread count.
 * At most `maxInFlight` batches are submitted and not yet taken: submit() waits for room.
 */
export class TokenizerPool {
  private readonly workers: Worker[] = [];
  private readonly readyInfos: Array<{ promise: Promise<TokenizerInfo>; resolve: (info: TokenizerInfo) => void }> = [];
  private readyFailed: ((err: unknown) => void) | undefined;
  private readonly busy: number[] = [];
  private readonly replies = new Map<number, TokenizeReply>();
  private waiter: { seq: number; resolve: (r: TokenizeReply | undefined) => void; reject: (e: unknown) => void } | undefined;
  private roomWaiters: Array<() => void> = [];
  private submitted = 0;
  private taken = 0;
  private ended = false;
  private failure: unknown;

  constructor(threads: number, data: TokenizeThreadData, private readonly maxInFlight = 4 * threads) {
    for (let i = 0; i < threads; i++) {
      let resolve!: (info: TokenizerInfo) => void;
      this.readyInfos.push({ promise: new Promise<TokenizerInfo>((r) => (resolve = r)), resolve });
      const worker = new Worker(threadScript(), { workerData: data });
      worker.on('message', (message: TokenizeReply | TokenizeThreadReady) => {
        if ('ready' in message) return this.readyInfos[i].resolve(message.tokenizer);
        this.busy[i]--;
        this.deliver(message);
      });
      worker.on('error', (err) => this.fail(err));
      worker.on('exit', (code) => {
        if (!this.ended || this.busy[i] > 0) this.fail(new Error(`tokenizer thread ${i} exited (code ${code})`));
      });
      this.workers.push(worker);
      this.busy.push(0);
    }
  }

  /**
   * Hands every thread the tokenizer (the main thread's, see BpeTokenizer.threadForm): the threads
   * start before it is loaded, so their start-up overlaps the load. Then call ready().
   */
  start(tokenizer: BpeThreadForm): void {
    for (const worker of this.workers) worker.postMessage({ tokenizer } satisfies TokenizeThreadInit);
  }

  /**
   * Waits until every thread has rebuilt the tokenizer start() sent and returns it, checking that
   * all threads got the same one.
   */
  async ready(): Promise<TokenizerInfo> {
    if (this.failure !== undefined) throw this.failure;
    const infos = await Promise.race([
      Promise.all(this.readyInfos.map((r) => r.promise)),
      new Promise<never>((_, reject) => (this.readyFailed = reject)),
    ]);
    const other = infos.find((t) => t.hash !== infos[0].hash);
    if (other !== undefined) {
      throw new TrainerError(DataErrorCode.TOKENIZER_FORMAT, `internal: the tokenizer threads rebuilt different tokenizers (hashes ${infos[0].hash.slice(0, 12)}... and ${other.hash.slice(0, 12)}...)`, {
        hint: 'run the command again; if it happens again, report it',
      });
    }
    return infos[0];
  }

  /** Sends a batch (the next in sequence) to the least busy thread; waits while maxInFlight are out. */
  async submit(request: Omit<TokenizeRequest, 'seq'>): Promise<void> {
    while (this.submitted - this.taken >= this.maxInFlight && this.failure === undefined) await new Promise<void>((r) => this.roomWaiters.push(r));
    if (this.failure !== undefined) throw this.failure;
    const i = this.busy.indexOf(Math.min(...this.busy));
    this.busy[i]++;
    const req: TokenizeRequest = { ...request, seq: this.submitted++ };
    this.workers[i].postMessage(req, req.bytes.byteLength > 0 ? [req.bytes.buffer as ArrayBuffer] : []);
  }

  /** No more submissions: next() returns undefined once every submitted batch was taken. */
  end(): void {
    this.ended = true;
    if (this.waiter && this.waiter.seq >= this.submitted) {
      this.waiter.resolve(undefined);
      this.waiter = undefined;
    }
  }

  /** The next result in sequence; throws the thread's TrainerError for a batch that failed. */
  async next(): Promise<TokenizedBatch | undefined> {
    if (this.failure !== undefined) throw this.failure;
    const seq = this.taken;
    let reply = this.replies.get(seq);
    if (reply === undefined) {
      if (this.ended && seq >= this.submitted) return undefined;
      reply = await new Promise<TokenizeReply | undefined>((resolve, reject) => (this.waiter = { seq, resolve, reject }));
      if (reply === undefined) return undefined;
    }
    this.replies.delete(seq);
    this.taken++;
    this.roomWaiters.shift()?.();
    if (!reply.ok) throw trainerErrorFrom(reply.error);
    return reply;
  }

  /** Fails every wait with `err` (a reading error, a dead thread). */
  fail(err: unknown): void {
    if (this.failure !== undefined) return;
    this.failure = err instanceof TrainerError || err instanceof PoolClosedError ? err : fromThread(err);
    this.waiter?.reject(this.failure);
    this.waiter = undefined;
    this.readyFailed?.(this.failure);
    for (const wake of this.roomWaiters.splice(0)) wake();
  }

  async close(): Promise<void> {
    this.ended = true;
    this.fail(new PoolClosedError());
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private deliver(reply: TokenizeReply): void {
    if (this.waiter && this.waiter.seq === reply.seq) {
      const { resolve } = this.waiter;
      this.waiter = undefined;
      resolve(reply);
      return;
    }
    this.replies.set(reply.seq, reply);
  }
}

/** An error a thread threw: a TrainerError arrives as a plain copy (code, message, hint), rebuilt here. */
function fromThread(err: unknown): TrainerError {
  const e = err as { code?: unknown; message?: unknown; hint?: unknown };
  if (typeof e?.code === 'string' && e.code.startsWith('TRAINER_ERR_') && typeof e.message === 'string') {
    return trainerErrorFrom({ code: e.code, message: e.message, hint: typeof e.hint === 'string' ? e.hint : undefined });
  }
  return asTrainerError(new Error(`tokenizer thread failed: ${(err as Error).message}`, { cause: err }));
}
