import { HeaderTemplate, type Header } from '../transport/frame.js';
import type { PayloadTarget } from '../transport/stream-link.js';
import type { BufferPool } from './buffer-pool.js';
import type { Outgoing } from './send-queue.js';
import { descriptorFields, MSG_DATA, type Descriptor } from './wire.js';

/** What an operation needs from its group: positions, a way to send to a group rank, scratch buffers. */
export interface GroupLink {
  readonly id: string;
  readonly size: number;
  /** This process's rank within the group. */
  readonly rank: number;
  readonly pool: BufferPool;
  send(groupRank: number, item: Outgoing): void;
}

/**
 * One collective call in flight: its descriptor, the arrivals of the other members, the data
 * pieces still expected, and the sends still reading caller memory. The group completes it when
 * every member has announced the same descriptor, every expected piece has been processed and
 * no send still reads the caller's buffer (so the caller may reuse it at once).
 */
export abstract class CollectiveOp {
  /** Descriptors announced by members (group rank -> descriptor), including our own. */
  readonly arrivals = new Map<number, Descriptor>();
  expected = 0;
  received = 0;
  pendingWrites = 0;
  /** Set by the group: re-checks completion after a write finished. */
  onProgress: () => void = () => {};
  /** The data header of this collective; pieces add their phase, shard and piece index. */
  private readonly template: HeaderTemplate;

  constructor(
    protected readonly link: GroupLink,
    readonly seq: number,
    readonly desc: Descriptor,
  ) {
    this.arrivals.set(link.rank, desc);
    this.template = new HeaderTemplate({ t: MSG_DATA, g: link.id, s: seq, ...descriptorFields(desc) }, ['ph', 'sh', 'pc']);
  }

  get complete(): boolean {
    return this.received === this.expected && this.arrivals.size === this.link.size && this.pendingWrites === 0;
  }

  /** Group ranks we expect data from, for a timeout message ("stalled on ..."). */
  abstract upstream(): number[];

  /** Sends what this rank can send before receiving anything. */
  abstract start(): void;

  /** Handles one data piece; throws on a malformed one. */
  abstract onData(from: number, h: Header, payload: Uint8Array | undefined): void;

  /** Where the payload of an incoming piece should land (stream channels), or undefined. */
  target(_from: number, _h: Header, _length: number): Uint8Array | PayloadTarget | undefined {
    return undefined;
  }

  /** The encoded header of one piece (the same bytes whoever sends that piece). */
  protected header(phase: number, shard: number, piece: number): Uint8Array {
    return this.template.encode([phase, shard, piece]);
  }

  /**
   * Sends `payload` (or what `build` returns, built when the socket has room) and counts it until
   * written; pooled buffers go back to the pool then.
   */
  protected sendTracked(to: number, build: () => { header: Header | Uint8Array; payload: Uint8Array | undefined }): void {
    this.pendingWrites++;
    this.link.send(to, () => {
      const { header, payload } = build();
      return {
        header,
        payload,
        onWritten: () => {
          this.link.pool.release(payload);
          this.pendingWrites--;
          if (this.pendingWrites === 0) this.onProgress();
        },
      };
    });
  }

  /**
   * Sends one payload to several group ranks; a pool buffer goes back to the pool after the last
   * of the writes (not after each, which would hand it out again while still being written).
   */
  protected sendShared(to: readonly number[], header: Uint8Array, payload: Uint8Array): void {
    let left = to.length;
    for (const dst of to) {
      this.pendingWrites++;
      this.link.send(dst, {
        header,
        payload,
        onWritten: () => {
          if (--left === 0) this.link.pool.release(payload);
          this.pendingWrites--;
          if (this.pendingWrites === 0) this.onProgress();
        },
      });
    }
  }
}

/** A barrier: nothing but the arrivals. */
export class BarrierOp extends CollectiveOp {
  upstream(): number[] {
    return [];
  }
  start(): void {}
  onData(): void {
    throw new Error('a barrier carries no data');
  }
}

export function intField(h: Header, key: string, min: number, maxExclusive: number): number {
  const v = h[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v >= maxExclusive) {
    throw new RangeError(`field "${key}" = ${JSON.stringify(v)} outside [${min}, ${maxExclusive})`);
  }
  return v;
}

/** The bytes of a Float32Array range, without copying. */
export function bytesOf(values: Float32Array): Uint8Array {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

/** True when two views start at the same memory (a payload that was received in place). */
export function sameMemory(a: Uint8Array, b: Float32Array | Uint8Array): boolean {
  return a.buffer === b.buffer && a.byteOffset === b.byteOffset;
}
