/**
 * GPT-2's byte-level alphabet (`bytes_to_unicode` in OpenAI's encoder.py, `ByteLevel` in Hugging
 * Face tokenizers): every byte value is shown as one printable character, so a token's bytes can
 * be written as a string in vocab.json, merges.txt and tokenizer.json. Printable Latin-1 bytes
 * ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves; the other 68 bytes (controls, space, DEL,
 * NBSP, soft hyphen) become U+0100 + n in byte order: space (0x20) is 'Ġ', '\n' is 'Ċ'.
 */

/** BYTE_LEVEL_CHARS[b] is the character that stands for byte b. */
export const BYTE_LEVEL_CHARS: readonly string[] = buildAlphabet();

/** BYTE_OF_CODE[c]: the byte that character code c stands for, -1 for none (all alphabet codes are below 0x144). */
const BYTE_OF_CODE: Int16Array = (() => {
  const table = new Int16Array(0x144).fill(-1);
  BYTE_LEVEL_CHARS.forEach((c, b) => (table[c.charCodeAt(0)] = b));
  return table;
})();

function buildAlphabet(): string[] {
  const chars = new Array<string>(256);
  const printable = (b: number): boolean => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let shifted = 0;
  for (let b = 0; b < 256; b++) chars[b] = String.fromCharCode(printable(b) ? b : 256 + shifted++);
  return chars;
}

/** The byte-level string of `bytes` (how a token is written in vocab.json / tokenizer.json). */
export function bytesToByteLevel(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += BYTE_LEVEL_CHARS[bytes[i]];
  return s;
}

/**
 * The bytes a byte-level string stands for, or undefined when a character is outside the
 * alphabet (then the string is not byte-level text, e.g. an added token like '日本' or ' <mask>').
 */
export function byteLevelToBytes(text: string): Uint8Array | undefined {
  const out = new Uint8Array(text.length); // every alphabet character is one UTF-16 unit
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    const b = code < BYTE_OF_CODE.length ? BYTE_OF_CODE[code] : -1;
    if (b < 0) return undefined;
    out[i] = b;
  }
  return out;
}
