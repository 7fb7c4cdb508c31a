import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { TrainerError } from '@trainer/errors';
import { listCheckpoints, resolveCheckpointDir } from './checkpoint-paths.js';
import { CheckpointErrorCode, checkpointError } from './errors.js';
import type { Manifest } from './manifest.js';
import { checkShardPieces, readManifest } from './reader.js';
import { ShardFile } from './shard-file.js';

/**
 * Full verification of a committed checkpoint: the manifest (format, version, coverage of every
 * tensor in every kind of state it holds, params16 included), then every file it lists: present,
 * of the recorded size, a valid shard header whose tensors hold the manifest's pieces in their
 * recorded dtypes, and the recorded SHA-256 over its bytes. Every problem is collected, each
 * naming its file.
 */
export interface VerifyReport {
  dir: string;
  manifest: Manifest;
  files: { name: string; bytes: number; ok: boolean; code?: string }[];
  problems: TrainerError[];
  /** Bytes hashed. */
  bytes: number;
  ms: number;
}

export async function verifyCheckpoint(path: string): Promise<VerifyReport> {
  const started = performance.now();
  const dir = await resolveCheckpointDir(path);
  const manifest = await readManifest(dir);
  const report: VerifyReport = { dir, manifest, files: [], problems: [], bytes: 0, ms: 0 };
  // Shards have a recorded size; the tokenizer copy only its hash.
  const listed: { name: string; bytes?: number; sha256: string }[] = [...manifest.files, ...(manifest.tokenizer ? [{ name: manifest.tokenizer.file, sha256: manifest.tokenizer.sha256 }] : [])];
  for (const f of listed) {
    const file = join(dir, f.name);
    try {
      if (f.bytes !== undefined) await checkShard(manifest, f.name, file, f.bytes);
      const digest = await sha256File(file);
      if (digest !== f.sha256) throw checkpointError(CheckpointErrorCode.CHECKSUM, `${file} has SHA-256 ${digest.slice(0, 16)}..., the manifest recorded ${f.sha256.slice(0, 16)}...`, { file });
      const bytes = f.bytes ?? (await stat(file)).size;
      report.files.push({ name: f.name, bytes, ok: true });
      report.bytes += bytes;
    } catch (err) {
      const e = err as TrainerError;
      report.files.push({ name: f.name, bytes: f.bytes ?? 0, ok: false, code: e.code });
      report.problems.push(e);
    }
  }
  report.ms = performance.now() - started;
  return report;
}

/** Opens a shard (size, header) and checks the manifest's pieces in it against its header. */
export async function checkShard(manifest: Manifest, name: string, path: string, bytes: number): Promise<void> {
  const shard = await ShardFile.open(path, bytes);
  try {
    checkShardPieces(manifest, name, shard);
  } finally {
    await shard.close();
  }
}

/** SHA-256 of a file, streamed (no more than a chunk in memory). */
export function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(path, { highWaterMark: 1 << 20 })
      .on('data', (chunk) => hash.update(chunk))
      .on('error', (err) => {
        if ((err as { code?: string }).code === 'ENOENT') reject(checkpointError(CheckpointErrorCode.SHARD_MISSING, `${path} is missing`, { cause: err, file: path }));
        else reject(checkpointError(CheckpointErrorCode.FORMAT, `cannot read ${path}: ${err.message}`, { cause: err, file: path }));
      })
      .on('end', () => resolve(hash.digest('hex')));
  });
}

/**
 * The newest committed checkpoint under `root` that verifies completely, and the newer ones
 * skipped on the way (each with the first problem found). `undefined` when none verifies.
 */
export async function newestVerified(root: string): Promise<{ found: VerifyReport | undefined; skipped: { name: string; problem: TrainerError }[] }> {
  const skipped: { name: string; problem: TrainerError }[] = [];
  const all = await listCheckpoints(root);
  for (const c of [...all].reverse()) {
    if (!c.hasManifest) {
      skipped.push({ name: c.name, problem: checkpointError(CheckpointErrorCode.NOT_FOUND, `${c.path} has no manifest.json (never committed)`, { file: c.path }) });
      continue;
    }
    try {
      const report = await verifyCheckpoint(c.path);
      if (report.problems.length === 0) return { found: report, skipped };
      skipped.push({ name: c.name, problem: report.problems[0] });
    } catch (err) {
      skipped.push({ name: c.name, problem: err as TrainerError });
    }
  }
  return { found: undefined, skipped };
}
