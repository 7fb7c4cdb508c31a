/**
 * The stable error codes thrown by @trainer/comm. Scripts and other packages match on these
 * strings, so a code is never renamed or reused (see README.md for the catalogue).
 */
export const CommErrorCode = {
  /** A frame that is not [u32 header length][msgpack map][payload], or a header that is not a plain map. */
  FRAME_INVALID: 'TRAINER_ERR_FRAME_INVALID',
  /** A header or payload above the channel's limits (ChannelLimits). */
  FRAME_TOO_LARGE: 'TRAINER_ERR_FRAME_TOO_LARGE',
  /** The peer could not prove it holds the cluster token (or we could not). */
  AUTH_FAILED: 'TRAINER_ERR_AUTH_FAILED',
  /** The handshake did not complete within handshakeTimeoutMs. */
  HANDSHAKE_TIMEOUT: 'TRAINER_ERR_HANDSHAKE_TIMEOUT',
  /** The peer connected to a channel of another role (e.g. a data peer on the control port). */
  ROLE_MISMATCH: 'TRAINER_ERR_ROLE_MISMATCH',
  /** The peer speaks another protocol or another version of ours. */
  PROTOCOL_VERSION: 'TRAINER_ERR_PROTOCOL_VERSION',
  /** A TCP/WebSocket connection could not be opened. */
  CONNECT_FAILED: 'TRAINER_ERR_CONNECT_FAILED',
  /** Connecting (or meeting every peer) took longer than the timeout. */
  CONNECT_TIMEOUT: 'TRAINER_ERR_CONNECT_TIMEOUT',
  /** A send on a channel or communicator that is closed. */
  CHANNEL_CLOSED: 'TRAINER_ERR_CHANNEL_CLOSED',
  /** An option or argument out of its documented range. */
  INVALID_ARGUMENT: 'TRAINER_ERR_INVALID_ARGUMENT',
  /** Ranks issued different collectives (op, size, codec or root) at the same sequence number. */
  COLLECTIVE_MISMATCH: 'TRAINER_ERR_COLLECTIVE_MISMATCH',
  /** A collective did not complete in time; names the rank(s) that did not arrive. */
  COLLECTIVE_TIMEOUT: 'TRAINER_ERR_COLLECTIVE_TIMEOUT',
  /** The connection to a peer closed while it was still needed. */
  PEER_LOST: 'TRAINER_ERR_PEER_LOST',
  /** A collective was called on a group this rank is not a member of. */
  NOT_GROUP_MEMBER: 'TRAINER_ERR_NOT_GROUP_MEMBER',
  /** The data-plane thread (data-plane-thread.ts) failed or exited while its collectives were needed. */
  DATA_PLANE_THREAD: 'TRAINER_ERR_DATA_PLANE_THREAD',
  /** A benchmark worker process failed. */
  BENCH_FAILED: 'TRAINER_ERR_BENCH_FAILED',
} as const;
export type CommErrorCode = (typeof CommErrorCode)[keyof typeof CommErrorCode];
