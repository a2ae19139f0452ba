/**
 * The adaptation step of step.ts on worker threads (`DataParallelTrainer`,
 * docs/parallel-training.md), so a round's training uses both cores:
 *
 *   L = CE_S + Dice_S + λ · Σ W·CE_T / max(Σ W, ε)
 *
 * The trainer's loss is one weighted CE over the batch plus one Dice, so the
 * two groups are written as per-pixel CE coefficients — `1/(n_S·H·W)` on source
 * pixels, `λ·W/max(Σ W, ε)` on target pixels — scaled into [0, 1] by their
 * maximum (which becomes the CE normaliser), and Dice weights 1 on source and 0
 * on target pixels. The workers' reports split the CE back into the source
 * and the target term.
 *
 * Source and target images are interleaved, so with BatchNorm every shard holds
 * both domains as the in-process step's single batch does (the statistics are
 * still per shard: BatchNorm is the one place the two paths differ).
 */
import * as tf from '@tensorflow/tfjs';
import { WEIGHT_SUM_EPSILON, DataParallelTrainer, type Adam, type EmaTeacher, type HostBatch, type SegModel } from '@purify/models';
import type { SliceBatch } from '@purify/training';
import { AdaptationConfigError } from './errors';
import type { DualStepResult } from './step';

/** The whole adaptation batch as one worker batch (see the module comment). `target` undefined or λ = 0: the source batch under CE + Dice. */
export function dualHostBatch(source: SliceBatch, target: SliceBatch | undefined, targetWeight: number): HostBatch {
  if (!(targetWeight >= 0) || !Number.isFinite(targetWeight)) throw new AdaptationConfigError('targetWeight', `targetWeight must be a finite number ≥ 0, got ${targetWeight}`);
  const [nS, h, w] = source.shape;
  const px = h * w;
  if (target === undefined || targetWeight === 0) return { shape: [nS, h, w, 1], images: source.images, labels: source.labels };
  const [nT, th, tw] = target.shape;
  if (th !== h || tw !== w) throw new AdaptationConfigError('batch', `source and target tiles must have the same size, got ${h}×${w} and ${th}×${tw}`);
  let targetSum = 0;
  let maxTarget = 0;
  for (const v of target.weights) {
    targetSum += v;
    if (v > maxTarget) maxTarget = v;
  }
  const sourceCoefficient = 1 / (nS * px);
  const targetScale = targetWeight / Math.max(targetSum, WEIGHT_SUM_EPSILON);
  const scale = Math.max(sourceCoefficient, targetScale * maxTarget); // the largest coefficient becomes 1

  const n = nS + nT;
  const images = new Float32Array(n * px);
  const labels = new Int32Array(n * px);
  const weights = new Float32Array(n * px);
  const diceWeights = new Float32Array(n * px);
  // Interleave s0 t0 s1 t1 …, then the rest of the longer group.
  let s = 0;
  let t = 0;
  for (let slot = 0; slot < n; slot++) {
    const takeSource = t >= nT || (s < nS && s <= t);
    const o = slot * px;
    if (takeSource) {
      images.set(source.images.subarray(s * px, (s + 1) * px), o);
      labels.set(source.labels.subarray(s * px, (s + 1) * px), o);
      weights.fill(sourceCoefficient / scale, o, o + px);
      diceWeights.fill(1, o, o + px);
      s++;
    } else {
      images.set(target.images.subarray(t * px, (t + 1) * px), o);
      labels.set(target.labels.subarray(t * px, (t + 1) * px), o);
      for (let p = 0; p < px; p++) weights[o + p] = Math.min(1, (targetScale * target.weights[t * px + p]!) / scale);
      t++;
    }
  }
  return { shape: [n, h, w, 1], images, labels, weights, diceWeights, ceNormaliser: 1 / scale };
}

export interface ParallelAdaptationOptions {
  readonly workers: number;
  readonly clipNorm?: number | undefined;
}

/**
 * A round's student training on worker threads. Starts from the host's student,
 * Adam state and EMA teacher; `sync()` copies all three (and the dropout stream)
 * back, so export, metrics and checkpoints keep using the host objects.
 */
export class ParallelAdaptation {
  private constructor(
    private readonly trainer: DataParallelTrainer,
    private readonly student: SegModel,
    private readonly optimizer: Adam,
    private readonly ema: EmaTeacher | undefined,
  ) {}

  static async create(student: SegModel, optimizer: Adam, ema: EmaTeacher | undefined, options: ParallelAdaptationOptions): Promise<ParallelAdaptation> {
    const trainer = await DataParallelTrainer.create({
      config: student.config,
      weights: student.getWeights(),
      workers: options.workers,
      backend: tf.getBackend() === 'cpu' ? 'cpu' : 'wasm',
      optimizer: { ...optimizer.config, learningRate: optimizer.config.schedule },
      clipNorm: options.clipNorm,
      ema: ema === undefined ? undefined : { alpha: ema.alpha },
    });
    try {
      await trainer.setOptimizerState(optimizer.getState(), ema?.updates);
      if (ema !== undefined) await trainer.setWeights(ema.model.getWeights(), { teacher: true });
      const states = await trainer.getRngStates();
      states[0] = student.rng.state; // replica 0 continues the student's dropout stream
      await trainer.setRngStates(states);
    } catch (err) {
      await trainer.dispose();
      throw err;
    }
    return new ParallelAdaptation(trainer, student, optimizer, ema);
  }

  /** One step: the same loss, clipping, Adam and EMA update as `adaptationStep`. */
  async step(source: SliceBatch, target: SliceBatch | undefined, targetWeight: number): Promise<DualStepResult> {
    const batch = dualHostBatch(source, target, targetWeight);
    const r = await this.trainer.step(batch);
    const sourceCe = r.ceDiceWeighted ?? r.ce;
    const targetLoss = batch.diceWeights === undefined ? 0 : (r.ce - sourceCe) / targetWeight;
    return { loss: r.loss, sourceLoss: sourceCe + r.dice, targetLoss: Math.max(0, targetLoss), gradNorm: r.gradNorm, learningRate: r.learningRate, step: r.step };
  }

  /** Copies the replicas' student, Adam state, teacher and dropout stream into the host objects. */
  async sync(): Promise<void> {
    this.student.setWeights(await this.trainer.getWeights());
    const state = await this.trainer.getOptimizerState();
    this.optimizer.setState(state.adam);
    if (this.ema !== undefined) {
      this.ema.model.setWeights(await this.trainer.getTeacherWeights());
      if (state.emaUpdates !== undefined) this.ema.updates = state.emaUpdates;
    }
    this.student.rng.state = (await this.trainer.getRngStates())[0]!;
  }

  dispose(): Promise<void> {
    return this.trainer.dispose();
  }
}
