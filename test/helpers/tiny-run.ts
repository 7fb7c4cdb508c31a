import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A small but real job for multi-process tests: a 1-block GPT on a few kilobytes of text, so a
 * run takes seconds. Every test gets its own folder (corpus, cache, run output).
 */
export function tinyWorkspace(): { dir: string; corpus: string; cache: string; out: (name: string) => string } {
  const dir = mkdtempSync(join(tmpdir(), 'trainer-test-'));
  const corpus = join(dir, 'corpus.txt');
  const sentences = [
    'The whale swam past the ship at dawn.',
    'Call me Ishmael, said the sailor to the captain.',
    'The sea was calm and the sky was grey over the harbour.',
    'A harpoon flew and missed the great white whale.',
    'The crew sang songs of home while the wind rose.',
  ];
  const lines: string[] = [];
  for (let i = 0; i < 200; i++) lines.push(sentences[(i * 7) % sentences.length] + ` (${i})`);
  writeFileSync(corpus, lines.join('\n'));
  return { dir, corpus, cache: join(dir, 'cache'), out: (name) => join(dir, name) };
}

/** Arguments of a tiny training job (add --nodes, --out, and anything else). */
export function tinyJobArgs(ws: { corpus: string; cache: string }, extra: string[] = []): string[] {
  return [
    '--model', 'gpt-nano', '--layers', '1', '--heads', '2', '--d-model', '32', '--vocab-size', '300', '--context-length', '32',
    '--data', ws.corpus, '--cache-dir', ws.cache, '--backend', 'wasm',
    '--steps', '4', '--global-batch', '4', '--lr', '3e-3', '--warmup-steps', '1', '--eval-batches', '2', '--eval-every', '2',
    '--sample-tokens', '8', ...extra,
  ];
}
