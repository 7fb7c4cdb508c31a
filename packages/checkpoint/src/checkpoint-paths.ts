import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { writeFileDurable } from './durable.js';
import { CheckpointErrorCode, checkpointError } from './errors.js';
import { MANIFEST_FILE } from './manifest.js';

/**
 * Where checkpoints live in a run folder:
 *
 *   <out>/checkpoints/step-000200/         a committed checkpoint (manifest.json + shards)
 *   <out>/checkpoints/latest               "step-000200\n": the last commit, replaced atomically
 *   <out>/checkpoints/.tmp-step-000300-<run>/   being written; never read, removed if abandoned
 */
export const CHECKPOINTS_DIR = 'checkpoints';
export const LATEST_FILE = 'latest';
const NAME = /^step-(\d{6,})$/;

export function checkpointName(step: number): string {
  return `step-${String(step).padStart(6, '0')}`;
}

export function stepOfCheckpointName(name: string): number | undefined {
  const m = NAME.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** The temporary folder of a checkpoint being written by run `runId`. */
export function tmpCheckpointName(step: number, runId: string): string {
  return `.tmp-${checkpointName(step)}-${runId}`;
}

export interface CheckpointListing {
  name: string;
  step: number;
  path: string;
  /** Committed: manifest.json present (contents not yet checked). */
  hasManifest: boolean;
}

/** The step-* folders of a checkpoints folder, oldest first ([] when it does not exist). */
export async function listCheckpoints(root: string): Promise<CheckpointListing[]> {
  let names: string[];
  try {
    names = await readdir(root);
  } catch {
    return [];
  }
  const out: CheckpointListing[] = [];
  for (const name of names) {
    const step = stepOfCheckpointName(name);
    if (step === undefined) continue;
    const path = join(root, name);
    if (!(await isDir(path))) continue;
    out.push({ name, step, path, hasManifest: await exists(join(path, MANIFEST_FILE)) });
  }
  return out.sort((a, b) => a.step - b.step);
}

/** The checkpoint `latest` names, or undefined when there is none (or it is not a checkpoint name). */
export async function readLatest(root: string): Promise<string | undefined> {
  try {
    const name = (await readFile(join(root, LATEST_FILE), 'utf8')).trim();
    return stepOfCheckpointName(name) === undefined ? undefined : name;
  } catch {
    return undefined;
  }
}

/** Points `latest` at a committed checkpoint, atomically and durably. */
export async function writeLatest(root: string, name: string): Promise<void> {
  await writeFileDurable(join(root, LATEST_FILE), name + '\n');
}

/**
 * A checkpoint folder from what a user may type: the checkpoint itself, a checkpoints folder
 * (its `latest`, else its newest committed checkpoint), or a run folder holding checkpoints/.
 */
export async function resolveCheckpointDir(path: string): Promise<string> {
  if (await exists(join(path, MANIFEST_FILE))) return path;
  if (stepOfCheckpointName(basename(path)) !== undefined && (await isDir(path))) {
    throw checkpointError(CheckpointErrorCode.NOT_FOUND, `${path} has no ${MANIFEST_FILE}: it was never committed (an interrupted save), so it is never loaded`, { file: path });
  }
  for (const root of [path, join(path, CHECKPOINTS_DIR)]) {
    const latest = await readLatest(root);
    if (latest && (await exists(join(root, latest, MANIFEST_FILE)))) return join(root, latest);
    const committed = (await listCheckpoints(root)).filter((c) => c.hasManifest);
    if (committed.length) return committed[committed.length - 1].path;
  }
  throw checkpointError(CheckpointErrorCode.NOT_FOUND, `${path} holds no checkpoint (no ${MANIFEST_FILE}, no ${CHECKPOINTS_DIR}/ with a committed checkpoint)`, { file: path });
}

export async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}
