import type { Channel } from '../transport/channel.js';

/** A frame, or a function that builds it when the socket has room (so big sends are not all allocated at once). */
export type Outgoing = Buffer | (() => Buffer);

/**
 * The per-peer outgoing queue of the collectives. Frames go to the channel while its
 * bufferedAmount stays under the channel's high-water mark; the rest wait here (built lazily)
 * and are pumped on 'drain'. This bounds memory and keeps several pieces in flight.
 */
export class SendQueue {
  private readonly items: Outgoing[] = [];
  private readonly callbacks = new Map<number, () => void>();
  private pushed = 0;
  private sent = 0;
  private blocked = false;
  bytesSent = 0;

  constructor(private readonly channel: Channel) {
    channel.on('drain', () => {
      this.blocked = false;
      this.pump();
    });
  }

  get length(): number {
    return this.items.length;
  }

  /** Queues a frame; `onSent` runs once it has been handed to the channel. */
  push(item: Outgoing, onSent?: () => void): void {
    if (onSent) this.callbacks.set(this.pushed, onSent);
    this.pushed++;
    this.items.push(item);
    if (!this.blocked) this.pump();
  }

  /** Drops everything not yet handed to the channel (on failure or close). */
  clear(): void {
    this.sent += this.items.length;
    this.items.length = 0;
    this.callbacks.clear();
  }

  private pump(): void {
    while (this.items.length > 0 && !this.blocked) {
      if (!this.channel.isOpen) {
        this.clear();
        return;
      }
      const item = this.items.shift()!;
      const frame = typeof item === 'function' ? item() : item;
      this.bytesSent += frame.byteLength;
      const index = this.sent++;
      if (!this.channel.sendFrame(frame)) this.blocked = true;
      const cb = this.callbacks.get(index);
      if (cb) {
        this.callbacks.delete(index);
        cb();
      }
    }
  }
}
