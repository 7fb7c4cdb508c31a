import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { readManifest, readSafetensors, verifyCheckpoint } from '@trainer/checkpoint';
import { BpeTokenizer } from '@trainer/data';
import { loadModelDir } from '@trainer/launcher';
import { runTrainer } from './helpers/processes.js';
import { tinyRun } from './helpers/checkpoint-run.js';
import { tinyWorkspace } from './helpers/tiny-run.js';

const root = fileURLToPath(new URL('..', import.meta.url));

/**
 * Checkpoints, model folders and tokenizers from elsewhere are data. How that is guaranteed:
 * every loader reads bytes and parses JSON (JSON.parse, then a schema or field-by-field
 * checks) or fixed binary layouts (safetensors: a length, a JSON header, raw little-endian
 * numbers); nothing is deserialized into code (no pickle, no eval, no module loading), the
 * only dynamic imports load fixed package names, and a tokenizer's pre-tokenization regex must
 * be one this build knows. The first test keeps it that way by reading the loaders' sources;
 * the others feed hostile files to the loaders and to the CLI.
 */
const LOADER_SOURCES = ['packages/checkpoint/src', 'packages/data/src', 'packages/tasks/src', 'packages/launcher/src/checkpointing', 'packages/launcher/src/finetune', 'packages/launcher/src/model-files.ts', 'packages/model/src'];
const EXECUTES = [/\beval\s*\(/, /new\s+Function\s*\(/, /from 'node:vm'|require\('vm'\)|\bvm\.run/, /child_process/, /\bimport\s*\(\s*[^'"\s)]/, /\brequire\s*\(\s*[^'"\s)]/, /new\s+Worker\s*\(\s*[^n]/];
/** The dynamic imports that exist, each of a fixed package name (not of anything read from a file). */
const ALLOWED = new Map([
  ['packages/model/src/backend.ts', [/await import\(specifier\)/]],
  ['packages/model/src/webgpu-adapter.ts', [/await import\(specifier\)/]], // npm webgpu (Dawn), optional
  ['packages/data/src/builtin-corpora.ts', [/require\(`\$\{pkg\}\/package\.json`\)/]],
  ['packages/checkpoint/src/shard-writer.ts', [/new Worker\(threadScript\(\)\)/]], // the writer thread's own script
  ['packages/data/src/dataset/tokenizer-pool.ts', [/new Worker\(threadScript\(\), \{ workerData: data \}\)/]], // data prepare's tokenizer threads' own script
]);

function sourcesUnder(path: string): string[] {
  const abs = join(root, path);
  if (!statSync(abs).isDirectory()) return [abs];
  // Benchmarks (which start processes on purpose) read no files from elsewhere.
  return readdirSync(abs, { recursive: true, encoding: 'utf8' }).map((f) => join(abs, f)).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && !f.includes('generated') && !f.includes('/bench/'));
}

const pollutionCheck = () => ({} as Record<string, unknown>).polluted;

describe('files from elsewhere never execute anything', () => {
  it('the loaders contain no eval, Function, vm, child processes, or imports of computed names', () => {
    const files = LOADER_SOURCES.flatMap(sourcesUnder);
    expect(files.length).toBeGreaterThan(30);
    const found: string[] = [];
    for (const file of files) {
      const rel = relative(root, file);
      for (const [i, line] of readFileSync(file, 'utf8').split('\n').entries()) {
        if (/^\s*(\/\/|\*)/.test(line)) continue;
        for (const pattern of EXECUTES) {
          if (pattern.test(line) && !(ALLOWED.get(rel) ?? []).some((ok) => ok.test(line))) found.push(`${rel}:${i + 1}: ${line.trim()}`);
        }
      }
    }
    expect(found).toEqual([]);
    // The one computed import loads a native backend, by a name from a fixed list.
    expect(readFileSync(join(root, 'packages/model/src/backend.ts'), 'utf8')).toMatch(/'@tensorflow\/tfjs-node-gpu'/);
    // And Dawn's, by its one fixed name.
    expect(readFileSync(join(root, 'packages/model/src/webgpu-adapter.ts'), 'utf8')).toMatch(/const specifier: string = 'webgpu';/);
  });

  it('hostile tokenizers are refused: prototype keys, an unknown regex, code in strings', async () => {
    const ws = tinyWorkspace();
    const good = JSON.parse(JSON.stringify((await BpeTokenizer.load(await trainedTokenizer(ws))).toJSON())) as Record<string, unknown>;
    const marker = join(ws.dir, 'PWNED');
    const hostile: Record<string, string> = {
      proto: JSON.stringify(good).replace('{', '{"__proto__": {"polluted": "yes"}, "constructor": {"prototype": {"polluted": "yes"}},'),
      regex: JSON.stringify({ ...good, pattern: '(a+)+$' }),
      code: JSON.stringify({ ...good, merges: [`require('fs').writeFileSync('${marker}', 'x')`], specialTokens: ["<%= process.exit(7) %>"] }),
    };
    for (const [name, text] of Object.entries(hostile)) {
      const path = join(ws.dir, `${name}.json`);
      writeFileSync(path, text);
      let outcome = 'loaded';
      try {
        await BpeTokenizer.load(path);
      } catch (err) {
        outcome = (err as { code?: string }).code ?? String(err);
      }
      if (name === 'proto') expect(['loaded', 'TRAINER_ERR_TOKENIZER_FORMAT']).toContain(outcome); // extra keys: ignored as data, or refused
      else expect(outcome, name).toBe('TRAINER_ERR_TOKENIZER_FORMAT');
    }
    expect(pollutionCheck()).toBeUndefined();
    expect(existsSync(marker)).toBe(false);
  });

  it('hostile checkpoints and model files are refused with the file named: a pickle, prototype keys, oversized lengths', async () => {
    const ws = tinyWorkspace();
    const run = await tinyRun(ws, 'run', 1, ['--steps', '2', '--save-every', '2']);
    expect(run.code, run.output).toBe(0);
    const marker = join(ws.dir, 'PWNED');
    // A PyTorch-style pickle whose GLOBAL opcode would call os.system on unpickling, dressed as safetensors.
    const pickle = Buffer.concat([Buffer.from([0x80, 0x02]), Buffer.from(`cposix\nsystem\nq\x00X\x10\x00\x00\x00touch ${marker}q\x01\x85q\x02Rq\x03.`, 'latin1')]);
    const model = join(run.out, 'model');
    writeFileSync(join(model, 'model.safetensors'), pickle);
    await expect(loadModelDir(model)).rejects.toMatchObject({ code: 'TRAINER_ERR_SAFETENSORS_INVALID' });
    const gen = await runTrainer(['generate', model, '--prompt', 'The']);
    expect(gen.code).toBe(2);
    expect(gen.stderr).toMatch(/TRAINER_ERR_SAFETENSORS_INVALID: .*model\.safetensors/);

    // A safetensors header with prototype keys, and one whose length field claims 2^60 bytes.
    const proto = Buffer.from('{"__proto__":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"constructor":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"__metadata__":{"__proto__":"x"}}');
    const withProto = Buffer.concat([u64(proto.length), proto, Buffer.alloc(8)]);
    writeFileSync(join(ws.dir, 'proto.safetensors'), withProto);
    const parsed = await readSafetensors(join(ws.dir, 'proto.safetensors')).then((f) => [...f.tensors.keys()], (err: { code?: string }) => err.code);
    expect(parsed === 'TRAINER_ERR_SAFETENSORS_INVALID' || Array.isArray(parsed)).toBe(true); // as plain names in a Map at most
    writeFileSync(join(ws.dir, 'huge.safetensors'), Buffer.concat([u64(2 ** 60), Buffer.from('{}')]));
    await expect(readSafetensors(join(ws.dir, 'huge.safetensors'))).rejects.toMatchObject({ code: 'TRAINER_ERR_SAFETENSORS_INVALID' });

    // A manifest with prototype keys and code in its strings.
    const ckpt = join(run.out, 'checkpoints', 'step-000002');
    const manifest = JSON.parse(readFileSync(join(ckpt, 'manifest.json'), 'utf8')) as Record<string, unknown>;
    const text = JSON.stringify({ ...manifest, model: { ...(manifest.model as object), name: `'); require('fs').writeFileSync('${marker}', 'x'); ('` } })
      .replace('{', '{"__proto__": {"polluted": "yes"},');
    writeFileSync(join(ckpt, 'manifest.json'), text);
    const read = await readManifest(ckpt).then(() => 'read as data', (err: { code?: string }) => err.code);
    expect(['read as data', 'TRAINER_ERR_CHECKPOINT_FORMAT']).toContain(read);
    const report = await verifyCheckpoint(ckpt).then((r) => r.problems.map((p) => p.code), (err: { code?: string }) => [err.code]);
    expect(Array.isArray(report)).toBe(true);
    const inspect = await runTrainer(['checkpoint', 'inspect', ckpt]);
    expect([0, 1, 2]).toContain(inspect.code);
    expect(pollutionCheck()).toBeUndefined();
    expect(existsSync(marker)).toBe(false);
  }, 120_000);
});

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}

async function trainedTokenizer(ws: ReturnType<typeof tinyWorkspace>): Promise<string> {
  const path = join(ws.dir, 'tokenizer.json');
  const r = await runTrainer(['tokenizer', 'train', '--data', ws.corpus, '--vocab', '300', '--out', path]);
  expect(r.code, r.stderr).toBe(0);
  return path;
}
