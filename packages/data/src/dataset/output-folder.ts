import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { TrainerError } from '@trainer/errors';
import { DataErrorCode } from '../codes.js';
import { DATASET_SPLITS, type DatasetManifest, MANIFEST_FILE, type ShardEntry, readManifest } from './manifest.js';
import { type DatasetIdentity, PROGRESS_FILE, type PrepareProgress, datasetIdentity, describeMismatch, mismatchError, readProgress } from './progress-file.js';
import { PARTIAL_SUFFIX, sha256OfFile } from './split-writer.js';

/** What `--out DIR` holds for a run with these inputs. */
export type OutputFolderState =
  | { kind: 'fresh' }
  | { kind: 'done'; manifest: DatasetManifest }
  | { kind: 'resume'; progress: PrepareProgress };

/** Files a dataset folder may hold: shards, indexes, their .partial forms, manifest, progress, and atomic-write temp files of those. */
const DATASET_FILE = /^(?:(?:train|val)-\d{5,}\.(?:tok|idx)(?:\.partial)?|manifest\.json|progress\.json)(?:\.tmp-\d+-[0-9a-f]+)?$/;
/** A temp file of writeFileAtomic. */
const TEMP_FILE = /\.tmp-\d+-[0-9a-f]+$/;

export function identityOfManifest(m: DatasetManifest): DatasetIdentity {
  return datasetIdentity({ tokenizerHash: m.tokenizer.hash, vocabSize: m.tokenizer.vocabSize, eotToken: m.tokenizer.eotToken, sources: m.sources, valFraction: m.valFraction, shardBytes: m.shardBytes });
}

/**
 * Looks at the output folder (creating it): a finished dataset of the same inputs is 'done'; an
 * unfinished run of the same inputs is resumed after its completed shards are verified (size and
 * SHA-256); anything made from other inputs is refused (TRAINER_ERR_DATASET_MISMATCH) unless
 * `overwrite`, which deletes the dataset files (only those: other files in the folder stay).
 */
export async function openOutputFolder(dir: string, identity: DatasetIdentity, datasetId: string, overwrite: boolean): Promise<OutputFolderState> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    throw new TrainerError(DataErrorCode.DATA_WRITE, `cannot create the output folder ${dir}: ${(err as Error).message}`, { hint: 'choose a writable --out', cause: err, details: { dir } });
  }
  if (overwrite) {
    await removeDatasetFiles(dir);
    return { kind: 'fresh' };
  }
  if (await exists(join(dir, MANIFEST_FILE))) {
    const manifest = await readManifest(join(dir, MANIFEST_FILE));
    if (manifest.datasetId !== datasetId) throw mismatchError(dir, describeMismatch(identity, identityOfManifest(manifest)) ?? 'other inputs', false);
    await rm(join(dir, PROGRESS_FILE), { force: true }); // left by a run stopped right after its manifest
    return { kind: 'done', manifest };
  }
  const progress = await readProgress(join(dir, PROGRESS_FILE));
  if (progress === undefined) {
    await removeDatasetFiles(dir); // .partial files of a run killed before its first checkpoint
    return { kind: 'fresh' };
  }
  if (progress.datasetId !== datasetId) throw mismatchError(dir, describeMismatch(identity, progress.identity) ?? 'other inputs', true);
  await removeDatasetFiles(dir, TEMP_FILE); // temp files of atomic writes cut short by a kill
  for (const split of DATASET_SPLITS) {
    for (const entry of progress.splits[split].completed) await verifyShardFiles(dir, entry);
  }
  return { kind: 'resume', progress };
}

/** A completed shard's two files: present (or still under .partial: renamed now), of the recorded size and SHA-256. */
async function verifyShardFiles(dir: string, entry: ShardEntry): Promise<void> {
  for (const [name, bytes, sha256] of [[entry.file, entry.bytes, entry.sha256], [entry.indexFile, entry.indexBytes, entry.indexSha256]] as const) {
    const path = join(dir, name);
    if (!(await exists(path)) && (await exists(path + PARTIAL_SUFFIX))) await rename(path + PARTIAL_SUFFIX, path);
    const size = await stat(path).then((s) => s.size, () => -1);
    const ok = size === bytes && (await sha256OfFile(path)) === sha256;
    if (!ok) {
      throw new TrainerError(DataErrorCode.DATASET_FORMAT, `cannot resume: completed shard file ${path} is ${size < 0 ? 'missing' : 'damaged (its size or SHA-256 differs from the progress file)'}`, {
        hint: 'restore it, or start again with --overwrite',
        details: { path, size, expected: bytes },
      });
    }
  }
}

async function removeDatasetFiles(dir: string, only?: RegExp): Promise<void> {
  for (const name of await readdir(dir)) {
    if (DATASET_FILE.test(name) && (only === undefined || only.test(name))) await rm(join(dir, name), { force: true });
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}
