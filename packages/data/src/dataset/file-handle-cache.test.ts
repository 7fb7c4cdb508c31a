import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileHandleCache } from './file-handle-cache.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'trainer-handles-'));
  for (const name of ['a', 'b', 'c', 'd']) await writeFile(join(dir, name), name.repeat(4));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('FileHandleCache', () => {
  it('keeps at most maxOpen files open, closing the least recently used, and reuses open ones', async () => {
    const opened: string[] = [];
    const cache = new FileHandleCache(2, (key) => {
      opened.push(key);
      return open(join(dir, key), 'r');
    });
    const read = (key: string) => cache.use(key, async (h) => (await h.read(Buffer.alloc(4), 0, 4, 0)).buffer.toString());
    expect(await read('a')).toBe('aaaa');
    expect(await read('b')).toBe('bbbb');
    expect(await read('a')).toBe('aaaa'); // a is now the most recent
    expect(await read('c')).toBe('cccc'); // closes b
    expect(cache.size).toBe(2);
    expect(await read('a')).toBe('aaaa');
    expect(await read('b')).toBe('bbbb');
    expect(opened).toEqual(['a', 'b', 'c', 'b']);
    await cache.close();
    expect(cache.size).toBe(0);
  });

  it('never closes a handle in use, and forgets a failed open', async () => {
    const cache = new FileHandleCache(1, (key) => open(join(dir, key), 'r'));
    let release!: () => void;
    const held = cache.use('a', async (h) => {
      await new Promise<void>((r) => (release = r));
      return (await h.read(Buffer.alloc(4), 0, 4, 0)).buffer.toString();
    });
    await new Promise((r) => setTimeout(r, 10));
    await Promise.all(['b', 'c', 'd'].map((k) => cache.use(k, async () => undefined)));
    release();
    expect(await held).toBe('aaaa'); // still readable: it was not closed under the reader
    await expect(cache.use('nope', async () => undefined)).rejects.toThrow(/ENOENT/);
    expect(cache.size).toBe(1);
    await cache.close();
  });
});
