/**
 * A meter of host <-> device crossings: every byte that moves between JS memory and a backend's
 * tensor memory, counted where it crosses, so a test can say "this step downloaded 4 bytes".
 *
 * Where data crosses in TF.js, and what is counted:
 *  - host -> device: `engine.makeTensor(values, ...)`, the one door for tensors made from host
 *    values (tf.tensor, tf.scalar, tf.zeros / tf.ones, and JS numbers that an op converts, as in
 *    tf.mul(x, 0.5)): the values' byteLength.
 *  - device -> host: `engine.readSync(dataId)` (Tensor.dataSync, arraySync) and
 *    `engine.read(dataId)` (Tensor.data, array, bytes): the returned typed array's byteLength.
 *    The engine is wrapped, not the backend: wasm's read calls its own readSync internally, and
 *    wrapping there would count that read twice.
 *  - host/tensor-io.ts reads and writes tensor memory directly on wasm (heap views) and writes in
 *    place on cpu, past the engine; it reports those bytes through recordHostToDevice /
 *    recordDeviceToHost, so nothing that crosses is missed.
 * Kernel outputs (makeTensorFromTensorInfo) and a backend's own internal tensors never cross.
 *
 * Counting starts with installTransferMeter() (before it, nothing is counted) and is cumulative:
 * measure a region by the difference of two transferCounts().
 */
import * as tf from '@tensorflow/tfjs-core';

/** Cumulative bytes moved each way since the meter was installed. */
export interface TransferCounts {
  hostToDevice: number;
  deviceToHost: number;
  /**
   * Synchronous reads (dataSync, arraySync): each stalls the device queue, and on WebGPU in Node
   * it throws. The tf kernel set's step makes none; the host kernels read host memory this way.
   */
  syncReads: number;
  /**
   * Milliseconds in which a transfer was under way: uploads and synchronous reads as they run,
   * awaited reads from the call to the data (overlapping ones counted once). On a GPU an awaited
   * read also waits for the work queued before it, so this bounds the transfer time from above.
   */
  transferMs: number;
}

/** The three engine methods through which data crosses (tfjs-core 4.x Engine; typed loosely on purpose). */
interface EngineDoors {
  makeTensor(values: unknown, shape: number[], dtype?: string, backend?: unknown): tf.Tensor;
  readSync(dataId: object): unknown;
  read(dataId: object): Promise<unknown>;
}

const counts: TransferCounts = { hostToDevice: 0, deviceToHost: 0, syncReads: 0, transferMs: 0 };
/** Awaited reads in flight, and since when at least one has been. */
let pendingReads = 0;
let pendingSince = 0;
/** Engines already wrapped (tf.engine() is one global object; a WeakSet keeps install idempotent). */
const metered = new WeakSet<object>();
let installed = false;

const textEncoder = new TextEncoder();

/** Bytes of a backend value: a typed array, or (string tensors) an array of encoded strings. */
function bytesOf(values: unknown, dtype?: string): number {
  if (ArrayBuffer.isView(values)) return values.byteLength;
  if (values instanceof ArrayBuffer) return values.byteLength;
  if (!Array.isArray(values)) return 0;
  let n = 0;
  for (const v of values) {
    if (ArrayBuffer.isView(v)) n += v.byteLength;
    else if (typeof v === 'string') n += textEncoder.encode(v).byteLength;
    else n += dtype === 'bool' ? 1 : dtype === 'complex64' ? 8 : 4;
  }
  return n;
}

/**
 * Starts counting (idempotent): wraps the engine's makeTensor, readSync and read. Each call of a
 * wrapped method counts its bytes once.
 */
export function installTransferMeter(): void {
  const engine = tf.engine() as unknown as EngineDoors;
  installed = true;
  if (metered.has(engine)) return;
  metered.add(engine);
  const makeTensor = engine.makeTensor;
  const readSync = engine.readSync;
  const read = engine.read;
  engine.makeTensor = function (this: EngineDoors, values, shape, dtype, backend) {
    counts.hostToDevice += bytesOf(values, dtype);
    const started = performance.now();
    try {
      return makeTensor.call(this, values, shape, dtype, backend);
    } finally {
      if (pendingReads === 0) counts.transferMs += performance.now() - started;
    }
  };
  engine.readSync = function (this: EngineDoors, dataId) {
    counts.syncReads += 1;
    const started = performance.now();
    const values = readSync.call(this, dataId);
    if (pendingReads === 0) counts.transferMs += performance.now() - started;
    counts.deviceToHost += bytesOf(values);
    return values;
  };
  engine.read = function (this: EngineDoors, dataId) {
    if (pendingReads++ === 0) pendingSince = performance.now();
    const done = () => {
      if (--pendingReads === 0) counts.transferMs += performance.now() - pendingSince;
    };
    return read.call(this, dataId).then((values) => {
      done();
      counts.deviceToHost += bytesOf(values);
      return values;
    }, (err: unknown) => {
      done();
      throw err;
    });
  };
}

/** Cumulative counts (a copy). */
export function transferCounts(): TransferCounts {
  return { ...counts };
}

/** For code that writes tensor memory past the engine (host/tensor-io.ts). */
export function recordHostToDevice(bytes: number): void {
  if (installed) counts.hostToDevice += bytes;
}

/** For code that reads tensor memory past the engine (host/tensor-io.ts). */
export function recordDeviceToHost(bytes: number): void {
  if (installed) counts.deviceToHost += bytes;
}
