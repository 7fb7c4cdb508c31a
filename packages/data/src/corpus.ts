import { basename, resolve } from 'node:path';
import { TrainerError } from '@trainer/errors';
import { DataErrorCode } from './codes.js';
import { BUILTIN_CORPORA, DEFAULT_CORPUS, isBuiltinCorpus, loadBuiltinCorpus } from './builtin-corpora.js';
import { CORPUS_EXTENSIONS, listCorpusFiles, readCorpusFile } from './corpus-files.js';
import { sha256OfStrings } from './internal/hash.js';

/** A text corpus: an ordered list of documents. */
export interface Corpus {
  /** Short name: the built-in name, or the base name(s) of the given paths joined by '+'. */
  name: string;
  /** Non-empty documents, in a deterministic order. */
  documents: string[];
  /** One line saying where the text came from, for logs. */
  sourceDescription: string;
  /** SHA-256 (hex) of the documents (length-prefixed), independent of where they were loaded from. */
  contentHash: string;
}

export interface LoadCorpusOptions {
  /** Refuse user corpora larger than this many bytes on disk (TRAINER_ERR_CORPUS_TOO_LARGE). */
  maxTotalBytes?: number;
  /** Refuse any single file larger than this (default CORPUS_MAX_FILE_BYTES, 256 MiB). */
  maxFileBytes?: number;
}

/** Default for LoadCorpusOptions.maxTotalBytes: 1 GiB (the text is held in memory as strings). */
export const CORPUS_MAX_TOTAL_BYTES = 2 ** 30;

/**
 * Loads a corpus. Each entry of `spec` is a built-in name ('moby-dick', 'sotu') or a path: a
 * .txt file (one document), a .jsonl file (one document per line, field `text`), or a folder
 * searched recursively for both (other files in folders are skipped and reported). Built-in names
 * win over same-named relative paths; write './sotu' for a path. Entries are concatenated in order.
 */
export async function loadCorpus(spec: string | string[] = DEFAULT_CORPUS, opts: LoadCorpusOptions = {}): Promise<Corpus> {
  const entries = typeof spec === 'string' ? [spec] : spec;
  const maxTotalBytes = opts.maxTotalBytes ?? CORPUS_MAX_TOTAL_BYTES;
  if (entries.length === 0 || entries.some((e) => typeof e !== 'string' || e.length === 0)) {
    throw new TrainerError(DataErrorCode.CORPUS_NOT_FOUND, `no corpus given (got ${JSON.stringify(spec)})`, {
      hint: `pass a built-in corpus (${BUILTIN_CORPORA.join(', ')}) or paths to ${CORPUS_EXTENSIONS.join('/')} files or folders`,
    });
  }
  const documents: string[] = [];
  const descriptions: string[] = [];
  const names: string[] = [];
  let totalBytes = 0;
  for (const entry of entries) {
    if (isBuiltinCorpus(entry)) {
      const builtin = loadBuiltinCorpus(entry);
      documents.push(...builtin.documents);
      descriptions.push(builtin.sourceDescription);
      names.push(entry);
      continue;
    }
    const path = resolve(entry);
    const listing = await listCorpusFiles(path, opts.maxFileBytes);
    totalBytes += listing.totalBytes;
    if (totalBytes > maxTotalBytes) {
      throw new TrainerError(DataErrorCode.CORPUS_TOO_LARGE, `corpus ${path} brings the total to ${totalBytes} bytes, over the limit of ${maxTotalBytes}`, {
        hint: 'use a smaller corpus or raise maxTotalBytes (the whole text is held in memory)',
        details: { path, totalBytes, maxTotalBytes },
      });
    }
    let count = 0;
    for (const file of listing.files) {
      const docs = await readCorpusFile(file);
      count += docs.length;
      for (const doc of docs) documents.push(doc);
    }
    if (count === 0) {
      const found = listing.skipped.length > 0 ? `; skipped ${listing.skipped.length} file(s) with other extensions, e.g. ${listing.skipped[0]}` : '';
      throw new TrainerError(DataErrorCode.CORPUS_EMPTY, `corpus ${path} has no non-empty document (${listing.files.length} ${CORPUS_EXTENSIONS.join('/')} file(s)${found})`, {
        hint: `add text: ${CORPUS_EXTENSIONS.join(' or ')} files with content (a .jsonl line is {"text": "..."})`,
        details: { path, files: listing.files.length, skipped: listing.skipped.length },
      });
    }
    const skipped = listing.skipped.length > 0 ? `, skipped ${listing.skipped.length} other file(s)` : '';
    descriptions.push(`${count} document(s) from ${listing.files.length} file(s) at ${path}${skipped}`);
    names.push(basename(path));
  }
  return { name: names.join('+'), documents, sourceDescription: descriptions.join('; '), contentHash: sha256OfStrings(documents) };
}
