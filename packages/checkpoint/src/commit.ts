import { readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { checkpointName, exists, listCheckpoints, writeLatest } from './checkpoint-paths.js';
import { fsyncDir, writeFileDurable } from './durable.js';
import { CheckpointErrorCode, checkpointError, writeFailure } from './errors.js';
import { MANIFEST_FILE, parseManifest, type Manifest } from './manifest.js';
import { checkShard, sha256File } from './verify.js';

/**
 * The commit of a checkpoint, run by the coordinator once every rank has written and fsynced
 * its shard into the temporary folder:
 *
 *   1. every file the manifest lists is present, of the reported size, with a valid header
 *      holding the manifest's pieces in their dtypes, and its SHA-256 (read back from disk) is the one its writer reported;
 *   2. manifest.json is written last (temporary name, fsync, rename, fsync of the folder);
 *   3. the folder is renamed into place (step-000200) and the checkpoints folder fsynced;
 *   4. `latest` is replaced atomically;
 *   5. checkpoints older than this one beyond the newest `keepLast` are removed.
 *
 * A failure in 1-3 leaves no step folder and the previous checkpoint and `latest` untouched;
 * the caller removes the temporary folder. Readers never see a folder without its manifest.
 */
export interface CommitRequest {
  /** The checkpoints folder (<out>/checkpoints). */
  root: string;
  /** The temporary folder holding every file of the manifest. */
  tmpDir: string;
  manifest: Manifest;
  /** Keep this many committed checkpoints (this one included); 0 keeps all. */
  keepLast: number;
}

export interface CommitResult {
  name: string;
  path: string;
  /** Bytes of every file checked. */
  bytes: number;
  verifyMs: number;
  commitMs: number;
  /** Older checkpoints removed by keepLast. */
  pruned: string[];
}

export async function commitCheckpoint(req: CommitRequest): Promise<CommitResult> {
  const started = performance.now();
  const { manifest, tmpDir, root } = req;
  parseManifest(JSON.stringify(manifest), join(tmpDir, MANIFEST_FILE)); // the same checks a reader makes
  let bytes = 0;
  const listed = [...manifest.files.map((f) => ({ name: f.name, bytes: f.bytes as number | undefined, sha256: f.sha256 })), ...(manifest.tokenizer ? [{ name: manifest.tokenizer.file, bytes: undefined, sha256: manifest.tokenizer.sha256 }] : [])];
  for (const f of listed) {
    const file = join(tmpDir, f.name);
    if (f.bytes !== undefined) await checkShard(manifest, f.name, file, f.bytes);
    const digest = await sha256File(file);
    if (digest !== f.sha256) {
      throw checkpointError(CheckpointErrorCode.CHECKSUM, `${file} has SHA-256 ${digest.slice(0, 16)}... on disk, its writer reported ${f.sha256.slice(0, 16)}...`, { file });
    }
    bytes += f.bytes ?? 0;
  }
  const verifyMs = performance.now() - started;

  const name = checkpointName(manifest.step);
  const path = join(root, name);
  const trash = join(root, `.trash-${name}-${process.pid}`);
  try {
    await writeFileDurable(join(tmpDir, MANIFEST_FILE), JSON.stringify(manifest, null, 1) + '\n');
    // A folder of the same step (from an earlier run that went further) is replaced.
    const replacing = await exists(path);
    if (replacing) await rename(path, trash);
    await rename(tmpDir, path);
    await fsyncDir(root);
    await writeLatest(root, name);
    if (replacing) await rm(trash, { recursive: true, force: true });
  } catch (err) {
    throw writeFailure(err, join(tmpDir, MANIFEST_FILE), 'committing');
  }
  const pruned = req.keepLast > 0 ? await prune(root, manifest.step, req.keepLast) : [];
  return { name, path, bytes, verifyMs, commitMs: performance.now() - started, pruned };
}

/** Removes committed checkpoints older than `step`, keeping the newest keepLast - 1 of them. */
async function prune(root: string, step: number, keepLast: number): Promise<string[]> {
  const older = (await listCheckpoints(root)).filter((c) => c.step < step && c.hasManifest);
  const doomed = older.slice(0, Math.max(0, older.length - (keepLast - 1)));
  for (const c of doomed) {
    // Unlink the manifest first: a half-removed folder is then never taken for a checkpoint.
    await rm(join(c.path, MANIFEST_FILE), { force: true });
    await rm(c.path, { recursive: true, force: true });
  }
  return doomed.map((c) => c.name);
}

/** Removes temporary and trash folders left by interrupted saves (not those of `exceptRunId`). */
export async function removeAbandoned(root: string, exceptRunId?: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(root);
  } catch {
    return [];
  }
  const gone = names.filter((n) => (n.startsWith('.tmp-') && !(exceptRunId && n.endsWith(`-${exceptRunId}`))) || n.startsWith('.trash-'));
  for (const n of gone) await rm(join(root, n), { recursive: true, force: true });
  return gone;
}
