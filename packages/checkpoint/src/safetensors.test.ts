import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { asFloat32, bytesOf, decodeSafetensors, encodeSafetensors, readSafetensors, SafetensorsRangeReader, SafetensorsStreamWriter, writeSafetensors } from './safetensors.js';

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

describe('safetensors', () => {
  const a = new Float32Array([1, 2, 3, 4, 5, 6]);
  const b = new Float32Array([-0.5]);
  const tensors = [
    { name: 'a', dtype: 'F32' as const, shape: [2, 3], data: bytesOf(a) },
    { name: 'b', dtype: 'F32' as const, shape: [1], data: bytesOf(b) },
  ];

  it('round-trips tensors and metadata through a file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'st-'));
    await writeSafetensors(join(dir, 'x.safetensors'), tensors, { format: 'test' });
    const back = await readSafetensors(join(dir, 'x.safetensors'));
    expect(back.metadata).toEqual({ format: 'test' });
    expect(Array.from(asFloat32(back.tensors.get('a')!))).toEqual([1, 2, 3, 4, 5, 6]);
    expect(back.tensors.get('a')!.shape).toEqual([2, 3]);
    expect(Array.from(asFloat32(back.tensors.get('b')!))).toEqual([-0.5]);
  });

  it('writes the layout the reference implementation reads: u64 length, aligned JSON header, data', () => {
    const bytes = concat(encodeSafetensors(tensors));
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString());
    expect(header.a).toEqual({ dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] });
    expect(header.b).toEqual({ dtype: 'F32', shape: [1], data_offsets: [24, 28] });
    expect(bytes.length).toBe(8 + n + 28);
  });

  it('refuses truncated, foreign and inconsistent files', async () => {
    const good = concat(encodeSafetensors(tensors));
    expect(() => decodeSafetensors(good.subarray(0, good.length - 1))).toThrow(/outside the file/);
    expect(() => decodeSafetensors(new Uint8Array(4))).toThrow(/only 4 bytes/);
    const foreign = new Uint8Array(64).fill(0x41);
    expect(() => decodeSafetensors(foreign)).toThrow(/header length/);
    const badShape = Buffer.from(JSON.stringify({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }));
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(badShape.length));
    expect(() => decodeSafetensors(concat([prefix, badShape, new Uint8Array(8)]))).toThrow(/needs 12/);
    const dir = await mkdtemp(join(tmpdir(), 'st-'));
    await writeFile(join(dir, 'junk'), 'not a model');
    await expect(readSafetensors(join(dir, 'junk'))).rejects.toMatchObject({ code: 'TRAINER_ERR_SAFETENSORS_INVALID' });
  });

  it('refuses overlapping tensors', () => {
    const h = Buffer.from(JSON.stringify({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }));
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(h.length));
    expect(() => decodeSafetensors(concat([prefix, h, new Uint8Array(12)]))).toThrow(/overlap/);
  });

  it('streams a file tensor by tensor and reads element ranges back without loading it (F32, BF16 widened)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'st-'));
    const path = join(dir, 'm.safetensors');
    const a = Float32Array.from({ length: 12 }, (_, i) => i * 0.5);
    const b = Float32Array.from({ length: 6 }, (_, i) => 1 + i);
    const bCodes = Uint16Array.from(new Uint32Array(b.buffer), (u) => u >>> 16); // exact in bf16: small integers
    const w = await SafetensorsStreamWriter.open(path, [{ name: 'a', dtype: 'F32', shape: [3, 4] }, { name: 'b', dtype: 'BF16', shape: [6] }], { k: 'v' });
    await w.write(bytesOf(a.subarray(0, 5))); // any split
    await w.write(bytesOf(a.subarray(5)));
    await w.write(bytesOf(bCodes));
    await w.close();
    const whole = await readSafetensors(path);
    expect(Array.from(asFloat32(whole.tensors.get('a')!))).toEqual(Array.from(a));
    expect(whole.metadata).toEqual({ k: 'v' });
    const r = await SafetensorsRangeReader.open(path);
    expect(Array.from(await r.readFloat32('a', 3, 4))).toEqual(Array.from(a.subarray(3, 7)));
    expect(Array.from(await r.readFloat32('b', 2, 3))).toEqual([3, 4, 5]);
    await expect(r.readFloat32('a', 10, 4)).rejects.toThrow(/outside tensor a/);
    await expect(r.readFloat32('c', 0, 1)).rejects.toThrow(/no tensor c/);
    await r.close();
    // A stream closed early leaves nothing under the name; too many bytes are refused.
    const short = await SafetensorsStreamWriter.open(join(dir, 'short.safetensors'), [{ name: 'a', dtype: 'F32', shape: [2] }]);
    await expect(short.write(new Uint8Array(12))).rejects.toThrow(/header describes 8/);
    await short.write(new Uint8Array(4));
    await expect(short.close()).rejects.toThrow(/closed after 4 of 8/);
    await short.abort();
    await expect(readSafetensors(join(dir, 'short.safetensors'))).rejects.toThrow();
  });
});
