import { describe, expect, it } from 'vitest';
import { DataErrorCode } from '../codes.js';
import { expectTrainerError } from '../internal/expect-error.js';
import { validationKey, validationThreshold } from './validation-split.js';

describe('validation split', () => {
  it('keys a document by the first 4 bytes of its SHA-256 (stable across versions)', () => {
    // sha256("hello") = 2cf24dba...
    expect(validationKey(new TextEncoder().encode('hello'))).toBe(0x2cf24dba);
  });

  it('holds out about valFraction of the documents, none at 0', async () => {
    const threshold = validationThreshold(0.1);
    expect(threshold).toBe(Math.floor(0.1 * 2 ** 32));
    const encoder = new TextEncoder();
    let held = 0;
    for (let i = 0; i < 20000; i++) if (validationKey(encoder.encode(`document ${i}`)) < threshold) held++;
    expect(held / 20000).toBeGreaterThan(0.09);
    expect(held / 20000).toBeLessThan(0.11);
    expect(validationThreshold(0)).toBe(0);
    await expectTrainerError(() => validationThreshold(0.6), DataErrorCode.DATA_OPTION);
    await expectTrainerError(() => validationThreshold(Number.NaN), DataErrorCode.DATA_OPTION);
  });
});
