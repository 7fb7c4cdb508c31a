export {
  asFloat32, bytesOf, decodeSafetensors, encodeSafetensors, headerLength, parseSafetensorsHeader, readSafetensors, writeJsonAtomic, writeSafetensors, SafetensorsRangeReader, SafetensorsStreamWriter, type TensorSpec,
  MAX_HEADER_BYTES, type NamedTensor, type SafetensorsDtype, type SafetensorsEntry, type SafetensorsFile,
} from './safetensors.js';
export { CheckpointErrorCode, checkpointError, writeFailure } from './errors.js';
export { fsyncDir, writeFileDurable } from './durable.js';
export { dtypeBytes, packShard, shardSize, ShardFile, SHARD_FORMAT, SHARD_FORMAT_VERSION, type PackedShard, type ShardDtype, type ShardTensor } from './shard-file.js';
export { widenBf16, widenF16, widenHalf, type HalfDtype } from './half-float.js';
export { ShardWriter, type ShardWriteFault, type WrittenShard } from './shard-writer.js';
export {
  halfDtypeOf, parseManifest, stateDtype, stateDtypes, stateKinds, tensorSize, ManifestSchema, MANIFEST_FILE, MANIFEST_FORMAT, MANIFEST_READ_VERSIONS, MANIFEST_VERSION, MANIFEST_VERSION_PLAIN, SHARED_OUTER_KINDS, OuterSchema, type OuterManifest,
  STATE_KINDS, TRAINING_STATE_KINDS, type FileEntry, type Manifest, type Piece, type StateDtypes, type StateKind, type TensorEntry,
} from './manifest.js';
export {
  checkpointName, listCheckpoints, readLatest, resolveCheckpointDir, stepOfCheckpointName, tmpCheckpointName, writeLatest,
  CHECKPOINTS_DIR, LATEST_FILE, type CheckpointListing,
} from './checkpoint-paths.js';
export { CheckpointReader, checkShardPieces, readManifest } from './reader.js';
export { newestVerified, sha256File, verifyCheckpoint, type VerifyReport } from './verify.js';
export { commitCheckpoint, removeAbandoned, type CommitRequest, type CommitResult } from './commit.js';
export { checkTensorsMatch, readFlatRange, shardTensors, tensorEntriesFromShards, type FlatTensor, type OwnedPiece } from './flat-layout.js';
export { forEachRun, regionProblem, regionSize, type Region } from './region.js';
export { HfErrorCode, hfError } from './hf-errors.js';
export { HfModelFolder, HF_INDEX_FILE, HF_WEIGHTS_FILE } from './hf-folder.js';
export { exists as pathExists } from './checkpoint-paths.js';
export { planRegionRead, transposeMatrix, type RegionRead } from './hf-region.js';
export { HfShardFile, HF_FLOAT_DTYPES, type HfFloatDtype, type HfShardEntry } from './hf-shard.js';
export { hfShardFileName, planHfShards, writeHfWeights, HF_DEFAULT_MAX_SHARD_BYTES, type HfWeightSpec, type HfWeightsWritten } from './hf-writer.js';
export { writePeftAdapter, readPeftAdapter, PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE, type PeftAdapterTensor } from './peft-writer.js';
