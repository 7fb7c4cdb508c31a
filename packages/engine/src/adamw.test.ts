import { describe, expect, it } from 'vitest';
import { AdamW } from './adamw.js';
import { learningRateAt } from './lr-schedule.js';
import { clipFactor } from './grad-clip.js';

// torch.optim.AdamW(lr=0.01, betas=(0.9, 0.95), eps=1e-8), group p with weight_decay 0.1 and
// group q with 0; produced by scripts/fixtures/adamw_reference.py (PyTorch 1.13).
const TORCH_TRAJECTORY = [
  [0.4895000159740448, -0.9890000224113464, 1.9880000352859497, 0.0, 2.986999988555908, 0.9900000095367432, -0.23999999463558197],
  [0.4796175956726074, -0.9916447997093201, 1.9865384101867676, -0.007349600084125996, 2.982560873031616, 0.9832135438919067, -0.24363373219966888],
  [0.4811721742153168, -0.9948258399963379, 1.9849640130996704, -0.014864623546600342, 2.977731466293335, 0.9859965443611145, -0.2504834830760956],
];
const GRADS = [
  [0.1, -0.2, 0.3, 0.0, 1.5, 0.3, -0.1],
  [0.05, 0.4, -0.3, 2.0, -1.0, 0.0, 0.2],
  [-0.2, 0.1, 0.0, 0.7, 0.2, -0.5, 0.5],
];

describe('AdamW', () => {
  it('follows torch.optim.AdamW step for step, with decay only inside decay ranges', () => {
    const params = new Float32Array([0.5, -1.0, 2.0, 0.0, 3.0, 1.0, -0.25]);
    const opt = new AdamW({ beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 }, { start: 0, end: 7 }, [{ start: 0, end: 5 }]);
    GRADS.forEach((g, t) => {
      opt.update(params, new Float32Array(g), 0.01);
      TORCH_TRAJECTORY[t].forEach((want, i) => expect(params[i]).toBeCloseTo(want, 6));
    });
  });

  it('updates a partition exactly as the whole vector would (ZeRO-style ownership)', () => {
    const config = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
    const decay = [{ start: 0, end: 5 }];
    const whole = new Float32Array([0.5, -1.0, 2.0, 0.0, 3.0, 1.0, -0.25]);
    const split = new Float32Array(whole);
    const full = new AdamW(config, { start: 0, end: 7 }, decay);
    const parts = [new AdamW(config, { start: 0, end: 3 }, decay), new AdamW(config, { start: 3, end: 7 }, decay)];
    for (const g of GRADS) {
      const grads = new Float32Array(g);
      full.update(whole, grads, 0.01);
      for (const part of parts) part.update(split.subarray(part.start, part.end), grads.subarray(part.start, part.end), 0.01);
    }
    expect(Array.from(split)).toEqual(Array.from(whole));
  });

  it('refuses a state that covers another range', () => {
    const opt = new AdamW({ beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0 }, { start: 0, end: 4 }, []);
    const other = new AdamW({ beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0 }, { start: 4, end: 8 }, []);
    expect(() => opt.loadState(other.state())).toThrow(/covers \[4, 8\)/);
  });
});

describe('learning-rate schedule', () => {
  const s = { lr: 1e-3, minLr: 1e-4, warmupSteps: 10, decaySteps: 110 };
  it('warms up linearly, then decays by a cosine to the floor', () => {
    expect(learningRateAt(0, s)).toBeCloseTo(1e-4, 12);
    expect(learningRateAt(9, s)).toBeCloseTo(1e-3, 12);
    expect(learningRateAt(60, s)).toBeCloseTo(5.5e-4, 12);
    expect(learningRateAt(110, s)).toBe(1e-4);
    expect(learningRateAt(500, s)).toBe(1e-4);
  });
});

describe('clipping by global norm', () => {
  it('scales only when the norm exceeds the limit', () => {
    expect(clipFactor(0.5, 1)).toBe(1);
    expect(clipFactor(4, 1)).toBeCloseTo(0.25, 6);
    expect(clipFactor(4, 0)).toBe(1);
  });
});
