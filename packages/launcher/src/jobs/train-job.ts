import { memory } from '@tensorflow/tfjs-core';
import { BatchSampler, BpeTokenizer, loadCorpus, PreparedDataset, prepareTokens, validationBatches } from '@trainer/data';
import { PreparedBatches, type MicroBatchSlice } from './prepared-batches.js';
import { buildMesh, HostDevice, meshShape, OneFOneBSchedule, TfDevice, Trainer, type Device, type MicroBatch } from '@trainer/engine';
import { busBandwidthGBs, type DataPlaneThread, type ProcessGroup } from '@trainer/comm';
import { TrainerError } from '@trainer/errors';
import { GPT, GPTSegments, LoraSegments, initBackend, failOnDeviceLoss, installMemoryMeter, installTransferMeter, kernelSetFor, parameterCount, takePeakBackendBytes, transferCounts } from '@trainer/model';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { MetricsRecord } from '../control-protocol.js';
import type { TrainJob } from '../job-spec.js';
import { WorkerCheckpointing } from '../checkpointing/worker-checkpointing.js';
import { checkpointTensors } from '../checkpointing/local-tensors.js';
import type { JobContext } from '../worker.js';
import { maybeInjectFault, parseFault } from './fault-injection.js';
import { saveFinalModel } from './final-model.js';
import { saveFinalLora } from './final-lora.js';
import { writeJsonAtomic } from '@trainer/checkpoint';
import { SyntheticBatches } from './synthetic-batches.js';
import { initialParamsReader, openTaskData } from '../finetune/task-data.js';

/** The closing sample needs the whole model on rank 0: only for models up to this many parameters. */
const SAMPLE_MAX_PARAMETERS = 2 ** 28;

/**
 * The training job every worker runs: GPT training over the device mesh (data parallel with
 * ZeRO over the data-parallel group, tensor parallel within each tensor-parallel group).
 * Rank 0 reports per-step metrics, generates the closing sample and saves the model.
 */
export async function runTrainJob(ctx: JobContext): Promise<MetricsRecord> {
  const { job, rank, world, comm, logger } = ctx;
  const backend = await initBackend(job.backend, (msg) => logger.info(msg));
  // Every host <-> device crossing, and the backend's distinct buffers and their peak, are counted from here on (reported per step).
  installTransferMeter();
  installMemoryMeter();
  const kernels = job.kernels === 'auto' ? kernelSetFor(backend.tfBackend) : job.kernels;
  if (rank === 0) {
    logger.info(kernels === 'host'
      ? `kernels: host (JS/SIMD kernels on ${backend.name}; parameters, gradients and optimizer state in host memory)`
      : `kernels: tf (TF.js ops on ${backend.name}; parameters, gradients and optimizer state as ${backend.name} tensors, only collectives cross to the host)`);
  }
  if (job.precision !== 'fp32' && rank === 0) {
    logger.warn(`precision ${job.precision}: working parameters and gradients held and communicated in ${job.precision}, fp32 master and AdamW state` +
      `${job.precision === 'fp16' ? ', dynamic loss scaling' : ''}; compute in fp32 on the ${backend.name} backend (TF.js has no 16-bit float kernels)`);
  }

  const tokenizerJson = ctx.payload ? Buffer.from(ctx.payload).toString('utf8') : undefined;
  const tokenizer = tokenizerJson ? BpeTokenizer.fromJSON(JSON.parse(tokenizerJson)) : undefined;
  const data = await openData(job, tokenizer, (msg) => logger.info(msg));

  const shape = meshShape(world, job.tp, job.pp);
  const mesh = buildMesh(rank, comm.worldGroup, shape, (ranks) => comm.newGroup(ranks), job.outer?.replicas);
  // DiLoCo: the trainer's data-parallel group is its replica's; the replicas meet every --sync-every steps.
  const replicas = mesh.replicas;
  const dataParallel = replicas?.replica ?? mesh.dp;
  // Data-plane threads keep reading and writing their sockets while this thread computes: one
  // for DiLoCo's overlapped syncs, one for the overlapped gradient reduction (--comm-thread).
  const threads: DataPlaneThread[] = [];
  const threadOver = async (group: ProcessGroup): Promise<DataPlaneThread> => {
    const t = await ctx.startDataPlaneThread();
    threads.push(t);
    await t.join(group, (g) => comm.hostOf(g), {
      machines: group.ranks.map((g) => comm.machineOf(g)), // thread rank i is group rank i
      ...(job.collectiveTimeoutMs !== undefined ? { collectiveTimeoutMs: job.collectiveTimeoutMs } : {}),
      ...(job.collectiveAlgorithm ? { algorithm: job.collectiveAlgorithm } : {}),
    });
    return t;
  };
  const outerThread = job.outer?.overlap && replicas && replicas.outer.size > 1 ? await threadOver(replicas.outer) : undefined;
  const spansMachines = new Set(dataParallel.ranks.map((g) => comm.machineOf(g))).size > 1;
  const gradThread = (job.commThread === 'on' || (job.commThread === 'auto' && spansMachines)) && dataParallel.size > 1 ? await threadOver(dataParallel) : undefined;
  if (gradThread && rank === 0) logger.info(`ZeRO's per-step collectives over ${dataParallel.size} data-parallel ranks run on a data-plane thread${job.commThread === 'auto' ? ' (they span machines)' : ''}`);
  const outer = job.outer && replicas
    ? { group: outerThread ?? replicas.outer, every: job.outer.syncEvery, lr: job.outer.lr, momentum: job.outer.momentum, codec: job.outer.precision, ...(job.outer.overlap > 0 ? { overlap: job.outer.overlap } : {}) }
    : undefined;
  /** Bytes sent and received by this rank's data planes (a thread's counted when its calls complete). */
  const netStats = (): { bytesSent: number; bytesReceived: number } => threads.reduce(
    (s, t) => ({ bytesSent: s.bytesSent + t.stats.bytesSent, bytesReceived: s.bytesReceived + t.stats.bytesReceived }), comm.stats);
  const pipeline = { stages: shape.pp, stage: mesh.coords.pp, ...(job.ppSplit ? { blocks: job.ppSplit } : {}) };
  // LoRA: the trained vector is the adapters; the frozen base is read once, beside it (lora/lora-segments.ts).
  const lora = job.lora ? new LoraSegments(job.model, job.lora, { tensorParallel: mesh.tp, pipeline, kernels, seed: job.seed }) : null;
  const model: GPTSegments | LoraSegments = lora ?? new GPTSegments(job.model, { tensorParallel: mesh.tp, pipeline, kernels });
  if (lora) {
    // The frozen base comes from --from (or the seed's init) on every start, resumes included: checkpoints hold adapters only.
    const base = await initialParamsReader(job, lora.base, checkpointTensors(lora.base, mesh.coords.tp));
    try {
      await lora.loadBase((start, end) => base.read('params', start, end));
    } finally {
      await base.done();
    }
    if (rank === 0) {
      logger.info(`LoRA rank ${job.lora!.rank}, alpha ${job.lora!.alpha} on ${lora.linears.join(', ')}: ${lora.totalSize.toLocaleString('en-US')} trained parameters on this rank ` +
        `(the frozen base's ${lora.base.totalSize.toLocaleString('en-US')} take no gradients, optimizer state or collectives)`);
    }
  }
  // Parameters other ranks hold too (tensor-parallel replicas, the pipeline's tied copy) are counted once in the gradient norm.
  // (DiLoCo: over this replica's ranks only; the replicas do not meet between syncs.)
  const norm = shape.dp < world ? { group: replicas?.whole ?? comm.worldGroup, exclude: model.normExcludedRanges(mesh.coords.tp) } : undefined;
  const tied = model.tiedEmbedding && mesh.embedding ? { group: mesh.embedding, unit: model.tiedEmbedding.unit, length: model.tiedEmbedding.wte.end - model.tiedEmbedding.wte.start } : undefined;
  // The model state lives where the kernels compute: host arrays, or backend tensors (device/).
  const device: Device<unknown> = (kernels === 'host' ? new HostDevice() : new TfDevice()) as Device<unknown>;
  const trainer = new Trainer(model, device, dataParallel, {
    outer,
    norm,
    tied,
    checkpointActivations: job.activationCheckpointing,
    gradientSync: { overlap: job.overlap, bucketBytes: job.bucketBytes, ...(gradThread ? { group: gradThread } : {}) }, // ZeRO's per-step traffic on the thread
    precision: job.precision,
    ...(shape.pp > 1 ? {
      microBatchSchedule: new OneFOneBSchedule({ stages: shape.pp, stage: mesh.coords.pp, group: mesh.pp, io: model.activationIO }),
      pipelineGroup: mesh.pp,
    } : {}),
    stage: job.zero,
    schedule: { lr: job.lr, minLr: job.minLr, warmupSteps: job.warmupSteps, decaySteps: job.steps },
    adamw: { beta1: job.beta1, beta2: job.beta2, eps: 1e-8, weightDecay: job.weightDecay },
    gradClip: job.gradClip,
  });
  if (rank === 0 && job.outDir && job.zero > 0) {
    // The partition layout, for resharding ZeRO state later (checkpoints).
    await mkdir(job.outDir, { recursive: true });
    await writeFile(join(job.outDir, 'partition.json'), JSON.stringify(trainer.partition.describe()) + '\n');
  }
  // Sharded checkpoints: restore (from any layout) before the first step, save every --save-every.
  // Otherwise each rank reads only the initial parameters it keeps.
  const tensors = checkpointTensors(model, mesh.coords.tp);
  const checkpoints = job.checkpoint ? new WorkerCheckpointing({
    spec: job.checkpoint, rank, world, steps: job.steps, tensors, trainer, send: ctx.send, report: ctx.report, logger,
    ...(job.outer && replicas ? { outer: { replica: replicas.outer.rank, replicas: job.outer.replicas, overlap: job.outer.overlap > 0 } } : {}),
  }) : undefined;
  const firstStep = (await checkpoints?.restore()) ?? 0;
  if (firstStep === 0) {
    if (lora) {
      await trainer.init(async (_kind, start, end) => lora.initRange(job.seed, start, end)); // A Kaiming-uniform, B zeros
    } else {
      const initial = await initialParamsReader(job, model, tensors);
      try {
        await trainer.init(initial.read);
      } finally {
        await initial.done();
      }
    }
  }
  if (device.wireFallback) logger.warn(device.wireFallback);
  const dp = { rank: mesh.coords.dp, size: shape.dp };
  const microPerRank = job.globalBatch / (dp.size * job.microBatch);
  const tokensPerStep = job.globalBatch * job.seqLen;
  const losses: number[] = [];
  let timedMs = 0;
  let timedSteps = 0;
  let timedBytesSent = 0;
  let timedCollectiveMs = 0;
  let timedBusBytes = 0;
  let timedIdle = 0;
  let timedToDevice = 0;
  let timedToHost = 0;
  let timedTransferMs = 0;
  let timedCommBytes = 0;
  let peakTfBytes = 0;
  let lastVal: { loss: number; perplexity: number } | undefined;
  let finalSyncMs: number | undefined;
  let timedOuterWaitMs = 0;
  let nonPaddingSum = 0; // fine-tuning rows (rank 0): summed over the steps run, for the summary's means
  let examplesPerRowSum = 0;
  let timedExampleTokens = 0; // fine-tuning: the examples' tokens over the timed steps
  const fault = parseFault(process.env.TRAINER_FAULT);
  const collectGarbage = garbageCollector(process.env.TRAINER_GC_EVERY, logger);

  for (let step = firstStep; step < job.steps; step++) {
    const injected = maybeInjectFault(fault, rank, step, ctx.round);
    if (injected === 'desync') await mesh.dp.allReduce(new Float32Array(7)); // the others are in the step's collectives on this group
    else if (injected) await injected;
    const commBefore = netStats();
    const transfersBefore = transferCounts();
    const collectivesBefore = comm.collectiveStats;
    const started = performance.now();
    const micro: MicroBatch[] = [];
    const slices = Array.from({ length: microPerRank }, (_, m) => ({ rank: dp.rank, dpSize: dp.size, microBatch: job.microBatch, micro: m }));
    // origin: the step and the micro-batch's first row in the global batch (the sampler's contiguous slices), what LoRA dropout's mask is keyed by.
    for (const slice of slices) micro.push({ ...(await data.batch(step, slice)), origin: { step, row: (slice.rank * job.globalBatch) / slice.dpSize + slice.micro * slice.microBatch } });
    if (step + 1 < job.steps) data.prefetch?.(step + 1, slices); // read while this step computes
    // A lost GPU (WebGPU's device.lost) fails the step at once: work on it may never finish.
    const r = await failOnDeviceLoss(trainer.step(step, micro));
    const isLast = step === job.steps - 1;
    const stepMs = performance.now() - started;
    // What crossed between host and device in the step, and what the network carried (sent + received).
    const transfers = transferCounts();
    const toDevice = transfers.hostToDevice - transfersBefore.hostToDevice;
    const toHost = transfers.deviceToHost - transfersBefore.deviceToHost;
    const syncReads = transfers.syncReads - transfersBefore.syncReads;
    const commNow = netStats();
    const sent = commNow.bytesSent - commBefore.bytesSent;
    const commBytes = sent + commNow.bytesReceived - commBefore.bytesReceived;
    // Measured inside the collectives: the time at least one was in flight, and the bus bytes they moved in it.
    const collectives = comm.collectiveStats;
    const collectiveMs = collectives.busyMs - collectivesBefore.busyMs;
    const busbw = busBandwidthGBs(collectivesBefore, collectives) ?? null;
    if (isLast && outer) {
      // The run ends on the replicas' common parameters, nothing in flight: a cost of the run's
      // end (a sync still on the wire is awaited), not of its steps, reported on its own.
      const syncStarted = performance.now();
      await trainer.syncReplicas();
      finalSyncMs = performance.now() - syncStarted;
    }
    if (step >= firstStep + job.warmupTimingSteps) {
      timedMs += stepMs;
      timedSteps += 1;
      timedBytesSent += sent;
      timedOuterWaitMs += r.outerWaitMs ?? 0;
      timedToDevice += toDevice;
      timedToHost += toHost;
      timedTransferMs += transfers.transferMs - transfersBefore.transferMs;
      timedCommBytes += commBytes;
      timedCollectiveMs += collectiveMs;
      timedBusBytes += collectives.busBytes - collectivesBefore.busBytes;
      timedIdle += trainer.bubble;
    }
    losses.push(r.loss);
    const rows = rank === 0 ? data.stepStats?.(step, job.microBatch) : undefined;
    if (rows) {
      nonPaddingSum += rows.nonPaddingShare;
      examplesPerRowSum += rows.examplesPerRow;
      if (step >= firstStep + job.warmupTimingSteps) timedExampleTokens += rows.tokens;
    }
    if (data.valBatches && job.evalBatches > 0 && (isLast || (job.evalEvery > 0 && (step + 1) % job.evalEvery === 0))) {
      // DiLoCo: each replica evaluates the whole validation set (rank 0 reports replica 0's model between syncs).
      lastVal = await evaluate(trainer, data.valBatches, job, replicas ? replicas.replica.rank : dp.rank, replicas ? replicas.replica.size : dp.size);
    }
    if (collectGarbage && (step + 1) % collectGarbage.every === 0) collectGarbage.run(); // before this step's RSS
    const state = trainer.modelStateBytes();
    const mem = memory();
    const usage = process.memoryUsage();
    const peakTf = takePeakBackendBytes();
    peakTfBytes = Math.max(peakTfBytes, peakTf);
    // Every rank reports its memory and traffic; rank 0 also the step's training figures.
    ctx.report({
      step,
      ...(rank === 0 ? {
        loss: r.loss, lr: r.lr, grad_norm: r.gradNorm, step_ms: stepMs, tokens: r.tokens, tokens_per_s: (tokensPerStep * 1000) / stepMs,
        // fine-tuning: the examples' tokens per second (padding left out, packed or not, so the two compare)
        ...(rows ? { non_padding_share: rows.nonPaddingShare, examples_per_row: rows.examplesPerRow, tokens_per_s: (rows.tokens * 1000) / stepMs } : {}),
        ...(lastVal && (isLast || (job.evalEvery > 0 && (step + 1) % job.evalEvery === 0)) ? { val_loss: lastVal.loss, val_perplexity: lastVal.perplexity } : {}),
      } : {}),
      params_bytes: state.params + state.master + state.paramsCompute, grads_bytes: state.grads, optimizer_bytes: state.optimizer,
      model_state_bytes: state.total, peak_tf_bytes: peakTf, tf_bytes: mem.numBytes, num_tensors: mem.numTensors, rss_bytes: usage.rss, peak_rss_bytes: process.resourceUsage().maxRSS * 1024, js_heap_bytes: usage.heapUsed,
      ...gpuBuffers(mem),
      bytes_sent: sent, comm_bytes: commBytes, host_to_device_bytes: toDevice, device_to_host_bytes: toHost, sync_reads: syncReads,
      collective_ms: collectiveMs, allreduce_busbw_gbs: busbw,
      ...(shape.pp > 1 ? { pipeline_stage: mesh.coords.pp, bubble: trainer.bubble } : {}),
      ...(r.lossScale !== undefined ? { loss_scale: r.lossScale, skipped: r.skipped ? 1 : 0 } : {}),
      ...(outer ? { synced: r.synced || isLast ? 1 : 0 } : {}),
      ...(r.outerWaitMs !== undefined ? { outer_wait_ms: r.outerWaitMs } : {}),
    });
    await checkpoints?.afterStep(step, { loss: r.loss, lr: r.lr, grad_norm: r.gradNorm });
  }
  await checkpoints?.finish(); // the last save's shard written and reported
  // Per kind of collective, for whoever wants to see where the traffic went (TRAINER_LOG_LEVEL=debug).
  logger.debug({ collectives: comm.collectiveStats.kinds, bytesSent: comm.stats.bytesSent, steps: job.steps - firstStep }, 'collectives over the run');

  // The trained model: streamed unit by unit into <out>/model by rank 0 (collectives: every rank calls it).
  const sampling = rank === 0 && !lora && tokenizer !== undefined && job.sample.maxNewTokens > 0 && parameterCount(job.model) <= SAMPLE_MAX_PARAMETERS;
  const savedInfo = { modelName: job.modelName, config: job.model, tokenizerJson, info: { steps: job.steps, seed: job.seed, tokenizerHash: tokenizer?.hash ?? null, ...(job.lora ? { lora: job.lora } : {}) } };
  const finalParams = lora
    ? await saveFinalLora({ model: lora, trainer, mesh, rank, outDir: job.outDir || undefined, baseModel: job.init?.path ?? job.modelName, saved: savedInfo }).then(() => null)
    : await saveFinalModel({ model: model as GPTSegments, trainer, mesh, rank, dir: job.outDir ? join(job.outDir, 'model') : undefined, keepFull: sampling, saved: savedInfo });
  if (lora && rank === 0 && job.outDir) logger.info(`LoRA: merged model in ${join(job.outDir, 'model')}, PEFT adapter in ${join(job.outDir, 'adapter')}`);
  // A chat fine-tune keeps its chat template beside its tokenizer (Hugging Face's file), so fine-tuning from this run renders alike.
  if (rank === 0 && job.outDir && job.data.source === 'task' && job.data.chatTemplate) {
    const t = job.data.chatTemplate;
    await writeJsonAtomic(join(job.outDir, 'model', 'tokenizer_config.json'), { chat_template: t.template, bos_token: t.bosToken, eos_token: t.eosToken });
  }
  const state = trainer.modelStateBytes();
  trainer.dispose();
  lora?.dispose();
  await data.close?.();
  let sample: string | null = null;
  if (sampling && finalParams && tokenizer) {
    const gpt = new GPT(job.model, { kernels });
    gpt.setParams(finalParams);
    const prompt = tokenizer.encode(job.sample.prompt);
    // A fine-tuned model ends its completions with <|endoftext|>: the sample stops there.
    const stopToken = job.data.source === 'task' ? tokenizer.eotToken : undefined;
    const ids = await gpt.generate(prompt, { maxNewTokens: job.sample.maxNewTokens, temperature: job.sample.temperature, topK: job.sample.topK, seed: job.seed, stopToken });
    gpt.dispose();
    sample = tokenizer.decode(ids);
  } else if (rank === 0 && job.sample.maxNewTokens > 0 && tokenizer) {
    logger.info(`no closing sample: the model's ${parameterCount(job.model)} parameters are more than one rank assembles (${SAMPLE_MAX_PARAMETERS}); use trainer generate on ${job.outDir ?? 'the model'}`);
  }
  const stepMs = timedSteps ? timedMs / timedSteps : NaN;
  return {
    world, steps: job.steps, backend: backend.name, final_loss: losses[losses.length - 1],
    val_loss: lastVal?.loss ?? null, val_perplexity: lastVal?.perplexity ?? null,
    step_ms: stepMs, tokens_per_s: (tokensPerStep * 1000) / stepMs, sample, zero: job.zero,
    ...(rank === 0 && data.stepStats && losses.length ? { non_padding_share: nonPaddingSum / losses.length, examples_per_row: examplesPerRowSum / losses.length, tokens_per_s: (timedExampleTokens * 1000) / timedMs } : {}),
    ...(finalSyncMs !== undefined ? { final_sync_ms: finalSyncMs } : {}),
    ...(job.outer?.overlap ? { outer_wait_ms_per_step: timedSteps ? timedOuterWaitMs / timedSteps : NaN } : {}),
    bytes_sent_per_step: timedSteps ? timedBytesSent / timedSteps : NaN,
    comm_bytes_per_step: timedSteps ? timedCommBytes / timedSteps : NaN,
    host_to_device_bytes_per_step: timedSteps ? timedToDevice / timedSteps : NaN,
    device_to_host_bytes_per_step: timedSteps ? timedToHost / timedSteps : NaN,
    // time with a host<->device transfer under way (an awaited read also waits for the work queued before it)
    transfer_wait_ms_per_step: timedSteps ? timedTransferMs / timedSteps : NaN,
    kernels,
    // over the timed steps: busy time per step, and bus bytes over busy time (null when no collective ran)
    collective_ms_per_step: timedSteps ? timedCollectiveMs / timedSteps : NaN,
    allreduce_busbw_gbs: timedCollectiveMs > 0 ? timedBusBytes / (timedCollectiveMs * 1e6) : null,
    peak_tf_bytes: peakTfBytes, rss_bytes: process.memoryUsage().rss,
    ...(shape.pp > 1 ? { pipeline_stage: mesh.coords.pp, bubble: timedSteps ? timedIdle / timedSteps : NaN } : {}),
    model_state_bytes: state.total, params_bytes: state.params + state.master + state.paramsCompute, grads_bytes: state.grads, optimizer_bytes: state.optimizer,
    num_tensors: memory().numTensors,
  };
}

interface OpenedData {
  batch(step: number, slice: MicroBatchSlice): MicroBatch | Promise<MicroBatch>;
  /** Starts reading a step's micro-batches now, while the step before computes (ranged datasets). */
  prefetch?(step: number, slices: readonly MicroBatchSlice[]): void;
  /** Validation micro-batches (the first `count` of `microBatch` sequences); absent: no validation. */
  valBatches: ((microBatch: number, count: number) => Iterable<MicroBatch> | Promise<MicroBatch[]>) | undefined;
  /** Fine-tuning rows: the share of positions that are not padding, examples per row (packing), the examples' tokens. */
  stepStats?(step: number, microBatch: number): { nonPaddingShare: number; examplesPerRow: number; tokens: number };
  close?(): Promise<void>;
}

async function openData(job: TrainJob, tokenizer: BpeTokenizer | undefined, log: (msg: string) => void): Promise<OpenedData> {
  if (job.data.source === 'synthetic') {
    const synthetic = new SyntheticBatches(job.model.vocabSize, job.seqLen, job.seed);
    return { batch: (step, slice) => synthetic.batch(step, { ...slice, globalBatch: job.globalBatch }), valBatches: undefined };
  }
  if (job.data.source === 'task') return openTaskData(job, tokenizer);
  if (job.data.source === 'prepared') {
    const datasets = await Promise.all(job.data.datasets.map((d) => PreparedDataset.open(d.path)));
    if (tokenizer) {
      datasets.forEach((ds, i) => {
        if (ds.tokenizerHash !== tokenizer.hash) {
          throw new TrainerError('TRAINER_ERR_DATASET_TOKENIZER', `the dataset ${job.data.source === 'prepared' ? job.data.datasets[i].path : ''} was prepared with another tokenizer than the job's`, {
            hint: 'the dataset changed since the job was prepared: launch again',
          });
        }
      });
    }
    const batches = new PreparedBatches(datasets, job.data.datasets.map((d) => d.weight), job.seqLen, job.globalBatch, job.seed);
    log(`prepared data: ${job.data.datasets.length} dataset(s), ${datasets.reduce((s, d) => s + d.length('train'), 0).toLocaleString('en-US')} train tokens, read by ranges`);
    return {
      batch: (step, slice) => batches.batch(step, slice),
      prefetch: (step, slices) => batches.prefetch(step, slices),
      valBatches: (microBatch, count) => batches.valBatches(microBatch, count),
      close: async () => { await Promise.all(datasets.map((d) => d.close())); },
    };
  }
  if (!tokenizer) throw new TrainerError('TRAINER_ERR_PROTOCOL', 'the job trains on a corpus but no tokenizer came with it');
  const corpus = await loadCorpus(job.data.corpus);
  const split = await prepareTokens({ corpus, tokenizer, cacheDir: job.data.cacheDir, valFraction: job.data.valFraction, log });
  const sampler = new BatchSampler({ tokens: split.train, contextLength: job.seqLen, globalBatch: job.globalBatch, seed: job.seed });
  return { batch: (step, slice) => sampler.batch(step, slice), valBatches: (microBatch, count) => validationBatches(split.val, job.seqLen, microBatch, count) };
}

/**
 * Validation loss over the first `evalBatches` global batches of windows of the held-out split
 * (the same windows whatever the number of workers), in micro-batches shared round-robin by rank.
 */
async function evaluate(trainer: Trainer<unknown>, valBatches: NonNullable<OpenedData['valBatches']>, job: TrainJob, rank: number, world: number) {
  const mine: MicroBatch[] = [];
  let i = 0;
  const microBatches = (job.evalBatches * job.globalBatch) / job.microBatch;
  for (const b of await valBatches(job.microBatch, microBatches)) if (i++ % world === rank) mine.push(b);
  const r = await trainer.evaluate(mine);
  return { loss: r.loss, perplexity: Math.exp(r.loss) };
}

/**
 * Leak hunting: TRAINER_GC_EVERY=N (with node's --expose-gc, e.g. in NODE_OPTIONS) runs a full
 * garbage collection after every N-th step, before its RSS is sampled, so that those samples
 * hold what is live rather than where V8's heap happens to be between collections.
 */
function garbageCollector(value: string | undefined, logger: { warn(msg: string): void }): { every: number; run: () => void } | null {
  if (value === undefined || value === '') return null;
  const every = Number(value);
  if (!Number.isInteger(every) || every < 1) throw new TrainerError('TRAINER_ERR_BAD_ENV', `TRAINER_GC_EVERY=${value} is not a positive integer`, { hint: 'set it to N to collect garbage after every N-th step, or unset it' });
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) {
    logger.warn('TRAINER_GC_EVERY is set but node was started without --expose-gc (add it to NODE_OPTIONS): no collections run');
    return null;
  }
  return { every, run: gc };
}

/** WebGPU's buffer pool (tfjs-backend-webgpu reports it in tf.memory()): bytes in live tensors' buffers, and all allocated. */
function gpuBuffers(mem: object): { gpu_bytes?: number; gpu_allocated_bytes?: number } {
  const m = mem as { numBytesInGPU?: number; numBytesAllocatedInGPU?: number };
  return typeof m.numBytesInGPU === 'number' ? { gpu_bytes: m.numBytesInGPU, gpu_allocated_bytes: m.numBytesAllocatedInGPU } : {};
}
