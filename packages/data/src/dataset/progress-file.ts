import { readFile } from 'node:fs/promises';
import { TrainerError } from '@trainer/errors';
import { DataErrorCode } from '../codes.js';
import { writeFileAtomic } from '../internal/atomic-write.js';
import { sha256Hex } from '../internal/hash.js';
import { isRecord } from '../internal/is-record.js';
import { DATASET_FORMAT_VERSION, type DatasetSplit, type ShardEntry, type SourceEntry } from './manifest.js';
import type { SourcePosition } from './source-reader.js';
import type { OpenShardState } from './split-writer.js';

/**
 * `progress.json`: the checkpoint of an unfinished `trainer data prepare`, rewritten atomically
 * after every completed shard, every CHECKPOINT_INTERVAL and on SIGINT/SIGTERM. Everything before
 * `position` is in the completed shards or in the first `open.tokens` tokens of a split's open
 * .partial shard (fsynced before this file is written). Deleted once manifest.json is written.
 */
export const PROGRESS_FORMAT = 'trainer-dataset-progress';
export const PROGRESS_FORMAT_VERSION = 1;
export const PROGRESS_FILE = 'progress.json';

/** The inputs that decide every output byte; a resume or an existing dataset must match them. */
export interface DatasetIdentity {
  formatVersion: number;
  tokenizerHash: string;
  vocabSize: number;
  eotToken: number;
  sources: SourceEntry[];
  valFraction: number;
  shardBytes: number;
}

export interface PrepareProgress {
  format: typeof PROGRESS_FORMAT;
  version: number;
  datasetId: string;
  identity: DatasetIdentity;
  position: SourcePosition;
  /** Consumed so far (both splits): documents, tokens, UTF-8 bytes of text. */
  documents: number;
  tokens: number;
  textBytes: number;
  splits: Record<DatasetSplit, { completed: ShardEntry[]; open: OpenShardState }>;
  /** How many runs have worked on this output (1 for an uninterrupted one). */
  runs: number;
}

export function datasetIdentity(fields: Omit<DatasetIdentity, 'formatVersion'>): DatasetIdentity {
  return { formatVersion: DATASET_FORMAT_VERSION, ...fields };
}

/** SHA-256 of the identity: the manifest's datasetId, and what the shard headers are tied to. */
export function datasetIdOf(identity: DatasetIdentity): string {
  return sha256Hex(JSON.stringify(identity));
}

/** What differs between two identities, in words (for the mismatch error), or undefined. */
export function describeMismatch(want: DatasetIdentity, have: DatasetIdentity): string | undefined {
  if (want.tokenizerHash !== have.tokenizerHash) return `another tokenizer (hash ${have.tokenizerHash.slice(0, 12)}..., this one ${want.tokenizerHash.slice(0, 12)}...)`;
  if (want.valFraction !== have.valFraction) return `--val-fraction ${have.valFraction} (now ${want.valFraction})`;
  if (want.shardBytes !== have.shardBytes) return `--shard-size ${have.shardBytes} bytes (now ${want.shardBytes})`;
  const n = Math.max(want.sources.length, have.sources.length);
  for (let i = 0; i < n; i++) {
    const [a, b] = [want.sources[i], have.sources[i]];
    if (!a || !b) return `${have.sources.length} source file(s) (now ${want.sources.length})`;
    if (a.path !== b.path) return `source ${i + 1} ${b.path} (now ${a.path})`;
    if (a.bytes !== b.bytes || a.mtimeMs !== b.mtimeMs) return `source ${a.path} as it was then (${b.bytes} bytes; now ${a.bytes}, or modified since)`;
  }
  if (JSON.stringify(want) !== JSON.stringify(have)) return 'other settings (another trainer version)';
  return undefined;
}

export function mismatchError(dir: string, what: string, unfinished: boolean): TrainerError {
  const thing = unfinished ? 'an unfinished `trainer data prepare` run' : 'a prepared dataset';
  return new TrainerError(DataErrorCode.DATASET_MISMATCH, `${dir} holds ${thing} made with ${what}`, {
    hint: unfinished ? 'run the same command as before to finish it, or use a new --out, or --overwrite to start again' : 'use a new --out, or --overwrite to replace it',
    details: { dir },
  });
}

export async function writeProgress(path: string, progress: PrepareProgress): Promise<void> {
  await writeFileAtomic(path, [Buffer.from(JSON.stringify(progress, null, 1) + '\n')]);
}

/** The progress file, or undefined when there is none. Foreign, other-version or broken ones are refused. */
export async function readProgress(path: string): Promise<PrepareProgress | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new TrainerError(DataErrorCode.DATASET_FORMAT, `cannot read ${path}: ${(err as Error).message}`, { hint: 'check the permissions of the output folder', cause: err, details: { path } });
  }
  const refuse = (message: string): never => {
    throw new TrainerError(DataErrorCode.DATASET_FORMAT, `progress file ${path} refused: ${message}`, {
      hint: 'it is not from this version of `trainer data prepare`: start again with --overwrite (or use a new --out)',
      details: { path },
    });
  };
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (err) {
    return refuse(`not valid JSON (${(err as Error).message})`);
  }
  if (!isRecord(obj) || obj.format !== PROGRESS_FORMAT) return refuse(`format is not "${PROGRESS_FORMAT}"`);
  if (obj.version !== PROGRESS_FORMAT_VERSION) return refuse(`version ${String(obj.version)} (this build reads ${PROGRESS_FORMAT_VERSION})`);
  const splits = obj.splits;
  const position = obj.position;
  const ok = isRecord(obj.identity) && typeof obj.datasetId === 'string' && isRecord(position) && isRecord(splits)
    && ['source', 'offset', 'line'].every((k) => Number.isSafeInteger(position[k]))
    && (['train', 'val'] as const).every((s) => isRecord(splits[s]) && Array.isArray(splits[s].completed) && isRecord(splits[s].open));
  if (!ok) return refuse('identity, position or splits missing');
  return obj as unknown as PrepareProgress;
}
