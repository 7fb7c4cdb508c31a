import type { FileHandle } from 'node:fs/promises';

/**
 * At most `maxOpen` open files, least recently used closed first; a handle in use is never closed
 * (so the cache may hold more while that many reads are running). Opening is the caller's `open`,
 * which may also check the file (done once per open).
 */
export class FileHandleCache {
  private readonly entries = new Map<string, { handle: Promise<FileHandle>; users: number }>();

  constructor(private readonly maxOpen: number, private readonly open: (key: string) => Promise<FileHandle>) {}

  async use<T>(key: string, fn: (handle: FileHandle) => Promise<T>): Promise<T> {
    let entry = this.entries.get(key);
    if (entry) this.entries.delete(key); // re-inserted below: Map order is the recency order
    else entry = { handle: this.open(key), users: 0 };
    this.entries.set(key, entry);
    entry.users++;
    try {
      const handle = await entry.handle.catch((err: unknown) => {
        if (this.entries.get(key) === entry) this.entries.delete(key);
        throw err;
      });
      return await fn(handle);
    } finally {
      entry.users--;
      await this.evict();
    }
  }

  get size(): number {
    return this.entries.size;
  }

  async close(): Promise<void> {
    const all = [...this.entries.values()];
    this.entries.clear();
    await Promise.all(all.map((e) => e.handle.then((h) => h.close(), () => undefined)));
  }

  private async evict(): Promise<void> {
    for (const [key, entry] of this.entries) {
      if (this.entries.size <= this.maxOpen) return;
      if (entry.users > 0) continue;
      this.entries.delete(key);
      await entry.handle.then((h) => h.close(), () => undefined);
    }
  }
}
