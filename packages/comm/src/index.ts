export { CommErrorCode } from './codes.js';
export type { Logger } from './transport/logger.js';
export { silentLogger } from './transport/logger.js';
export type { ChannelLimits } from './transport/limits.js';
export type { TlsOptions } from './transport/tls.js';
export { DEFAULT_LIMITS, DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_PAYLOAD_BYTES, DEFAULT_HANDSHAKE_TIMEOUT_MS } from './transport/limits.js';
export type { Header, DecodedFrame } from './transport/frame.js';
export { encodeFrame, decodeFrame } from './transport/frame.js';
export { PROTOCOL_NAME, PROTOCOL_VERSION } from './transport/handshake.js';
export type { ChannelCloseInfo } from './transport/channel.js';
export { Channel, DEFAULT_HIGH_WATER_MARK } from './transport/channel.js';
export type { ConnectChannelOptions } from './transport/connect-channel.js';
export { connectChannel } from './transport/connect-channel.js';
export type { PayloadSink, PayloadTarget } from './transport/stream-link.js';
export type { ChannelServerOptions, ChannelRejectInfo } from './transport/channel-server.js';
export { ChannelServer } from './transport/channel-server.js';
export type { Codec, ReduceOp } from './codecs/codec.js';
export { shardRange } from './collectives/shard.js';
export type { CollectiveOptions } from './collectives/process-group.js';
export type { CollectiveAlgorithm } from './collectives/algorithm.js';
export { chooseAlgorithm, DIRECT_MAX_RANKS } from './collectives/algorithm.js';
export { ProcessGroup } from './collectives/process-group.js';
export { Communicator, MAX_BUFFER_ELEMENTS } from './collectives/communicator.js';
export type { CollectiveKindStats, CollectiveStatsSnapshot, TimedCollectiveKind } from './collectives/collective-stats.js';
export { busBandwidthGBs, busFactor, TIMED_COLLECTIVE_KINDS } from './collectives/collective-stats.js';
export type { PeerAddress, DataPlaneListenOptions, DataPlaneConnectOptions } from './collectives/data-plane.js';
export { DataPlaneThread, type ThreadStartData } from './collectives/data-plane-thread.js';
export {
  DataPlane, DEFAULT_COLLECTIVE_TIMEOUT_MS, DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_PIECE_BYTES, DEFAULT_DATA_HIGH_WATER_MARK, MAX_PIECE_BYTES, unixSocketPath,
} from './collectives/data-plane.js';
export type { AllReduceBenchResult, AllReduceBenchOptions } from './bench/allreduce-bench.js';
export { benchAllReduce } from './bench/allreduce-bench.js';
export { parseSize } from './bench/parse-size.js';
// The 16-bit formats, for engines that hold parameters and gradients in them (mixed precision).
export { encodeBf16, decodeBf16 } from './codecs/bf16.js';
export { encodeFp16, decodeFp16 } from './codecs/fp16.js';
