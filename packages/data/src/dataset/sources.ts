import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { TrainerError } from '@trainer/errors';
import { BUILTIN_CORPORA, type BuiltinCorpusName, isBuiltinCorpus, loadBuiltinCorpus } from '../builtin-corpora.js';
import { DataErrorCode } from '../codes.js';
import { walkFolder } from '../internal/folder-walk.js';
import type { SourceEntry } from './manifest.js';

/**
 * The inputs of `trainer data prepare --data SRC...`, expanded into files in reading order: a
 * built-in corpus name (as loadCorpus: 'moby-dick', 'sotu'; write './sotu' for a path), a file, or
 * a folder searched recursively in sorted (code point) order, hidden entries skipped, as
 * corpus-files.ts does. Files: .txt (one document) and .jsonl (one {"text": ...} per line), each
 * also gzip-compressed (.gz) or zstd-compressed (.zst).
 */
export const DATASET_EXTENSIONS = ['.txt', '.jsonl', '.txt.gz', '.jsonl.gz', '.txt.zst', '.jsonl.zst'] as const;

export type SourceFormat = 'txt' | 'jsonl';
export type SourceCompression = 'none' | 'gzip' | 'zstd';

export interface DatasetSource {
  /** What the manifest and the progress file record. */
  entry: SourceEntry;
  /** Set for a built-in corpus (then format and compression do not apply). */
  builtin?: BuiltinCorpusName;
  format: SourceFormat;
  compression: SourceCompression;
}

export interface ResolvedSources {
  sources: DatasetSource[];
  /** Files inside folders skipped for their extension. */
  skipped: string[];
}

const FORMAT_HINT = `use ${DATASET_EXTENSIONS.join(', ')} files (a .txt file is one document, a .jsonl line is {"text": "..."})`;

/** Format and compression from a file name, or undefined when it is not a dataset source. */
export function sourceKind(path: string): { format: SourceFormat; compression: SourceCompression } | undefined {
  const lower = path.toLowerCase();
  const compression: SourceCompression = lower.endsWith('.gz') ? 'gzip' : lower.endsWith('.zst') ? 'zstd' : 'none';
  const base = compression === 'none' ? lower : lower.slice(0, lower.lastIndexOf('.'));
  if (base.endsWith('.txt')) return { format: 'txt', compression };
  if (base.endsWith('.jsonl')) return { format: 'jsonl', compression };
  return undefined;
}

function fsError(err: unknown, path: string): TrainerError {
  const errno = (err as NodeJS.ErrnoException).code;
  if (errno === 'ENOENT' || errno === 'ENOTDIR') {
    return new TrainerError(DataErrorCode.CORPUS_NOT_FOUND, `data source ${path} does not exist`, {
      hint: `check the path, or use a built-in corpus (${BUILTIN_CORPORA.join(', ')})`,
      cause: err,
      details: { path },
    });
  }
  return new TrainerError(DataErrorCode.CORPUS_UNREADABLE, `cannot read data source ${path}: ${(err as Error).message}`, {
    hint: 'check the permissions: every source file must be readable',
    cause: err,
    details: { path, errno },
  });
}

async function fileSource(path: string): Promise<DatasetSource | undefined> {
  let info;
  try {
    info = await stat(path);
  } catch (err) {
    throw fsError(err, path);
  }
  const kind = sourceKind(path);
  if (!info.isFile() || kind === undefined) return undefined;
  return { entry: { path, bytes: info.size, mtimeMs: Math.floor(info.mtimeMs) }, ...kind };
}

/** Expands `--data` entries into sources, in order. Throws when an entry yields no source file. */
export async function resolveSources(specs: readonly string[]): Promise<ResolvedSources> {
  if (specs.length === 0) {
    throw new TrainerError(DataErrorCode.CORPUS_NOT_FOUND, 'no data source given', { hint: `pass --data with ${DATASET_EXTENSIONS.join('/')} files, folders, or ${BUILTIN_CORPORA.join(', ')}` });
  }
  const out: ResolvedSources = { sources: [], skipped: [] };
  for (const spec of specs) {
    if (isBuiltinCorpus(spec)) {
      const bytes = loadBuiltinCorpus(spec).documents.reduce((n, d) => n + Buffer.byteLength(d), 0);
      out.sources.push({ entry: { path: `builtin:${spec}`, bytes, mtimeMs: 0 }, builtin: spec, format: 'txt', compression: 'none' });
      continue;
    }
    const path = resolve(spec);
    let info;
    try {
      info = await stat(path);
    } catch (err) {
      throw fsError(err, path);
    }
    const before = out.sources.length;
    if (info.isDirectory()) {
      await walkFolder(path, async (file) => {
        const source = await fileSource(file);
        if (source) out.sources.push(source);
        else out.skipped.push(file);
      }, fsError);
    } else {
      const source = await fileSource(path);
      if (!source) throw new TrainerError(DataErrorCode.CORPUS_FORMAT, `data source ${path} is not a ${DATASET_EXTENSIONS.join('/')} file`, { hint: FORMAT_HINT, details: { path } });
      out.sources.push(source);
    }
    if (out.sources.length === before) {
      throw new TrainerError(DataErrorCode.CORPUS_EMPTY, `data source ${path} holds no ${DATASET_EXTENSIONS.join('/')} file`, { hint: FORMAT_HINT, details: { path } });
    }
  }
  return out;
}
