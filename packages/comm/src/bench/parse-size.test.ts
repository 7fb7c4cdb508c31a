import { describe, expect, it } from 'vitest';
import { parseSize } from './parse-size.js';

describe('parseSize', () => {
  it('reads binary and decimal units', () => {
    expect(parseSize('16MiB')).toBe(16 * 1024 * 1024);
    expect(parseSize('1M')).toBe(1024 * 1024);
    expect(parseSize('64KiB')).toBe(65536);
    expect(parseSize('1GB')).toBe(1e9);
    expect(parseSize('4096')).toBe(4096);
    expect(parseSize(' 2 kb ')).toBe(2000);
    expect(parseSize('0.5KiB')).toBe(512);
  });
  it('refuses what it cannot read, with a coded error', () => {
    for (const bad of ['', 'MiB', '16 MiBs', '-1', '1.3B', '0x10']) {
      expect(() => parseSize(bad)).toThrow(expect.objectContaining({ code: 'TRAINER_ERR_INVALID_ARGUMENT' }));
    }
  });
});
