import { connect, type NetConnectOpts, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';

/** Where the next socket read should land, and what to do with the bytes once it has. */
export interface ReadTarget {
  /** The buffer for the next read (the kernel writes into it directly). */
  nextReadBuffer(scratch: Buffer): Uint8Array;
  /** `n` bytes were read into `buf` (the buffer nextReadBuffer returned). */
  onDirectRead(n: number, buf: Uint8Array): void;
}

const SCRATCH_BYTES = 64 * 1024;

/**
 * Reads a client socket with Node's `onread` option instead of 'data' events, so each read goes
 * where we choose: the kernel copies a payload straight into its destination (an all-gather
 * output slice, a pooled reduce buffer), with no intermediate chunk, copy or allocation per read.
 *
 * Until `attach` is called (during the HTTP upgrade and the handshake, run by http/ws) the bytes
 * are re-emitted as ordinary 'data' events, so those layers work unchanged.
 */
export class DirectReader {
  private readonly scratch = Buffer.allocUnsafe(SCRATCH_BYTES);
  private target: ReadTarget | undefined;
  socket: Socket | undefined;

  /** `socketPath`: connect to this Unix socket (abstract names included) instead of host:port; `secure`: TLS (options from ws). */
  constructor(private readonly socketPath?: string, private readonly secure = false) {}

  /** A `createConnection` for ws that opens the socket in onread mode. */
  readonly createConnection = (options: NetConnectOpts & { socketPath?: string }): Socket => {
    const path = this.socketPath ?? options.socketPath;
    const opts = { ...options, ...(path ? { path } : {}) } as NetConnectOpts;
    const onread = { buffer: () => this.next(), callback: (n: number, buf: Uint8Array) => this.onRead(n, buf) };
    this.socket = this.secure ? tlsConnect({ ...(opts as ConnectionOptions), onread } as ConnectionOptions) : connect({ ...opts, onread });
    return this.socket;
  };

  /** From now on reads go to `target` (after the handshake, when ws no longer reads). */
  attach(target: ReadTarget): void {
    this.target = target;
  }

  private next(): Uint8Array {
    return this.target ? this.target.nextReadBuffer(this.scratch) : this.scratch;
  }

  /** Returns true: keep reading (false would pause the socket). */
  private onRead(n: number, buf: Uint8Array): boolean {
    if (this.target) this.target.onDirectRead(n, buf);
    else this.socket?.emit('data', Buffer.from(buf.subarray(0, n)));
    return true;
  }
}
