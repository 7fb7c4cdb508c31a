/**
 * A rank process for the multi-process tests in test/comm-*.test.ts (not part of the public
 * API). Driven over the fork IPC channel: init -> listening, connect -> connected, then
 * collectives on request; reports 'peer-lost' events and errors with their codes. Exits when the
 * parent goes away.
 */
import { createHash } from 'node:crypto';
import { asTrainerError } from '@trainer/errors';
import type { Codec } from '../codecs/codec.js';
import type { CollectiveAlgorithm } from '../collectives/algorithm.js';
import type { Communicator } from '../collectives/communicator.js';
import { DataPlane, type PeerAddress } from '../collectives/data-plane.js';
import { shardRange } from '../collectives/shard.js';

export type RankCommand =
  | { type: 'init'; rank: number; world: number; token: string }
  | { type: 'connect'; peers: PeerAddress[]; collectiveTimeoutMs: number }
  | {
    type: 'allReduce'; id: number; length: number; codec: Codec; op: 'sum' | 'avg' | 'max';
    algorithm?: CollectiveAlgorithm;
    /** Reduce a Communicator.allocBuffer array. */
    registered?: boolean;
    /** Reply with a sha256 of the result's bytes and every 9973rd value instead of all values. */
    digest?: boolean;
  }
  | { type: 'allGather'; id: number; length: number }
  | { type: 'broadcast'; id: number; length: number; root: number }
  | { type: 'close' };

/** The deterministic input of `rank`: value i is ((i * 31 + rank * 7) % 101) - 50 + rank / 4. */
export function rankInput(rank: number, length: number): Float32Array {
  return Float32Array.from({ length }, (_, i) => ((i * 31 + rank * 7) % 101) - 50 + rank / 4);
}

let plane: DataPlane | undefined;
let comm: Communicator | undefined;
let rank = -1;

function reply(msg: Record<string, unknown>): void {
  process.send?.(msg);
}

async function handle(cmd: RankCommand): Promise<void> {
  switch (cmd.type) {
    case 'init':
      rank = cmd.rank;
      plane = await DataPlane.listen({ token: cmd.token });
      reply({ type: 'listening', ...plane.address });
      return;
    case 'connect':
      comm = await plane!.connect({ rank, world: cmd.peers.length, peers: cmd.peers, collectiveTimeoutMs: cmd.collectiveTimeoutMs });
      comm.on('peer-lost', (info: unknown) => reply({ type: 'peer-lost', info }));
      reply({ type: 'connected' });
      return;
    case 'allReduce': {
      const input = rankInput(rank, cmd.length);
      const buf = cmd.registered ? comm!.allocBuffer(cmd.length) : input;
      if (buf !== input) buf.set(input);
      await comm!.worldGroup.allReduce(buf, { codec: cmd.codec, op: cmd.op, algorithm: cmd.algorithm });
      if (!cmd.digest) {
        reply({ type: 'result', id: cmd.id, values: Array.from(buf) });
        return;
      }
      const digest = createHash('sha256').update(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength)).digest('hex');
      reply({ type: 'result', id: cmd.id, digest, values: Array.from(buf.filter((_, i) => i % 9973 === 0)) });
      return;
    }
    case 'allGather': {
      const { start, end } = shardRange(cmd.length, comm!.world, rank);
      const out = await comm!.worldGroup.allGather(rankInput(0, cmd.length).slice(start, end), cmd.length);
      reply({ type: 'result', id: cmd.id, values: Array.from(out) });
      return;
    }
    case 'broadcast': {
      const buf = rank === cmd.root ? rankInput(cmd.root, cmd.length) : new Float32Array(cmd.length);
      await comm!.worldGroup.broadcast(buf, cmd.root);
      reply({ type: 'result', id: cmd.id, values: Array.from(buf) });
      return;
    }
    case 'close':
      await comm?.close();
      process.exit(0);
  }
}

process.on('disconnect', () => process.exit(1));
process.on('message', (cmd: RankCommand) => {
  handle(cmd).catch((err: unknown) => {
    const e = asTrainerError(err);
    reply({ type: 'error', id: 'id' in cmd ? cmd.id : undefined, error: { code: e.code, message: e.message, details: e.details } });
  });
});
