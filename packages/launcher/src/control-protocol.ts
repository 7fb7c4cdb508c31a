import { z } from 'zod';
import { CheckpointFailedSchema, CheckpointWrittenSchema } from './checkpointing/checkpoint-spec.js';
import { JobSpecSchema } from './job-spec.js';

/**
 * Messages of the control channel (coordinator <-> workers), carried as msgpack headers on an
 * authenticated comm Channel of role 'control'. Every received header is validated here before
 * anything acts on it: an authenticated peer that sends nonsense is dropped, not obeyed.
 *
 * A worker connects twice: its main thread (hello.kind 'worker') for rendezvous, metrics and
 * results, and a heartbeat thread (hello.kind 'heartbeat') that keeps beating while the main
 * thread is busy in a long synchronous TF.js call.
 */
export const CONTROL_ROLE = 'control';
export const CONTROL_PROTOCOL_VERSION = 1;

/**
 * What the coordinator accepts on one control message: headers up to 64 KiB (metrics, reports)
 * and no real payload (only the coordinator sends one: the tokenizer with the assignment).
 */
export const CONTROL_LIMITS = { maxHeaderBytes: 64 * 1024, maxPayloadBytes: 1024 } as const;

const rank = z.number().int().nonnegative();

export const WorkerHelloSchema = z.object({
  kind: z.literal('worker'),
  protocol: z.literal(CONTROL_PROTOCOL_VERSION),
  host: z.string().max(255),
  pid: z.number().int().positive(),
  localRank: z.number().int().nonnegative(),
  /** RANK from the environment, when a scheduler assigned it. */
  requestedRank: rank.optional(),
  /** Where this worker's data plane listens. */
  dataHost: z.string().max(255),
  dataPort: z.number().int().min(1).max(65535),
  device: z.string().max(255),
  /** The rendezvous round this worker was started for (set by the launcher or agent that restarts workers). */
  round: z.number().int().nonnegative().optional(),
});
export type WorkerHello = z.infer<typeof WorkerHelloSchema>;

export const HeartbeatHelloSchema = z.object({ kind: z.literal('heartbeat'), protocol: z.literal(CONTROL_PROTOCOL_VERSION), rank, pid: z.number().int().positive() });

const PeerSchema = z.object({ rank, host: z.string().max(255), port: z.number().int().min(1).max(65535) });

const SerializedErrorSchema = z.object({
  code: z.string().max(100),
  message: z.string().max(10_000),
  hint: z.string().max(2000).optional(),
  details: z.record(z.string(), z.unknown()).optional(),
});

/** Coordinator -> worker. */
export const ToWorkerSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('assign'), rank, world: z.number().int().positive(), round: z.number().int().nonnegative().default(0), peers: z.array(PeerSchema).max(1 << 16), job: JobSpecSchema }),
  z.object({ type: z.literal('heartbeat'), t: z.number() }),
  z.object({ type: z.literal('abort'), reason: z.string().max(10_000) }),
  z.object({ type: z.literal('finish') }),
]);
export type ToWorker = z.infer<typeof ToWorkerSchema>;

/** One line of metrics.jsonl: free-form numbers keyed by name, plus the step. */
const MetricsRecordSchema = z.record(z.string().max(100), z.union([z.number(), z.string().max(10_000), z.null(), z.array(z.number())]));

/** Worker -> coordinator. */
export const ToCoordinatorSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('heartbeat'), t: z.number() }),
  z.object({ type: z.literal('ready'), rank }),
  z.object({ type: z.literal('metrics'), rank, record: MetricsRecordSchema }),
  z.object({ type: z.literal('result'), rank, result: MetricsRecordSchema }),
  z.object({ type: z.literal('failed'), rank, error: SerializedErrorSchema }),
  // Sharded checkpoints: a rank's shard is written (or failed); the coordinator commits.
  CheckpointWrittenSchema,
  CheckpointFailedSchema,
]);
export type ToCoordinator = z.infer<typeof ToCoordinatorSchema>;
export type MetricsRecord = z.infer<typeof MetricsRecordSchema>;

/** Builds the message, typed; sending goes through Channel.send(header). */
export function message<T extends ToWorker | ToCoordinator>(m: T): Record<string, unknown> {
  return m as unknown as Record<string, unknown>;
}
