/**
 * What an engine and a segmented model exchange (GPTSegments, and LoraSegments over it): the
 * segments' unit dependencies, a micro-batch, a segment's forward result, and the buffers its
 * backward adds unit gradients into.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { GradValue, Saved } from './layers/layer.js';

export interface SegmentSpec {
  name: string;
  /** Activation checkpointing may recompute this segment's forward in backward (blocks). */
  recomputable?: boolean;
  /** Units whose parameters the segment's forward reads. */
  forwardUnits: number[];
  /** Units whose parameters its backward reads (the embedding's needs none). */
  backwardUnits: number[];
  /** Units its backward adds gradients to. */
  gradUnits: number[];
}

export interface SegmentBatch {
  tokens: Int32Array;
  targets: Int32Array;
  batch: number;
  /** Packed rows: a segment (sequence) id per token (layers/segment-mask.ts); absent: one sequence per row. */
  segments?: Int32Array;
  /** The optimizer step and the global batch index of this micro-batch's first row (what LoRA dropout's mask is keyed by). */
  origin?: { step: number; row: number };
  /** Packed rows: each position's example, as an index from origin.row (-1: padding); LoRA dropout keys a position by it. */
  examples?: Int32Array;
}

export interface SegmentForward {
  /** The segment's output activation (null for the last segment). */
  y: tf.Tensor | null;
  /** What backward needs (release() it if backward will not run). */
  saved: Saved;
  /** The last segment's mean loss over counted targets (a device read, awaited when needed). */
  loss?: { loss: Promise<number>; count: number };
}

/**
 * A unit's gradient as backward builds it (the engine's GradBuffer): add() takes each
 * parameter's gradient at its unit-relative offset (a tensor's ownership passes to the buffer);
 * a buffer in host memory exposes it as `host`, which the host embedding scatters into directly.
 */
export interface UnitGradBuffer {
  add(offset: number, g: GradValue): void;
  readonly host?: Float32Array;
  /** Takes a gradient of a parameter outside this layout, by its unit-local name (LoRA adapters). */
  addNamed?(name: string, g: GradValue): void;
}
