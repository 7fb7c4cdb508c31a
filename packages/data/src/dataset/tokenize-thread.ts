import { once } from 'node:events';
import { parentPort, workerData } from 'node:worker_threads';
import { TrainerError, asTrainerError } from '@trainer/errors';
import { type BpeThreadForm, BpeTokenizer } from '../bpe-tokenizer.js';
import { DataErrorCode } from '../codes.js';
import { TokenBuffer } from '../internal/token-buffer.js';
import type { TokenizeReply, TokenizeRequest } from './tokenizer-pool.js';
import { validationKey } from './validation-split.js';

/**
 * A tokenizer thread of `trainer data prepare`: turns a batch of units (.jsonl lines, .txt files,
 * built-in documents) into tokens, each document followed by the eot token, and says for each
 * unit how many tokens it gave (-1: no document, e.g. a blank line) and whether it is validation.
 */
export interface TokenizeThreadData {
  valThreshold: number;
}

/**
 * A thread's first message from the pool: the tokenizer, which the main thread loaded (and
 * hash-checked) once, as typed arrays; the thread starts (imports its modules) meanwhile.
 */
export interface TokenizeThreadInit {
  tokenizer: BpeThreadForm;
}

/** A thread's first message, once its tokenizer is loaded: what the main thread needs of it. */
export interface TokenizeThreadReady {
  ready: true;
  tokenizer: TokenizerInfo;
}

/** The tokenizer as the dataset records it. */
export interface TokenizerInfo {
  hash: string;
  vocabSize: number;
  eotToken: number;
}

const FORMAT_HINT = 'fix the line or remove the file: a .jsonl line must be an object {"text": "..."}, and text files must be UTF-8';
const data = workerData as TokenizeThreadData;
const [init] = (await once(parentPort!, 'message')) as [TokenizeThreadInit];
const tokenizer = BpeTokenizer.fromThreadForm(init.tokenizer);
const decoder = new TextDecoder('utf-8', { fatal: true });

function formatError(req: TokenizeRequest, unit: number, message: string, cause?: unknown): TrainerError {
  const where = req.jsonl ? `${req.path}:${req.firstLine + unit + 1}` : req.path;
  return new TrainerError(DataErrorCode.CORPUS_FORMAT, `${where}: ${message}`, { hint: FORMAT_HINT, cause, details: { path: req.path, line: req.firstLine + unit + 1 } });
}

/** The document text of unit i, or undefined when the unit holds none. */
function unitText(req: TokenizeRequest, i: number): { text: string; utf8?: Uint8Array } | undefined {
  if (req.texts) {
    const text = req.texts[i];
    return text.length > 0 ? { text } : undefined;
  }
  let bytes = req.bytes.subarray(i === 0 ? 0 : req.ends[i - 1], req.ends[i]);
  if (req.jsonl && bytes.length > 0 && bytes[bytes.length - 1] === 13) bytes = bytes.subarray(0, bytes.length - 1); // CRLF
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch (err) {
    throw formatError(req, i, 'not valid UTF-8 text', err);
  }
  if (!req.jsonl) {
    // TextDecoder drops a byte order mark: hash the text as decoded, like every other document.
    const bom = bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf;
    return text.length > 0 ? { text, utf8: bom ? bytes.subarray(3) : bytes } : undefined;
  }
  if (text.trim().length === 0) return undefined;
  let record: unknown;
  try {
    record = JSON.parse(text);
  } catch (err) {
    throw formatError(req, i, `line is not valid JSON (${(err as Error).message})`, err);
  }
  const value = typeof record === 'object' && record !== null ? (record as { text?: unknown }).text : undefined;
  if (typeof value !== 'string') throw formatError(req, i, 'line has no string field "text"');
  return value.length > 0 ? { text: value } : undefined;
}

function tokenize(req: TokenizeRequest): TokenizeReply {
  const tokens = new TokenBuffer(tokenizer.vocabSize, 1 << 16);
  const lengths = new Int32Array(req.count);
  const val = new Uint8Array(req.count);
  const eot = [tokenizer.eotToken];
  for (let i = 0; i < req.count; i++) {
    const doc = unitText(req, i);
    if (doc === undefined) {
      lengths[i] = -1;
      continue;
    }
    const before = tokens.length;
    tokens.push(tokenizer.encode(doc.text));
    tokens.push(eot);
    lengths[i] = tokens.length - before;
    val[i] = data.valThreshold > 0 && validationKey(doc.utf8 ?? doc.text) < data.valThreshold ? 1 : 0;
  }
  return { seq: req.seq, ok: true, tokens: tokens.slice(), lengths, val };
}

parentPort!.postMessage({ ready: true, tokenizer: { hash: tokenizer.hash, vocabSize: tokenizer.vocabSize, eotToken: tokenizer.eotToken } } satisfies TokenizeThreadReady);
parentPort!.on('message', (req: TokenizeRequest) => {
  let reply: TokenizeReply;
  try {
    reply = tokenize(req);
  } catch (err) {
    reply = { seq: req.seq, ok: false, error: asTrainerError(err).toJSON() };
  }
  parentPort!.postMessage(reply, reply.ok ? [reply.tokens.buffer as ArrayBuffer, reply.lengths.buffer as ArrayBuffer, reply.val.buffer as ArrayBuffer] : []);
});
