import type { Channel } from '../transport/channel.js';
import type { Header } from '../transport/frame.js';

/** One outgoing message: the payload is written from this memory (keep it until onWritten). */
export interface OutgoingMessage {
  /** The header, or its encoded bytes (a HeaderTemplate's). */
  header: Header | Uint8Array;
  payload?: Uint8Array;
  /** Runs once the payload has been handed to the kernel (or dropped because the channel closed). */
  onWritten?: () => void;
}

/** A message, or a function that builds it when the socket has room (so big sends are not all prepared at once). */
export type Outgoing = OutgoingMessage | (() => OutgoingMessage);

/**
 * The per-peer outgoing queue of the collectives. Messages go to the channel while its
 * bufferedAmount stays under the channel's high-water mark; the rest wait here (built lazily)
 * and are pumped on 'drain'. This bounds memory and keeps several pieces in flight.
 */
export class SendQueue {
  private readonly items: Outgoing[] = [];
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

  push(item: Outgoing): void {
    this.items.push(item);
    if (!this.blocked) this.pump();
  }

  /** Drops everything not yet handed to the channel (on failure or close); their onWritten still run. */
  clear(): void {
    for (const item of this.items.splice(0)) if (typeof item !== 'function') item.onWritten?.();
  }

  private pump(): void {
    while (this.items.length > 0 && !this.blocked) {
      if (!this.channel.isOpen) {
        this.clear();
        return;
      }
      const item = this.items.shift()!;
      const msg = typeof item === 'function' ? item() : item;
      this.bytesSent += (msg.payload?.byteLength ?? 0) + 32;
      const done = msg.onWritten;
      if (!this.channel.send(msg.header, msg.payload, done ? () => done() : undefined)) this.blocked = true;
    }
  }
}
