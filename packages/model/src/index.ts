export type { BackendName, BackendInfo } from './backend.js';
export { initBackend } from './backend.js';
export { failOnDeviceLoss, deviceLossWaiters, loseDevice, type WebGpuAdapterInfo } from './webgpu-adapter.js';
export { ModelErrorCode } from './codes.js';
export type { GPTConfig, ModelFamily, RopeScaling } from './config.js';
export { MODEL_CONFIGS, resolveModelConfig, validateConfig, familyOf, isTiedHead, kvHeadsOf, ffnHiddenOf } from './config.js';
export type { ParamEntry, ParamLayout } from './layout.js';
export { paramLayout, parameterCount, paramUnits, type ParamUnit } from './layout.js';
export { initParams, initParamsRange, initLocalRange, INIT_STD, type LocalParamEntry } from './init.js';
export { Rng } from './prng.js';
export type { GPTOptions, LossResult } from './gpt.js';
export { GPT } from './gpt.js';
export type { GenerateOptions } from './model-input.js';
export { flopsPerToken } from './flops.js';
export { measureMatMulPeak, measureTransferBandwidth } from './peak.js';
export { Profiler } from './profiler.js';
export type { ForwardBackwardBenchOptions, ForwardBackwardBenchResult } from './bench/forward-backward.js';
export { benchForwardBackward } from './bench/forward-backward.js';
export { setSimdKernelsEnabled } from './host/simd.js';
// Layers, for engines that drive the model block by block (same forward/backward contract).
export type { Layer, Saved, ParamGrads, GradValue, ForwardResult, BackwardResult } from './layers/layer.js';
export { constant, causalMask } from './layers/constants.js';
export { installTransferMeter, transferCounts, type TransferCounts } from './device/transfer-meter.js';
export { backendBytes, installMemoryMeter, takePeakBackendBytes } from './device/memory-meter.js';
export {
  segmentMemory, segmentMemoryDetail, recomputeMemory, batchUploadBytes, kernelConstantBytes,
  type ActivationShape, type SegmentMemory, type SegmentMemoryDetail, type SegmentMemoryKind, type RecomputeMemory, type TensorBytes, type TraceBackend,
} from './memory/activation-memory.js';
export { HostGradients } from './host-gradients.js';
export type { KernelSet, LayerSet } from './layers/layer-set.js';
export { kernelSetFor, makeLayerSet } from './layers/layer-set.js';
export type { BlockParams } from './layers/block.js';
export { Block, BlockSaved } from './layers/block.js';
export type { LayerNormParams } from './layers/layernorm.js';
export { HostLayerNorm, TfLayerNorm } from './layers/layernorm.js';
export type { LinearParams } from './layers/linear.js';
export { HostLinear, TfLinear } from './layers/linear.js';
export { HostAttention, TfAttention } from './layers/attention.js';
export { HostGelu, TfGelu } from './layers/gelu.js';
export type { EmbeddingGrads, EmbeddingLayer, EmbeddingParams, TokenBatch } from './layers/embedding.js';
export { HostEmbedding, TfEmbedding } from './layers/embedding.js';
export type { LMHead, LMHeadParams, LossForward } from './layers/lm-head.js';
export { HostLMHead, TfLMHead } from './layers/lm-head.js';
export type { ModelParams } from './model-params.js';
export type { UnitParams } from './model-params.js';
export { GPTSegments, segmentSpecs, type GPTSegmentsOptions, unitComputeCosts, type SegmentSpec, type SegmentBatch, type SegmentForward, type UnitGradBuffer } from './segments.js';
export type { TensorParallelGroup } from './tensor-parallel/mappings.js';
export type { VocabParallelEmbeddingLayer, VocabParallelHeadLayer } from './tensor-parallel/vocab-parallel.js';
export { checkTensorParallel, tensorParallelLayout, localFromGlobal, globalFromLocals, placeShard, type TPLayout, type TPParamEntry, type TensorShard } from './tensor-parallel/tp-layout.js';
export { balanceBlocks, checkPipeline, stagePlan, type PipelineBalance, type PipelineStageSpec, type SegmentKind, type StagePlan } from './pipeline-stage.js';
export { hfNameOf, hfTensors, hfConfigJson, configFromHf, type HfTensor } from './hf-names.js';
// LoRA: adapters on frozen linears (lora/lora-config.ts has the math and the flags' rules).
export { type LoraConfig, DEFAULT_LORA_TARGETS, checkLoraConfig, loraScale, loraTargetLinears, peftTargetModules, validLoraTargets } from './lora/lora-config.js';
export { loraLayout, fullLoraLayout, initLoraRange, type LoraLayout, type LoraParamEntry } from './lora/lora-layout.js';
export { LoraSegments, type LoraSegmentsOptions } from './lora/lora-segments.js';
export { loraDropoutMask, fmix32, hashChain, dropThreshold, type LoraDropoutSpec } from './lora/lora-dropout.js';
export { LoraLinear, type LoraAdapter, type LoraLinearParams } from './layers/lora-linear.js';
export { peftNameOf, peftAdapterConfig } from './lora/peft-names.js';
