import { TrainerError } from '@trainer/errors';
import { CommErrorCode } from '../codes.js';
import type { Header } from '../transport/frame.js';

/**
 * Message kinds on a data channel (header field `t`). Every collective message carries the group
 * id `g`, the sequence number `s` of the collective in that group, and the collective's
 * descriptor (op, byte count, codec, root, piece size), so a receiver can tell a mismatch from a
 * late message and name both sides.
 */
export const MSG_DATA = 'c';
export const MSG_ARRIVAL = 'a';
export const MSG_ABORT = 'x';
export const MSG_P2P = 'p';
export const MSG_BYE = 'b';

/** Which step of a collective a data piece belongs to (header field `ph`). */
export const PHASE_REDUCE_SCATTER = 0;
export const PHASE_ALL_GATHER = 1;
export const PHASE_BROADCAST = 2;

/** What every member of a group must agree on for one collective. */
export interface Descriptor {
  op: string;
  /** Bytes of the buffer the collective works on (fp32 bytes, whatever the codec). */
  bytes: number;
  codec: string;
  /** Root group rank (broadcast), -1 otherwise. */
  root: number;
  /** Elements per pipelined piece: part of the agreement, since pieces are addressed by index. */
  piece: number;
}

export function descriptorFields(d: Descriptor): Header {
  return { op: d.op, n: d.bytes, c: d.codec, r: d.root, pe: d.piece };
}

export function readDescriptor(h: Header): Descriptor {
  return { op: String(h.op), bytes: Number(h.n), codec: String(h.c), root: Number(h.r), piece: Number(h.pe) };
}

export function sameDescriptor(a: Descriptor, b: Descriptor): boolean {
  return a.op === b.op && a.bytes === b.bytes && a.codec === b.codec && a.root === b.root && a.piece === b.piece;
}

export function describe(d: Descriptor): string {
  const root = d.root >= 0 ? `, root ${d.root}` : '';
  return `${d.op}(${d.bytes} bytes, ${d.codec}${root}${d.piece ? `, piece ${d.piece}` : ''})`;
}

export interface PeerInfo { rank: number; host: string }

export function mismatchError(groupName: string, seq: number, calls: Array<{ rank: number; desc: Descriptor }>): TrainerError {
  const list = calls.map((c) => `rank ${c.rank} called ${describe(c.desc)}`).join('; ');
  return new TrainerError(CommErrorCode.COLLECTIVE_MISMATCH, `collective mismatch in group ${groupName} at sequence ${seq}: ${list}`, {
    hint: 'every rank of a group must issue the same collectives, with the same sizes and codec, in the same order',
    details: { group: groupName, seq, calls: calls.map((c) => ({ rank: c.rank, ...descriptorFields(c.desc) })) },
  });
}

export function timeoutError(groupName: string, seq: number, d: Descriptor, timeoutMs: number, missing: PeerInfo[], stalled: PeerInfo[]): TrainerError {
  const who = (ps: PeerInfo[]): string => ps.map((p) => `rank ${p.rank} (${p.host})`).join(', ');
  const why = missing.length > 0
    ? `waiting for ${who(missing)} to arrive`
    : `every rank arrived but data from ${who(stalled)} stopped coming`;
  return new TrainerError(CommErrorCode.COLLECTIVE_TIMEOUT, `${describe(d)} #${seq} in group ${groupName} timed out after ${timeoutMs} ms, ${why}`, {
    hint: missing.length > 0
      ? 'the named rank is slower, stuck, or skipped this collective: check its log; raise timeoutMs if it is just slow'
      : 'check the named rank and the network between the ranks',
    details: { group: groupName, seq, timeoutMs, missing: missing.map((p) => p.rank), stalled: stalled.map((p) => p.rank), hosts: [...missing, ...stalled].map((p) => p.host) },
  });
}

export function peerLostError(peer: PeerInfo, reason: string): TrainerError {
  return new TrainerError(CommErrorCode.PEER_LOST, `lost the connection to rank ${peer.rank} (${peer.host}): ${reason}`, {
    hint: 'the peer process exited or the network failed: check its log; the job must restart from a checkpoint',
    details: { rank: peer.rank, host: peer.host, reason },
  });
}

export function protocolError(groupName: string, from: number, message: string): TrainerError {
  return new TrainerError(CommErrorCode.FRAME_INVALID, `invalid collective message from rank ${from} in group ${groupName}: ${message}`, {
    hint: 'ranks must run the same trainer version; otherwise this is a bug',
    details: { group: groupName, from },
  });
}
