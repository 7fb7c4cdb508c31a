import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (name === 'node_modules' || name === 'dist') return [];
    if (statSync(p).isDirectory()) return sources(p);
    return p.endsWith('.ts') && !p.endsWith('.test.ts') ? [p] : [];
  });
}

describe('docs', () => {
  it('docs/ERRORS.md lists every error code the sources can throw', () => {
    const doc = readFileSync(join(root, 'docs', 'ERRORS.md'), 'utf8');
    const codes = new Set<string>();
    for (const file of sources(join(root, 'packages'))) {
      for (const m of readFileSync(file, 'utf8').matchAll(/'(TRAINER_ERR_[A-Z0-9_]+)'/g)) codes.add(m[1]);
    }
    expect(codes.size).toBeGreaterThan(40);
    const missing = [...codes].filter((c) => !doc.includes('`' + c + '`'));
    expect(missing).toEqual([]);
  });
});
