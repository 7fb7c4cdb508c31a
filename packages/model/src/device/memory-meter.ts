/**
 * The backend memory a process holds, and its peak, measured exactly.
 *
 * tf.memory().numBytes adds up tensors, so two tensors sharing one buffer (a reshape, a saved
 * share of an input) count twice, and sampling it between segments misses the peak inside one.
 * This meter follows buffers instead: it wraps the engine's trackTensor (a buffer first seen) and
 * removeDataId (a buffer freed by its backend), so `backendBytes()` is the bytes of the distinct
 * buffers alive now and `takePeak()` the most there were at any moment since the last take,
 * allocations inside a tidy or a kernel sequence included. This is what a GPU would have had to
 * hold, and what the memory planner (engine's memory-plan.ts) predicts.
 */
import * as tf from '@tensorflow/tfjs-core';

interface EngineInternals {
  state: { tensorInfo: WeakMap<tf.DataId, { bytes: number }> };
  trackTensor(a: tf.Tensor, backend: tf.KernelBackend): void;
  removeDataId(dataId: tf.DataId, backend: tf.KernelBackend): void;
}

let installed = false;
let live = 0;
let peak = 0;
/** The buffers created since install, with their bytes (the engine's own table cannot be iterated). */
const counted = new WeakMap<tf.DataId, number>();

/** Starts counting (idempotent): buffers created from now on (install before building the model). */
export function installMemoryMeter(): void {
  if (installed) return;
  const engine = tf.engine() as unknown as EngineInternals;
  const track = engine.trackTensor.bind(engine);
  const remove = engine.removeDataId.bind(engine);
  engine.trackTensor = (a, backend) => {
    const known = engine.state.tensorInfo.has(a.dataId);
    track(a, backend);
    if (known) return;
    const bytes = engine.state.tensorInfo.get(a.dataId)?.bytes ?? 0;
    counted.set(a.dataId, bytes);
    live += bytes;
    if (live > peak) peak = live;
  };
  engine.removeDataId = (dataId, backend) => {
    remove(dataId, backend);
    const bytes = counted.get(dataId);
    if (bytes !== undefined && !engine.state.tensorInfo.has(dataId)) {
      counted.delete(dataId);
      live -= bytes;
    }
  };
  installed = true;
}

/** Bytes of the distinct backend buffers alive now (of those created since install). */
export function backendBytes(): number {
  return live;
}

/** The most bytes alive at once since the last call (or since install); starts the next interval at the current level. */
export function takePeakBackendBytes(): number {
  const p = peak;
  peak = live;
  return p;
}
