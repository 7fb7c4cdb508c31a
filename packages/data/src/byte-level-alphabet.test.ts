import { describe, expect, it } from 'vitest';
import { BYTE_LEVEL_CHARS, byteLevelToBytes, bytesToByteLevel } from './byte-level-alphabet.js';

describe('byte-level alphabet (GPT-2 bytes_to_unicode)', () => {
  it('maps the 256 bytes to 256 distinct single characters, as GPT-2 does', () => {
    expect(new Set(BYTE_LEVEL_CHARS).size).toBe(256);
    expect(BYTE_LEVEL_CHARS.every((c) => c.length === 1)).toBe(true);
    expect(BYTE_LEVEL_CHARS[0x20]).toBe('Ġ'); // space, as in 'Ġthe'
    expect(BYTE_LEVEL_CHARS[0x0a]).toBe('Ċ'); // newline
    expect(BYTE_LEVEL_CHARS[0x00]).toBe('Ā');
    expect(BYTE_LEVEL_CHARS[0x41]).toBe('A');
    expect(BYTE_LEVEL_CHARS[0xad]).toBe('\u0143'); // soft hyphen, the last non-printable byte: U+0100 + 67
    expect(BYTE_LEVEL_CHARS[0xe9]).toBe('é');
  });

  it('round-trips bytes and refuses characters outside the alphabet', () => {
    const bytes = new TextEncoder().encode(' héllo 東京\n');
    const text = bytesToByteLevel(bytes);
    expect(text).toBe('ĠhÃ©lloĠæĿ±äº¬Ċ');
    expect(byteLevelToBytes(text)).toEqual(bytes);
    expect(byteLevelToBytes('a b')).toBeUndefined(); // a raw space is not in the alphabet
    expect(byteLevelToBytes('東京')).toBeUndefined();
  });
});
