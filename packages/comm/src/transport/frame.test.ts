import { describe, expect, it } from 'vitest';
import { allocFrame, decodeFrame, decodeHeader, encodeFrame, encodeHeader, HeaderTemplate } from './frame.js';
import { DEFAULT_LIMITS, resolveLimits } from './limits.js';

const limits = DEFAULT_LIMITS;

/** Builds a frame from raw msgpack header bytes, bypassing the encoder's own checks. */
function rawFrame(headerBytes: number[], payload: number[] = []): Buffer {
  const { frame, payloadOffset } = allocFrame(Uint8Array.from(headerBytes), payload.length);
  frame.set(payload, payloadOffset);
  return frame;
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

describe('frame', () => {
  it('round-trips a header and a payload, with the payload on a 4-byte boundary', () => {
    const payload = Uint8Array.from([1, 2, 3, 4, 5]);
    const frame = encodeFrame({ t: 'x', n: 5, nested: { a: [1, 'b', null] } }, payload);
    const { header, payload: got } = decodeFrame(frame, limits);
    expect(header).toEqual({ t: 'x', n: 5, nested: { a: [1, 'b', null] } });
    expect(Array.from(got!)).toEqual([1, 2, 3, 4, 5]);
    expect((got!.byteOffset - frame.byteOffset) % 4).toBe(0);
    expect(decodeFrame(encodeFrame({ a: 1 }), limits).payload).toBeUndefined();
  });

  it('refuses frames shorter than the prefix, or whose header runs past the end', () => {
    expect(codeOf(() => decodeFrame(Uint8Array.from([1, 0]), limits))).toBe('TRAINER_ERR_FRAME_INVALID');
    const f = encodeFrame({ a: 1 });
    f.writeUInt32LE(100, 0);
    expect(codeOf(() => decodeFrame(f, limits))).toBe('TRAINER_ERR_FRAME_INVALID');
    expect(codeOf(() => decodeFrame(Uint8Array.from([0, 0, 0, 0]), limits))).toBe('TRAINER_ERR_FRAME_INVALID');
  });

  it('refuses headers and payloads above the limits', () => {
    const small = resolveLimits({ maxHeaderBytes: 16, maxPayloadBytes: 8 });
    expect(codeOf(() => decodeFrame(encodeFrame({ long: 'x'.repeat(40) }), small))).toBe('TRAINER_ERR_FRAME_TOO_LARGE');
    expect(codeOf(() => decodeFrame(encodeFrame({ a: 1 }, new Uint8Array(9)), small))).toBe('TRAINER_ERR_FRAME_TOO_LARGE');
    expect(decodeFrame(encodeFrame({ a: 1 }, new Uint8Array(8)), small).payload!.byteLength).toBe(8);
  });

  it('refuses headers that are not msgpack, not a map, or carry trailing bytes', () => {
    expect(codeOf(() => decodeFrame(rawFrame([0xc1]), limits))).toBe('TRAINER_ERR_FRAME_INVALID');
    expect(codeOf(() => decodeFrame(rawFrame([0x92, 0x01, 0x02]), limits))).toBe('TRAINER_ERR_FRAME_INVALID'); // [1, 2]
    expect(codeOf(() => decodeFrame(rawFrame([0x01]), limits))).toBe('TRAINER_ERR_FRAME_INVALID'); // 1
    expect(codeOf(() => decodeFrame(rawFrame([0x80, 0x01]), limits))).toBe('TRAINER_ERR_FRAME_INVALID'); // {} then 1
  });

  it('refuses prototype-pollution keys and non-plain values', () => {
    const key = (s: string): number[] => [0xa0 | s.length, ...Buffer.from(s)];
    // { "__proto__": { "x": 1 } }
    expect(codeOf(() => decodeFrame(rawFrame([0x81, ...key('__proto__'), 0x81, ...key('x'), 0x01]), limits))).toBe('TRAINER_ERR_FRAME_INVALID');
    expect(({} as Record<string, unknown>).x).toBeUndefined();
    // { "a": { "constructor": 1 } }
    expect(codeOf(() => decodeFrame(rawFrame([0x81, ...key('a'), 0x81, ...key('constructor'), 0x01]), limits))).toBe('TRAINER_ERR_FRAME_INVALID');
    // { "d": timestamp extension (a Date) }
    expect(codeOf(() => decodeFrame(rawFrame([0x81, ...key('d'), 0xd6, 0xff, 0, 0, 0, 1]), limits))).toBe('TRAINER_ERR_FRAME_INVALID');
    // { "b": uint64 2^63 } decodes to a BigInt-free number or is refused, never a BigInt
    const big = [0x81, ...key('b'), 0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0];
    const r = codeOf(() => decodeFrame(rawFrame(big), limits));
    if (r === undefined) expect(typeof decodeFrame(rawFrame(big), limits).header.b).toBe('number');
    else expect(r).toBe('TRAINER_ERR_FRAME_INVALID');
  });

  it('refuses a non-object header on the sending side too', () => {
    expect(codeOf(() => encodeHeader([1] as unknown as Record<string, unknown>))).toBe('TRAINER_ERR_INVALID_ARGUMENT');
  });

  it('HeaderTemplate encodes the same map as encodeHeader, for every integer width', () => {
    const base = { t: 'c', g: '0,1,2#0', s: 12345, op: 'allReduce:sum@direct', n: 67108864, c: 'bf16', r: -1, pe: 524288 };
    const tpl = new HeaderTemplate(base, ['ph', 'sh', 'pc']);
    for (const v of [0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1]) {
      const bytes = tpl.encode([1, v, 3]);
      expect(decodeHeader(bytes)).toEqual({ ...base, ph: 1, sh: v, pc: 3 });
      const frame = encodeFrame(bytes, Uint8Array.from([9, 8, 7]));
      expect(decodeFrame(frame, DEFAULT_LIMITS).header).toEqual({ ...base, ph: 1, sh: v, pc: 3 });
    }
    expect(() => tpl.encode([1, -1, 0])).toThrow(RangeError);
    expect(() => tpl.encode([1, 2 ** 32, 0])).toThrow(RangeError);
    expect(() => tpl.encode([1, 0.5, 0])).toThrow(RangeError);
    expect(() => new HeaderTemplate(base, ['t'])).toThrow(RangeError); // a key of the base
    expect(() => new HeaderTemplate(Object.fromEntries(Array.from({ length: 14 }, (_, i) => [`k${i}`, i])), ['a', 'b'])).toThrow(RangeError);
  });

  it('refuses nonsense limits', () => {
    expect(codeOf(() => resolveLimits({ maxPayloadBytes: -1 }))).toBe('TRAINER_ERR_INVALID_ARGUMENT');
    expect(codeOf(() => resolveLimits({ maxHeaderBytes: 1.5 }))).toBe('TRAINER_ERR_INVALID_ARGUMENT');
    expect(resolveLimits(undefined)).toEqual({ maxHeaderBytes: 64 * 1024, maxPayloadBytes: 1024 ** 3 });
  });
});
