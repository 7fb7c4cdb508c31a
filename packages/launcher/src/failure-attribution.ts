import type { SerializedTrainerError } from '@trainer/errors';
import type { MetricsRecord } from './control-protocol.js';

/**
 * Who failed, and why: the coordinator's record of a failure, and the rule that turns a
 * witness's report ("rank 2 stopped answering") into the suspect's failure when the suspect
 * cannot say so itself.
 */
export interface WorkerFailure {
  rank: number | undefined;
  host: string;
  pid: number | undefined;
  lastStep: number | undefined;
  error: SerializedTrainerError;
}

export type JobOutcome = { ok: true; results: MetricsRecord[] } | { ok: false; failure: WorkerFailure };

/** How long a witness's report waits for the suspect's own failure (its exit, its lost connection). */
export const DEFAULT_ATTRIBUTION_GRACE_MS = 3000;

/**
 * Errors that are consequences of another rank's failure: they name the suspect(s) in their
 * details (`rank` for a lost peer, `missing` for a timeout). The root cause is the suspect's.
 */
const CONSEQUENTIAL_CODES = new Set([
  'TRAINER_ERR_PEER_LOST', 'TRAINER_ERR_COLLECTIVE_TIMEOUT', 'TRAINER_ERR_CONNECT_TIMEOUT', 'TRAINER_ERR_CONNECT_FAILED',
]);

export function suspectsOf(error: SerializedTrainerError): number[] {
  if (!CONSEQUENTIAL_CODES.has(error.code) || !error.details) return [];
  const { rank, missing } = error.details as { rank?: unknown; missing?: unknown };
  if (Array.isArray(missing)) return missing.filter((r): r is number => Number.isInteger(r));
  return Number.isInteger(rank) ? [rank as number] : [];
}

/** The suspect's failure on the witness's word (no failure of its own arrived in the grace period). */
export function blameSuspect(report: WorkerFailure, suspect: { rank: number; host: string; pid: number; lastStep: number | undefined }): WorkerFailure {
  const s = suspect;
  return {
    rank: s.rank, host: s.host, pid: s.pid, lastStep: s.lastStep,
    error: {
      code: report.error.code,
      message: `worker rank ${s.rank} (host ${s.host}, pid ${s.pid}) stopped responding to its peers; rank ${report.rank} reports: ${report.error.message}`,
      hint: 'the process is hung, or the network between the hosts failed; check the log of that rank and its host',
      details: { reportedBy: report.rank, ...(report.error.details ?? {}) },
    },
  };
}
