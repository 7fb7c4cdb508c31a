import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tiktoken } from 'js-tiktoken/lite';
import gpt2Ranks from 'js-tiktoken/ranks/gpt2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GPT2_TOKENIZER_JSON } from './bench/gpt2-files.js';
import { BpeTokenizer } from './bpe-tokenizer.js';
import { BYTE_LEVEL_CHARS } from './byte-level-alphabet.js';
import { DataErrorCode } from './codes.js';
import { loadCorpus } from './corpus.js';
import type { HfTokenizerJson } from './hf-tokenizer-json.js';
import { expectTrainerError } from './internal/expect-error.js';
import { randomString, seededRandom, utf8Normalized } from './internal/test-text.js';

/** Unicode and whitespace edge cases; each must encode as js-tiktoken does and decode back. */
const EDGE_CASES = [
  '', ' ', '  ', '   x', 'a  b   c    ', '\n', '\n\n\n', 'line\n\nbreak \n x', '\r\n', '\t', '\tindented\t\ttabs\t', ' \t \n ',
  'Hello world', ' leading space', 'trailing space ', "it's", "don't", "I'll've we'd they're you've I'm", "'S 'T 'LL", "''s",
  '123', '1234567890', '3.14159', '1,000,000', 'x2 y22 z222', '٣٤٥', // Arabic-Indic digits
  '😀', '👩‍👩‍👧 family', '👋🏽', '🇺🇸🇯🇵', '東京と世界', 'こんにちは世界', '한국어', 'e\u0301 vs é', 'Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇',
  '\u0000\u0001\u001f\u007f', '\u00a0nbsp\u00a0', '\u2028\u2029', '\u200b', '\u{10FFFF}\u{E000}', 'ﬁ ligature', 'Ω ß İ',
  'a'.repeat(800), ' '.repeat(500), '!!!???...', '—“quoted”—', '<|endoftext', 'endoftext|>',
];

describe('Hugging Face tokenizer.json: GPT-2 (the published file) vs js-tiktoken', () => {
  let gpt2: BpeTokenizer;
  let reference: Tiktoken;
  let json: HfTokenizerJson;
  beforeAll(async () => {
    gpt2 = await BpeTokenizer.load(GPT2_TOKENIZER_JSON);
    reference = new Tiktoken(gpt2Ranks);
    json = JSON.parse(await readFile(GPT2_TOKENIZER_JSON, 'utf8')) as HfTokenizerJson;
  });

  it("keeps the file's ids: 50257 tokens, <|endoftext|> = 50256", () => {
    expect(gpt2.vocabSize).toBe(50257);
    expect(gpt2.eotToken).toBe(50256);
    expect(gpt2.specialTokens).toEqual(new Map([['<|endoftext|>', 50256]]));
    expect(gpt2.encode(' the')).toEqual([json.model.vocab['Ġthe']]);
    expect(gpt2.encode('!')).toEqual([0]); // byte ids are vocab.json's, not trainer's 0..255
    expect(gpt2.merges).toHaveLength(50000);
  });

  it('encodes all of Moby Dick and State of the Union addresses to the same ids', async () => {
    const moby = await loadCorpus('moby-dick');
    const sotu = (await loadCorpus('sotu')).documents.filter((_, i) => i % 16 === 0); // 15 addresses, ~0.7 MB of the 10.8
    let tokens = 0;
    for (const doc of [...moby.documents, ...sotu]) {
      const expected = reference.encode(doc);
      const ids = gpt2.encode(doc);
      expect(ids).toEqual(expected);
      expect(gpt2.decode(ids)).toBe(doc);
      tokens += ids.length;
    }
    expect(tokens).toBeGreaterThan(400_000);
  });

  it('encodes whitespace, Unicode, contractions and digits as js-tiktoken, and decodes back', () => {
    for (const text of EDGE_CASES) {
      const ids = gpt2.encode(text);
      expect(ids, JSON.stringify(text)).toEqual(reference.encode(text));
      expect(gpt2.decode(ids)).toBe(text);
    }
  });

  it('encodes random awkward strings as js-tiktoken (U+0085 and U+FEFF aside: see the next test)', () => {
    const rand = seededRandom(1616);
    for (let trial = 0; trial < 1000; trial++) {
      const text = randomString(rand, 30).replaceAll('<|endoftext|>', '<|eot|>').replace(/[\u0085\ufeff]/g, '\u00a0');
      const ids = gpt2.encode(text);
      expect(ids, JSON.stringify(text)).toEqual(reference.encode(text));
      expect(gpt2.decode(ids)).toBe(utf8Normalized(text));
    }
  });

  it("treats U+0085 as whitespace and U+FEFF as not, as Hugging Face does (js-tiktoken's JavaScript \\s differs)", () => {
    // Ids from Hugging Face tokenizers 0.23.2 (Rust) with this same tokenizer.json.
    expect(gpt2.encode('\u0085')).toEqual([126, 227]);
    expect(gpt2.encode('a\u0085\u0085 b')).toEqual([64, 126, 227, 126, 227, 275]);
    expect(gpt2.encode('x\ufeff\ufeff y')).toEqual([87, 171, 119, 123, 171, 119, 123, 331]);
    expect(gpt2.encode('  \ufeffb')).toEqual([220, 27332, 119, 123, 65]);
    expect(gpt2.encode("'s\ufeff's ")).toEqual([338, 171, 119, 123, 6, 82, 220]);
    expect(reference.encode('  \ufeffb')).not.toEqual(gpt2.encode('  \ufeffb'));
  });

  it('turns <|endoftext|> in text into 50256 as Hugging Face does, or into plain text with allowSpecial false', () => {
    const text = 'end of one.<|endoftext|>Start of two <|endoftext|><|endoftext|>';
    const ids = gpt2.encode(text);
    expect(ids.filter((id) => id === 50256)).toHaveLength(3);
    expect(ids).toEqual(reference.encode(text, 'all'));
    expect(gpt2.decode(ids)).toBe(text);
    const plain = gpt2.encode(text, { allowSpecial: false });
    expect(plain).not.toContain(50256);
    expect(plain).toEqual(reference.encode(text, [], []));
    expect(gpt2.decode(plain)).toBe(text);
  });

  it('added tokens (lstrip, rstrip, single_word, normalized), NFKC and add_prefix_space as Hugging Face', () => {
    const edited = structuredClone(json);
    edited.added_tokens?.push(
      { id: 50257, content: '<mask>', single_word: true, lstrip: true, rstrip: false, normalized: false, special: true },
      { id: 50258, content: 'whale', single_word: false, lstrip: false, rstrip: true, normalized: true, special: false },
      { id: 50259, content: '<|end', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
    );
    edited.normalizer = { type: 'NFKC' };
    const tok = BpeTokenizer.fromJSON(edited);
    expect(tok.vocabSize).toBe(50260);
    // Expected ids: Hugging Face tokenizers 0.23.2 on the same edited tokenizer.json, add_special_tokens=False.
    const expected: Array<[string, number[]]> = [
      ['Call me <mask> now', [14134, 502, 50257, 783]],
      ['a<mask> b', [64, 27, 27932, 29, 275]],
      ['<mask>_x', [27, 27932, 29, 62, 87]],
      ['x  <mask>', [87, 50257]],
      ['the whale   swims', [1169, 220, 50258, 2032, 12078]],
      ['the whale\u3000\u0085\tswims', [1169, 220, 50258, 2032, 12078]],
      ['<|endoftext|> and <|end of', [50256, 290, 220, 50259, 286]],
      ['ｗｈａｌｅｓ', [50258, 82]],
      ['whalewhale', [50258, 50258]],
    ];
    for (const [text, ids] of expected) expect(tok.encode(text), JSON.stringify(text)).toEqual(ids);
    expect(tok.decode([50258, 50257])).toBe('whale<mask>');
    // Without specials, '<mask>' and '<|end' are text; 'whale' (not special) is still matched.
    expect(tok.encode('<mask> whale', { allowSpecial: false })).toEqual([27, 27932, 29, 220, 50258]);

    edited.pre_tokenizer = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true };
    const prefixed = BpeTokenizer.fromJSON(edited);
    const withPrefix: Array<[string, number[]]> = [
      ['Hello world', [18435, 995]],
      [' Hello', [18435]],
      ['<mask>Hello', [1279, 27932, 29, 15496]],
      ['ｗｈａｌｅ  x', [50258, 2124]],
    ];
    for (const [text, ids] of withPrefix) expect(prefixed.encode(text), JSON.stringify(text)).toEqual(ids);
    expect(prefixed.hash).not.toBe(tok.hash);
  });
});

describe('Hugging Face tokenizer.json: files, JSON form and refusals', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'trainer-hf-tokenizer-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('loads from a model folder; toJSON, fromJSON, save and load keep the tokenizer and its hash', async () => {
    const folder = join(dir, 'gpt2');
    await mkdir(folder);
    await copyFile(GPT2_TOKENIZER_JSON, join(folder, 'tokenizer.json'));
    const tok = await BpeTokenizer.load(folder);
    expect(tok.eotToken).toBe(50256);
    const text = 'Call me Ishmael. <|endoftext|> 東京 😀';
    const ids = tok.encode(text);
    const again = BpeTokenizer.fromJSON(JSON.parse(JSON.stringify(tok.toJSON())));
    expect(again.hash).toBe(tok.hash);
    expect(again.encode(text)).toEqual(ids);
    await tok.save(join(dir, 'saved.json'));
    const saved = await BpeTokenizer.load(join(dir, 'saved.json'));
    expect(saved.hash).toBe(tok.hash);
    expect(saved.encode(text)).toEqual(ids);
    expect(saved.toJSON()).toMatchObject({ model: { type: 'BPE' }, pre_tokenizer: { type: 'ByteLevel' } }); // still a Hugging Face file
  });

  it('reads merges given as ["a", "b"] pairs like "a b" strings', () => {
    const strings = tinyTokenizerJson();
    const pairs = { ...strings, model: { ...strings.model, merges: strings.model.merges.map((m) => (m as string).split(' ') as [string, string]) } };
    const a = BpeTokenizer.fromJSON(strings);
    const b = BpeTokenizer.fromJSON(pairs);
    expect(b.encode(' the hat')).toEqual(a.encode(' the hat'));
    expect(a.encode(' the')).toEqual([258]); // 'Ġthe': the file's id
    expect(a.encode('t')).toEqual([byteId(0x74)]);
    expect(a.decode(a.encode(' the hat<|endoftext|>'))).toBe(' the hat<|endoftext|>');
    expect(a.eotToken).toBe(259);
  });

  it('matches and decodes a normalized added token in its normalized form, as Hugging Face', () => {
    const j = tinyTokenizerJson();
    j.normalizer = { type: 'NFKC' };
    j.added_tokens?.push({ id: 260, content: 'ﬁ', normalized: true, special: false });
    const tok = BpeTokenizer.fromJSON(j);
    expect(tok.encode('ﬁ fi')).toEqual([260, byteId(0x20), 260]);
    expect(tok.decode([260])).toBe('fi'); // Hugging Face stores the content NFKC-normalized
  });

  it('honours ignore_merges: a word in the vocabulary is that token', () => {
    const base = tinyTokenizerJson();
    base.model.vocab['Ġhe'] = 260; // reachable only as a whole word: no merge makes it
    base.added_tokens = [{ id: 259, content: '<|endoftext|>', special: true }];
    expect(BpeTokenizer.fromJSON(base).encode(' he')).toEqual([byteId(0x20), 257]); // 'Ġ' + 'he'
    base.model.ignore_merges = true;
    expect(BpeTokenizer.fromJSON(base).encode(' he')).toEqual([260]);
  });

  it('refuses unsupported components with TRAINER_ERR_TOKENIZER_UNSUPPORTED naming the component', async () => {
    const code = DataErrorCode.TOKENIZER_UNSUPPORTED;
    const edit = (change: (j: HfTokenizerJson) => void): HfTokenizerJson => {
      const j = tinyTokenizerJson();
      change(j);
      return j;
    };
    const cases: Array<[HfTokenizerJson, RegExp]> = [
      [edit((j) => (j.model.type = 'WordPiece')), /model WordPiece/],
      [edit((j) => (j.model.type = 'Unigram')), /Unigram with a ByteLevel pre-tokenizer/],
      [edit((j) => (j.model.type = 'WordLevel')), /model WordLevel/],
      [edit((j) => (j.pre_tokenizer = { type: 'BertPreTokenizer' })), /pre-tokenizer BertPreTokenizer/],
      [edit((j) => (j.pre_tokenizer = { type: 'Sequence', pretokenizers: [{ type: 'UnicodeScripts' }, { type: 'ByteLevel' }] })), /pre-tokenizer UnicodeScripts/],
      [edit((j) => (j.pre_tokenizer = { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: '\\p{L}++' }, behavior: 'Isolated' }, { type: 'ByteLevel', use_regex: false }] })), /possessive quantifier/],
      [edit((j) => (j.normalizer = { type: 'Precompiled', precompiled_charsmap: 'AAAA' })), /normalizer Precompiled/],
      [edit((j) => (j.decoder = { type: 'CTC' })), /decoder CTC/],
      [edit((j) => (j.normalizer = { type: 'Sequence', normalizers: [{ type: 'NFD' }, { type: 'StripAccents' }] })), /normalizer StripAccents/],
      [edit((j) => (j.decoder = { type: 'WordPiece' })), /decoder WordPiece/],
      [edit((j) => (j.post_processor = { type: 'Mystery' })), /post-processor Mystery/],
      [edit((j) => (j.model.dropout = 0.1)), /dropout/],
      [edit((j) => (j.model.continuing_subword_prefix = '##')), /continuing_subword_prefix/],
      [edit((j) => delete j.model.vocab['Ā']), /byte token "Ā"/],
      [edit((j) => {
        j.added_tokens = [];
        delete j.model.vocab['<|endoftext|>'];
      }), /end-of-text token/],
    ];
    for (const [bad, message] of cases) await expectTrainerError(() => BpeTokenizer.fromJSON(bad), code, message);
    const err = await expectTrainerError(() => BpeTokenizer.fromJSON(cases[0][0]), code);
    expect(err.details).toEqual({ component: 'model WordPiece' });
    expect(err.hint).toMatch(/BPE/);
    // Accepted: a post-processor template (used only with addSpecialTokens), NFC normalization.
    expect(() => BpeTokenizer.fromJSON(edit((j) => (j.post_processor = { type: 'TemplateProcessing', single: [{ Sequence: { id: 'A', type_id: 0 } }], special_tokens: {} })))).not.toThrow();
    expect(() => BpeTokenizer.fromJSON(edit((j) => (j.normalizer = { type: 'NFC' })))).not.toThrow();
  });

  it('refuses malformed files with TRAINER_ERR_TOKENIZER_FORMAT', async () => {
    const code = DataErrorCode.TOKENIZER_FORMAT;
    const edit = (change: (j: HfTokenizerJson) => void): HfTokenizerJson => {
      const j = tinyTokenizerJson();
      change(j);
      return j;
    };
    await expectTrainerError(() => BpeTokenizer.fromJSON(edit((j) => j.model.merges.push('Ġ zz'))), code, /"zz" is not in the vocabulary/);
    await expectTrainerError(() => BpeTokenizer.fromJSON(edit((j) => j.model.merges.push('a b c'))), code, /merges\[3\]/);
    await expectTrainerError(() => BpeTokenizer.fromJSON(edit((j) => (j.model.vocab.extra = 257))), code, /share id 257/);
    await expectTrainerError(() => BpeTokenizer.fromJSON(edit((j) => (j.model.vocab.extra = -1))), code, /"extra" has id -1/);
    await expectTrainerError(() => BpeTokenizer.fromJSON(edit((j) => j.added_tokens?.push({ id: 7.5, content: 'x' }))), code, /added_tokens\[1\]/);
    await expectTrainerError(() => BpeTokenizer.fromJSON(edit((j) => j.added_tokens?.push({ id: 300, content: '<pad>' }))), code, /"<pad>" has id 300, but Hugging Face tokenizers gives it 260/);
    await expectTrainerError(() => BpeTokenizer.fromJSON(edit((j) => j.added_tokens?.push({ id: 5, content: 'he' }))), code, /"he" has id 5, but Hugging Face tokenizers gives it 257/);
    await expectTrainerError(() => BpeTokenizer.fromJSON({ model: { type: 'BPE', vocab: [], merges: [] }, pre_tokenizer: { type: 'ByteLevel' }, decoder: { type: 'ByteLevel' } }), code, /model\.vocab/);
  });
});

/** Id of byte b in tinyTokenizerJson: a permutation of 0..255, unlike trainer's (byte b = id b). */
function byteId(b: number): number {
  return (b * 7 + 3) % 256;
}

/**
 * A small byte-level BPE tokenizer.json: bytes are ids 0..255 in byteId's order, merges make 'Ġt'
 * (256), 'he' (257), 'Ġthe' (258), and '<|endoftext|>' is 259.
 */
function tinyTokenizerJson(): HfTokenizerJson & { model: { merges: Array<string | [string, string]>; vocab: Record<string, number> } } {
  const vocab: Record<string, number> = {};
  BYTE_LEVEL_CHARS.forEach((c, b) => (vocab[c] = byteId(b)));
  Object.assign(vocab, { 'Ġt': 256, he: 257, 'Ġthe': 258, '<|endoftext|>': 259 });
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: '1.0',
    added_tokens: [{ id: 259, content: '<|endoftext|>', special: true, normalized: false, lstrip: false, rstrip: false, single_word: false }],
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: byteLevel,
    decoder: byteLevel,
    model: { type: 'BPE', dropout: null, unk_token: null, vocab, merges: ['Ġ t', 'h e', 'Ġt he'] },
  };
}
