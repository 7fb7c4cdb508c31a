import { z } from 'zod';

/**
 * Messages between the coordinator and a per-host agent (`trainer agent`), on the coordinator's
 * control port (an authenticated comm Channel of role 'control', hello.kind 'agent'). Validated
 * on receipt like every control message: an agent that sends nonsense is dropped, and an agent
 * obeys nothing it cannot parse.
 *
 *   coordinator -> agent   start { round }   stop the previous round's workers, start `slots` new ones
 *                          stop { round }    stop them (a round failed); answered by stopped { round }
 *                          exit { reason }   the job is over: let the workers finish, then exit
 *   agent -> coordinator   worker-exited { round, localRank, pid, code, signal }
 *   both ways              heartbeat { t }
 */
export const AGENT_PROTOCOL_VERSION = 1;

const round = z.number().int().nonnegative();

export const AgentHelloSchema = z.object({
  kind: z.literal('agent'),
  protocol: z.literal(AGENT_PROTOCOL_VERSION),
  /** The host's name in the hostfile (or its hostname under srun). */
  host: z.string().min(1).max(255),
  pid: z.number().int().positive(),
  /** Workers it starts per round. */
  slots: z.number().int().min(1).max(1024),
});
export type AgentHello = z.infer<typeof AgentHelloSchema>;

export const ToAgentSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('start'), round }),
  z.object({ type: z.literal('stop'), round }),
  z.object({ type: z.literal('exit'), reason: z.string().max(2000) }),
  z.object({ type: z.literal('heartbeat'), t: z.number() }),
]);
export type ToAgent = z.infer<typeof ToAgentSchema>;

export const FromAgentSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('worker-exited'), round, localRank: z.number().int().nonnegative().max(1024), pid: z.number().int().positive(),
    code: z.number().int().nullable(), signal: z.string().max(20).nullable(),
  }),
  z.object({ type: z.literal('stopped'), round }),
  z.object({ type: z.literal('heartbeat'), t: z.number() }),
]);
export type FromAgent = z.infer<typeof FromAgentSchema>;

export function agentMessage<T extends ToAgent | FromAgent>(m: T): Record<string, unknown> {
  return m as unknown as Record<string, unknown>;
}
