import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '../testing/helpers.js';
import { backendBytes, installMemoryMeter, takePeakBackendBytes } from './memory-meter.js';

describe.each(['wasm', 'cpu'] as const)('memory meter on %s', (backend) => {
  beforeAll(async () => {
    await useBackend(backend);
    installMemoryMeter();
  });

  it('counts distinct buffers (a reshape shares one) and the peak inside a tidy', () => {
    const before = backendBytes();
    takePeakBackendBytes();
    const a = tf.fill([1000], 1); // 4000 bytes
    const shared = tf.reshape(a, [10, 100]); // same buffer
    expect(backendBytes() - before).toBe(4000);
    const r = tf.tidy(() => {
      const t1 = tf.add(a, a); // +4000
      const t2 = tf.mul(t1, t1); // +4000: 12000 alive at the peak
      return tf.sum(t2); // the scalar survives, t1 and t2 are freed
    });
    expect(backendBytes() - before).toBe(4004);
    expect(takePeakBackendBytes() - before).toBe(12004);
    tf.dispose([a, shared, r]);
    expect(backendBytes()).toBe(before);
    expect(takePeakBackendBytes()).toBe(before + 4004); // the level when the interval began
  });
});
