export { AdamW, DEFAULT_ADAMW, type AdamWConfig, type AdamWState, type Range } from './adamw.js';
export { learningRateAt, type LrSchedule } from './lr-schedule.js';
export { clipFactor, scaleInPlace, sumOfSquares } from './grad-clip.js';
export { allReduceGradients, gradientBuckets, DEFAULT_GRADIENT_SYNC, type GradientSyncOptions } from './gradient-sync.js';
export { DataParallelTrainer, countTargets, weightDecayRanges, type StepResult, type TrainerOptions } from './data-parallel-trainer.js';
export type { FlatParam, LossResult, MicroBatch, ReduceGroup, TrainableModel, WireCodec } from './interfaces.js';
