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
  state: { tensorInfo: Map<tf.DataId, { bytes: number }> };
  trackTensor(a: tf.Tensor, backend: tf.KernelBackend): void;
  removeDataId(dataId: tf.DataId, backend: tf.KernelBackend): void;
}

let installed = false;
let live = 0;
let peak = 0;

/** Starts counting (idempotent); buffers that exist already are counted from now on. */
export function installMemoryMeter(): void {
  if (installed) return;
  installed = true;
  const engine = tf.engine() as unknown as EngineInternals;
  for (const info of engine.state.tensorInfo.values()) live += info.bytes;
  peak = live;
  const track = engine.trackTensor.bind(engine);
  engine.trackTensor = (a, backend) => {
    const known = engine.state.tensorInfo.has(a.dataId);
    track(a, backend);
    if (known) return;
    live += engine.state.tensorInfo.get(a.dataId)?.bytes ?? 0;
    if (live > peak) peak = live;
  };
  const remove = engine.removeDataId.bind(engine);
  engine.removeDataId = (dataId, backend) => {
    const info = engine.state.tensorInfo.get(dataId);
    remove(dataId, backend);
    if (info && !engine.state.tensorInfo.has(dataId)) live -= info.bytes;
  };
}

/** Bytes of the distinct backend buffers alive now. */
export function backendBytes(): number {
  return live;
}

/** The most bytes alive at once since the last call (or since install); starts the next interval at the current level. */
export function takePeakBackendBytes(): number {
  const p = peak;
  peak = live;
  return p;
}
