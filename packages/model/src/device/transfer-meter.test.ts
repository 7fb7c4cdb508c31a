import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { hostDownload, hostMutate, hostOp, hostRead, hostTake } from '../host/tensor-io.js';
import { useBackend } from '../testing/helpers.js';
import { installTransferMeter, transferCounts } from './transfer-meter.js';

/** Bytes each way that `fn` moved. */
async function measure(fn: () => unknown): Promise<{ hostToDevice: number; deviceToHost: number }> {
  const a = transferCounts();
  await fn();
  const b = transferCounts();
  return { hostToDevice: b.hostToDevice - a.hostToDevice, deviceToHost: b.deviceToHost - a.deviceToHost };
}

describe.each(['wasm', 'cpu'] as const)('transfer meter on %s', (backend) => {
  beforeAll(async () => {
    await useBackend(backend);
    installTransferMeter();
    installTransferMeter(); // idempotent: a second install must not count twice
  });

  it('counts tensors made from host values, including JS numbers converted by ops', async () => {
    const x = tf.tensor1d(new Float32Array(10));
    expect(await measure(() => tf.dispose(tf.tensor2d(new Float32Array(6), [2, 3])))).toEqual({ hostToDevice: 24, deviceToHost: 0 });
    expect(await measure(() => tf.dispose(tf.tensor1d(new Int32Array(5), 'int32')))).toEqual({ hostToDevice: 20, deviceToHost: 0 });
    expect(await measure(() => tf.dispose(tf.scalar(1)))).toEqual({ hostToDevice: 4, deviceToHost: 0 });
    expect(await measure(() => tf.dispose(tf.mul(x, 0.5)))).toEqual({ hostToDevice: 4, deviceToHost: 0 }); // the 0.5
    expect(await measure(() => tf.dispose(tf.zeros([3, 4])))).toEqual({ hostToDevice: 48, deviceToHost: 0 }); // built on the host
    expect(await measure(() => tf.dispose(tf.fill([3, 4], 0)))).toEqual({ hostToDevice: 0, deviceToHost: 0 }); // a kernel
    expect(await measure(() => tf.dispose(tf.add(x, x)))).toEqual({ hostToDevice: 0, deviceToHost: 0 });
    x.dispose();
  });

  it('counts every read once: dataSync, arraySync, data, array', async () => {
    const x = tf.tensor2d(new Float32Array(6), [2, 3]);
    expect(await measure(() => x.dataSync())).toEqual({ hostToDevice: 0, deviceToHost: 24 });
    expect(await measure(() => x.arraySync())).toEqual({ hostToDevice: 0, deviceToHost: 24 });
    expect(await measure(() => x.data())).toEqual({ hostToDevice: 0, deviceToHost: 24 }); // wasm's read calls its readSync: still once
    expect(await measure(() => x.array())).toEqual({ hostToDevice: 0, deviceToHost: 24 });
    x.dispose();
  });

  it('counts host/tensor-io accesses: inputs read as device -> host, outputs written as host -> device', async () => {
    const a = tf.tensor1d(new Float32Array(8));
    const b = tf.tensor1d(new Float32Array(4));
    let outs: tf.Tensor[] = [];
    expect(await measure(() => (outs = hostOp([a, b], [[3], [5]], (_, [o1, o2]) => (o1.fill(1), o2.fill(2)))))).toEqual({
      hostToDevice: 32,
      deviceToHost: 48,
    });
    tf.dispose(outs);
    expect(await measure(() => hostRead([a, b], () => 0))).toEqual({ hostToDevice: 0, deviceToHost: 48 });
    expect(await measure(() => hostDownload(a))).toEqual({ hostToDevice: 0, deviceToHost: 32 });
    const c = tf.add(a, a); // a fresh tensor, which hostMutate may write in place
    let mutated: tf.Tensor = c;
    expect(await measure(() => (mutated = hostMutate(c, (v) => v.fill(3))))).toEqual({ hostToDevice: 32, deviceToHost: 32 });
    expect(await measure(() => hostTake(mutated))).toEqual({ hostToDevice: 0, deviceToHost: 32 });
    tf.dispose([a, b]);
  });
});
