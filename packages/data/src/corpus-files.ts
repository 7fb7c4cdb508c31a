import { readFile, stat } from 'node:fs/promises';
import { extname } from 'node:path';
import { TrainerError } from '@trainer/errors';
import { DataErrorCode } from './codes.js';
import { walkFolder } from './internal/folder-walk.js';

/** File extensions a user corpus may contain. */
export const CORPUS_EXTENSIONS = ['.txt', '.jsonl'] as const;

/**
 * Largest single corpus file: each file is decoded into one JS string, and V8 strings stop at
 * about 512 M characters, so bigger files must be split (many files or .jsonl shards are fine).
 */
export const CORPUS_MAX_FILE_BYTES = 256 * 2 ** 20;

const FORMAT_HINT = 'use .txt files (one document per file) or .jsonl files (one {"text": "..."} object per line)';

export interface CorpusFileList {
  files: string[];
  totalBytes: number;
  /** Files inside folders that were skipped because of their extension. */
  skipped: string[];
}

function isSupported(path: string): boolean {
  return (CORPUS_EXTENSIONS as readonly string[]).includes(extname(path).toLowerCase());
}

function addFile(out: CorpusFileList, path: string, size: number, maxFileBytes: number): void {
  if (size > maxFileBytes) {
    throw new TrainerError(DataErrorCode.CORPUS_TOO_LARGE, `corpus file ${path} has ${size} bytes, over the per-file limit of ${maxFileBytes}`, {
      hint: 'split it into several files in one folder (or .jsonl shards); the total corpus may be larger',
      details: { path, size, limit: maxFileBytes },
    });
  }
  out.files.push(path);
  out.totalBytes += size;
}

function fsError(err: unknown, path: string, what: string): TrainerError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    return new TrainerError(DataErrorCode.CORPUS_NOT_FOUND, `corpus path ${path} does not exist`, {
      hint: 'check the path, or use a built-in corpus: --data moby-dick or --data sotu',
      cause: err,
      details: { path },
    });
  }
  return new TrainerError(DataErrorCode.CORPUS_UNREADABLE, `cannot read ${what} ${path}: ${(err as Error).message}`, {
    hint: 'check the file permissions (the trainer needs read access to every corpus file)',
    cause: err,
    details: { path, errno: code },
  });
}

/**
 * Corpus files under `path`: the file itself (its extension must be supported), or every
 * supported file in the folder and its subfolders, in sorted (code point) order so documents come
 * out in the same order on every machine. Hidden entries (starting with '.') are skipped.
 */
export async function listCorpusFiles(path: string, maxFileBytes = CORPUS_MAX_FILE_BYTES): Promise<CorpusFileList> {
  const out: CorpusFileList = { files: [], totalBytes: 0, skipped: [] };
  let info;
  try {
    info = await stat(path);
  } catch (err) {
    throw fsError(err, path, 'corpus path');
  }
  if (info.isFile()) {
    if (!isSupported(path)) {
      throw new TrainerError(DataErrorCode.CORPUS_FORMAT, `corpus file ${path} has unsupported extension "${extname(path)}"`, { hint: FORMAT_HINT, details: { path } });
    }
    addFile(out, path, info.size, maxFileBytes);
    return out;
  }
  if (!info.isDirectory()) {
    throw new TrainerError(DataErrorCode.CORPUS_FORMAT, `corpus path ${path} is neither a file nor a folder`, { hint: FORMAT_HINT, details: { path } });
  }
  await walkFolder(path, (file, stats) => {
    if (stats.isFile() && isSupported(file)) addFile(out, file, stats.size, maxFileBytes);
    else out.skipped.push(file);
  }, (err, at) => fsError(err, at, 'corpus path'));
  return out;
}

/** The documents of one corpus file; empty documents are dropped. */
export async function readCorpusFile(path: string): Promise<string[]> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw fsError(err, path, 'corpus file');
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (err) {
    throw new TrainerError(DataErrorCode.CORPUS_FORMAT, `corpus file ${path} is not valid UTF-8 text`, {
      hint: 'convert it to UTF-8 (e.g. `iconv -t UTF-8`), or remove binary files from the corpus folder',
      cause: err,
      details: { path },
    });
  }
  if (extname(path).toLowerCase() === '.txt') return text.length > 0 ? [text] : [];
  return parseJsonl(text, path);
}

/** One document per line, from the string field `text`; blank lines are skipped. */
export function parseJsonl(text: string, path: string): string[] {
  const documents: string[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].endsWith('\r') ? lines[i].slice(0, -1) : lines[i];
    if (line.trim().length === 0) continue;
    const where = `${path}:${i + 1}`;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch (err) {
      throw new TrainerError(DataErrorCode.CORPUS_FORMAT, `${where}: line is not valid JSON (${(err as Error).message})`, {
        hint: FORMAT_HINT,
        cause: err,
        details: { path, line: i + 1 },
      });
    }
    const value = typeof record === 'object' && record !== null ? (record as { text?: unknown }).text : undefined;
    if (typeof value !== 'string') {
      throw new TrainerError(DataErrorCode.CORPUS_FORMAT, `${where}: line has no string field "text"`, { hint: FORMAT_HINT, details: { path, line: i + 1 } });
    }
    if (value.length > 0) documents.push(value);
  }
  return documents;
}
