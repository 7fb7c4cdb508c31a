import type { Header } from '../transport/frame.js';
import { allocFrame, encodeHeader } from '../transport/frame.js';
import type { Outgoing } from './send-queue.js';
import { descriptorFields, MSG_DATA, type Descriptor } from './wire.js';

/** What an operation needs from its group: positions, and a way to send to a group rank. */
export interface GroupLink {
  readonly id: string;
  readonly size: number;
  /** This process's rank within the group. */
  readonly rank: number;
  send(groupRank: number, item: Outgoing): void;
}

/**
 * One collective call in flight: its descriptor, the arrivals of the other members, and a
 * count of the data pieces still expected. The group completes it when every member has
 * announced the same descriptor and every expected piece has been processed.
 */
export abstract class CollectiveOp {
  /** Descriptors announced by members (group rank -> descriptor), including our own. */
  readonly arrivals = new Map<number, Descriptor>();
  expected = 0;
  received = 0;
  private readonly baseHeader: Header;

  constructor(
    protected readonly link: GroupLink,
    readonly seq: number,
    readonly desc: Descriptor,
  ) {
    this.arrivals.set(link.rank, desc);
    this.baseHeader = { t: MSG_DATA, g: link.id, s: seq, ...descriptorFields(desc) };
  }

  get complete(): boolean {
    return this.received === this.expected && this.arrivals.size === this.link.size;
  }

  /** Group rank we expect data from, for a timeout message ("stalled on ..."). */
  abstract upstream(): number[];

  /** Sends what this rank can send before receiving anything. */
  abstract start(): void;

  /** Handles one data piece; throws a TrainerError on a malformed one. */
  abstract onData(from: number, h: Header, payload: Uint8Array | undefined, frame: Buffer): void;

  /** A frame for piece (phase, shard, piece) with `bytes` payload bytes; fill the payload in place. */
  protected dataFrame(phase: number, shard: number, piece: number, bytes: number): { frame: Buffer; payload: Uint8Array } {
    const { frame, payloadOffset } = allocFrame(encodeHeader({ ...this.baseHeader, ph: phase, sh: shard, pc: piece }), bytes);
    return { frame, payload: frame.subarray(payloadOffset) };
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
