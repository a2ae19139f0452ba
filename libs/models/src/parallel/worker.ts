/**
 * Worker-thread entry of {@link DataParallelTrainer}: one replica of the U-Net
 * with its own Adam (and, on the last worker, the EMA teacher) on its own
 * TensorFlow.js backend. Started by `trainer.ts`; talks to it through
 * `parentPort` messages (requests and replies) and, inside a step, to the
 * other workers through shared memory and {@link barrier}s only — the main
 * thread is never waited on mid-step.
 *
 * A step on shard s (images `[n_s, H, W, C]`):
 * 1. forward in training mode; CE term `Σ_{p∈s} w·CE / normaliser` (the whole
 *    batch's normaliser, so the shard terms add up to the batch CE); the Dice
 *    term weighs pixels by the separate Dice weights when the batch has them,
 *    else by `w` (with `diceUsesWeights`);
 * 2. with Dice: the shard's Dice sums `I_k^s`, `S_k^s` go to shared memory, a
 *    barrier, every worker adds all shards' sums (same order, float64) and
 *    turns them into the constants `∂L/∂I_k`, `∂L/∂S_k`; the shard's
 *    surrogate `Σ_k ∂L/∂I_k·I_k^s + ∂L/∂S_k·S_k^s` has exactly the shard's
 *    part of the whole-batch Dice gradient;
 * 3. backward; gradients (and BatchNorm running statistics) to shared memory,
 *    a barrier, every worker sums the gradients in the same order (and
 *    averages the statistics weighted by shard size);
 * 4. clip + Adam on every replica (identical inputs → identical weights), or
 *    on worker 0 and copied (`broadcast`); EMA on the last worker.
 */
import * as tf from '@tensorflow/tfjs';
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { selectBackend } from '../backend';
import { EmaTeacher } from '../ema';
import { ModelInputError } from '../errors';
import { registerWasmTrainingKernels } from '../kernels';
import { DICE_SMOOTH } from '../losses';
import { Adam, clipByGlobalNorm, globalNorm } from '../optimizer';
import type { SegModel } from '../seg-model';
import { buildUNet } from '../unet';
import {
  abortBarrier,
  barrier,
  BarrierAbortedError,
  broadcastOffset,
  diceTotalsGradient,
  GRAD_HEADER,
  gradsOffset,
  splitBatch,
  statsOffset,
  UpdateMode,
  type ExchangeLayout,
  type ParallelLossOptions,
  type Shard,
  type StepInput,
  type StepReply,
  type WorkerInit,
  type WorkerReply,
  type WorkerRequest,
} from './shared';

const port = parentPort;
if (port === null) throw new Error('parallel/worker.ts must run in a worker thread (started by DataParallelTrainer)');
const init = workerData as WorkerInit;
const ctrl = new Int32Array(init.control);

interface Replica {
  readonly model: SegModel;
  readonly adam: Adam;
  readonly teacher: EmaTeacher | undefined;
  readonly trainVars: tf.Variable[];
  /** Non-trainable variables (BatchNorm running statistics), in model order. */
  readonly bufferVars: tf.Variable[];
  readonly layout: ExchangeLayout;
  readonly exchange: Float32Array;
}

let replica: Replica | undefined;
let model: SegModel | undefined;

function post(reply: WorkerReply): void {
  port!.postMessage(reply);
}

async function start(): Promise<void> {
  await selectBackend(init.backend);
  if (init.backend === 'wasm') registerWasmTrainingKernels();
  model = buildUNet(init.config, { namePrefix: `replica${init.index}_` });
  // Distinct dropout streams per replica (worker 0 keeps the model's own stream, as in-process training would).
  if (init.index > 0) model.rng.state = (model.rng.state + Math.imul(init.index, 0x9e3779b9)) >>> 0;
  const vars = model.variables();
  const params = vars.filter((v) => v.trainable).reduce((n, v) => n + v.variable.size, 0);
  const buffers = vars.filter((v) => !v.trainable).reduce((n, v) => n + v.variable.size, 0);
  post({ type: 'ready', params, buffers });
}

function setup(exchange: SharedArrayBuffer, weights: Parameters<SegModel['setWeights']>[0] | undefined): void {
  const m = model!;
  if (weights !== undefined) m.setWeights(weights);
  const vars = m.variables();
  const trainVars = m.trainableVariables();
  const bufferVars = vars.filter((v) => !v.trainable).map((v) => v.variable);
  const layout: ExchangeLayout = {
    workers: init.workers,
    numClasses: init.config.numClasses,
    params: trainVars.reduce((n, v) => n + v.size, 0),
    buffers: bufferVars.reduce((n, v) => n + v.size, 0),
  };
  const adam = new Adam(trainVars, init.adam);
  const teacher = init.emaAlpha !== undefined && init.index === init.workers - 1 ? EmaTeacher.create(m, { alpha: init.emaAlpha }) : undefined;
  replica = { model: m, adam, teacher, trainVars, bufferVars, layout, exchange: new Float32Array(exchange) };
}

/** Checks the shard's labels and weights (the checks trainStep does), naming the images. */
function validateShard(input: StepInput, shard: Shard, k: number): void {
  const [, h, w] = input.shape;
  const where = `(images ${shard.start}–${shard.start + shard.count - 1})`;
  if (input.labelKind === 'map') {
    const labels = new Int32Array(input.buffer, 4 * (input.labelsAt + shard.start * h * w), shard.count * h * w);
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of labels) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (lo < 0 || hi >= k) throw new ModelInputError(`batch.labels values must be in [0, ${k - 1}], got range [${lo}, ${hi}] ${where}`);
  } else {
    const probs = new Float32Array(input.buffer, 4 * (input.labelsAt + shard.start * h * w * k), shard.count * h * w * k);
    for (const v of probs) {
      if (!(v >= 0 && v <= 1)) throw new ModelInputError(`batch.labels probabilities must be in [0, 1], got ${v} ${where}`);
    }
  }
  for (const [field, has, at] of [
    ['weights', input.hasWeights, input.weightsAt],
    ['diceWeights', input.hasDiceWeights, input.diceWeightsAt],
  ] as const) {
    if (!has) continue;
    const values = new Float32Array(input.buffer, 4 * (at + shard.start * h * w), shard.count * h * w);
    for (const v of values) {
      if (!(v >= 0 && v <= 1)) throw new ModelInputError(`batch.${field} must be in [0, 1], got ${v} ${where}`);
    }
  }
}

function step(input: StepInput, shard: Shard, update: boolean, lossOptions: ParallelLossOptions, clipNorm: number | undefined): StepReply {
  const r = replica!;
  const { model: m, layout, exchange: ex } = r;
  const t0 = performance.now();
  const k = init.config.numClasses;
  const [n, h, w, c] = input.shape;
  const ceWeight = lossOptions.ceWeight ?? 1;
  const diceWeight = lossOptions.diceWeight ?? 1;
  const diceUsesWeights = lossOptions.diceUsesWeights ?? true;
  const ignoreBackground = lossOptions.ignoreBackground ?? false;
  const smooth = lossOptions.smooth ?? DICE_SMOOTH;
  const kept = ignoreBackground ? k - 1 : k;
  let waitMs = 0;
  const wait = (): void => {
    const tw = performance.now();
    barrier(ctrl, init.workers);
    waitMs += performance.now() - tw;
  };

  if (shard.count > 0) validateShard(input, shard, k);
  const f32 = new Float32Array(input.buffer);
  const toDispose: tf.Tensor[] = [];
  try {
    let images: tf.Tensor4D | undefined;
    let target: tf.Tensor4D | undefined; // [n_s, H, W, K] float32
    let weights: tf.Tensor3D | undefined;
    let diceWeights: tf.Tensor3D | undefined;
    if (shard.count > 0) {
      const s = shard.start;
      const cnt = shard.count;
      images = tf.tensor4d(f32.subarray(input.imagesAt + s * h * w * c, input.imagesAt + (s + cnt) * h * w * c), [cnt, h, w, c]);
      toDispose.push(images);
      if (input.labelKind === 'map') {
        const i32 = new Int32Array(input.buffer, 4 * (input.labelsAt + s * h * w), cnt * h * w);
        target = tf.tidy(() => tf.oneHot(tf.tensor3d(i32, [cnt, h, w], 'int32'), k).toFloat() as tf.Tensor4D);
      } else {
        target = tf.tensor4d(f32.subarray(input.labelsAt + s * h * w * k, input.labelsAt + (s + cnt) * h * w * k), [cnt, h, w, k]);
      }
      toDispose.push(target);
      if (input.hasWeights) {
        weights = tf.tensor3d(f32.subarray(input.weightsAt + s * h * w, input.weightsAt + (s + cnt) * h * w), [cnt, h, w]);
        toDispose.push(weights);
      }
      if (input.hasDiceWeights) {
        diceWeights = tf.tensor3d(f32.subarray(input.diceWeightsAt + s * h * w, input.diceWeightsAt + (s + cnt) * h * w), [cnt, h, w]);
        toDispose.push(diceWeights);
      }
    }
    const t1 = performance.now();

    // Phase 1 (inside the gradient function when the shard is not empty): Dice totals over all shards.
    let diceLoss = 0;
    const exchangeDiceTotals = (intersection: Float32Array, total: Float32Array): { dI: Float32Array; dS: Float32Array } => {
      const own = statsOffset(layout, init.index);
      ex.fill(0, own, own + 2 * k);
      ex.set(intersection, own);
      ex.set(total, own + k);
      wait();
      const sumI = new Float64Array(kept);
      const sumS = new Float64Array(kept);
      for (let wk = 0; wk < init.workers; wk++) {
        const o = statsOffset(layout, wk);
        for (let j = 0; j < kept; j++) {
          sumI[j]! += ex[o + j]!;
          sumS[j]! += ex[o + k + j]!;
        }
      }
      const g = diceTotalsGradient(sumI, sumS, smooth);
      diceLoss = g.loss;
      return g;
    };

    let ceTerm: tf.Scalar | undefined;
    let ceDiceTerm: tf.Scalar | undefined; // the CE term's part on Dice-weighted pixels (reported, not differentiated)
    let grads: tf.NamedTensorMap | undefined;
    if (images !== undefined && target !== undefined) {
      const x = images;
      const t = target;
      const res = tf.variableGrads(() => {
        const logits = m.logits(x, true); // [n_s, H, W, K]
        const ce = tf.neg(tf.sum(tf.mul(t, tf.logSoftmax(logits, -1)), -1)); // [n_s, H, W]
        const wce = weights === undefined ? ce : tf.mul(weights, ce);
        const ceT = tf.div<tf.Scalar>(tf.sum(wce), input.normaliser);
        ceTerm = tf.keep(ceT);
        if (diceWeights !== undefined) ceDiceTerm = tf.keep(tf.div<tf.Scalar>(tf.sum(tf.mul(diceWeights, wce)), input.normaliser));
        let total = tf.mul<tf.Scalar>(ceT, ceWeight);
        if (diceWeight > 0) {
          let p = tf.softmax(logits, -1); // [n_s, H, W, K]
          let tk: tf.Tensor = t;
          if (ignoreBackground) {
            p = tf.slice(p, [0, 0, 0, 1], [-1, -1, -1, k - 1]);
            tk = tf.slice(t, [0, 0, 0, 1], [-1, -1, -1, k - 1]);
          }
          const dw = diceWeights ?? (diceUsesWeights ? weights : undefined);
          const wd = dw === undefined ? undefined : tf.expandDims(dw, -1); // [n_s, H, W, 1]
          const pw = wd === undefined ? p : tf.mul(p, wd);
          const tw = wd === undefined ? tk : tf.mul(tk, wd);
          const inter = tf.sum(tf.mul(pw, tk), [0, 1, 2]); // [K']
          const tot = tf.add(tf.sum(pw, [0, 1, 2]), tf.sum(tw, [0, 1, 2])); // [K']
          const { dI, dS } = exchangeDiceTotals(inter.dataSync() as Float32Array, tot.dataSync() as Float32Array); // waits for every shard
          const surrogate = tf.add(tf.sum(tf.mul(inter, tf.tensor1d(dI))), tf.sum(tf.mul(tot, tf.tensor1d(dS))));
          total = tf.add(total, tf.mul(surrogate, diceWeight));
        }
        return total;
      }, r.trainVars);
      toDispose.push(res.value);
      grads = res.grads;
      toDispose.push(...Object.values(grads));
      if (ceTerm !== undefined) toDispose.push(ceTerm);
      if (ceDiceTerm !== undefined) toDispose.push(ceDiceTerm);
    } else if (diceWeight > 0) {
      exchangeDiceTotals(new Float32Array(k), new Float32Array(k));
    }

    // Phase 2: gradients and BatchNorm statistics through shared memory.
    const own = gradsOffset(layout, init.index);
    ex[own] = ceTerm === undefined ? 0 : ceTerm.dataSync()[0]!;
    ex[own + 1] = ceDiceTerm === undefined ? 0 : ceDiceTerm.dataSync()[0]!;
    let o = own + GRAD_HEADER;
    for (const v of r.trainVars) {
      if (grads === undefined) ex.fill(0, o, o + v.size);
      else ex.set(grads[v.name]!.dataSync(), o);
      o += v.size;
    }
    for (const v of r.bufferVars) {
      ex.set(v.dataSync(), o);
      o += v.size;
    }
    const t2 = performance.now();
    const phase1WaitMs = waitMs;
    wait();
    const t3 = performance.now();

    const total = layout.params + layout.buffers;
    const acc = new Float64Array(total);
    let ceSum = 0;
    let ceDiceSum = 0;
    const shards = splitBatch(n, init.workers);
    for (let wk = 0; wk < init.workers; wk++) {
      const base = gradsOffset(layout, wk);
      ceSum += ex[base]!;
      ceDiceSum += ex[base + 1]!;
      const g = base + GRAD_HEADER;
      for (let j = 0; j < layout.params; j++) acc[j]! += ex[g + j]!;
      const share = shards[wk]!.count / n; // BatchNorm statistics: mean over shards weighted by shard size
      if (share > 0) for (let j = layout.params; j < total; j++) acc[j]! += share * ex[g + j]!;
    }
    const reduced = Float32Array.from(acc);
    const t4 = performance.now();
    const loss = ceWeight * ceSum + (diceWeight > 0 ? diceWeight * diceLoss : 0);
    const dice = diceWeight > 0 ? diceLoss : 0;
    const ceSplit = input.hasDiceWeights ? { ceDiceWeighted: ceDiceSum } : {};
    // BatchNorm running statistics: every replica takes the shard-size-weighted mean (the training forward moved them).
    const assignBuffers = (): void => {
      let off = layout.params;
      for (const v of r.bufferVars) {
        tf.tidy(() => v.assign(tf.tensor(reduced.subarray(off, off + v.size), v.shape, 'float32')));
        off += v.size;
      }
    };

    if (!update) {
      assignBuffers();
      let sq = 0;
      for (let j = 0; j < layout.params; j++) sq += acc[j]! * acc[j]!;
      let off = 0;
      const gradients = r.trainVars.map((v) => {
        const g = { name: m.variables().find((x) => x.variable === v)!.name, shape: [...v.shape], values: reduced.slice(off, off + v.size) };
        off += v.size;
        return g;
      });
      return {
        loss,
        ce: ceSum,
        ...ceSplit,
        dice,
        gradNorm: Math.sqrt(sq),
        learningRate: r.adam.learningRate,
        step: r.adam.step,
        timings: { inputMs: t1 - t0, computeMs: t2 - t1 - phase1WaitMs, waitMs, reduceMs: t4 - t3, updateMs: 0 },
        ...(init.index === 0 ? { gradients } : {}),
      };
    }

    // Update.
    let gradNorm = NaN;
    let learningRate = r.adam.learningRate;
    const owner = init.updateMode === UpdateMode.Replicated || init.index === 0;
    if (owner) {
      const gradList: tf.Tensor[] = [];
      let off = 0;
      for (const v of r.trainVars) {
        gradList.push(tf.tensor(reduced.subarray(off, off + v.size), v.shape, 'float32'));
        off += v.size;
      }
      toDispose.push(...gradList);
      let norm: tf.Scalar;
      let applied = gradList;
      if (clipNorm !== undefined) {
        const cl = clipByGlobalNorm(gradList, clipNorm);
        norm = cl.norm;
        applied = cl.clipped;
        toDispose.push(...cl.clipped);
      } else {
        norm = globalNorm(gradList);
      }
      toDispose.push(norm);
      learningRate = r.adam.apply(applied);
      gradNorm = norm.dataSync()[0]!;
      assignBuffers();
    }
    if (init.updateMode === UpdateMode.Broadcast) {
      const bo = broadcastOffset(layout);
      const all = [...r.trainVars, ...r.bufferVars];
      if (init.index === 0) {
        let off = bo;
        for (const v of all) {
          ex.set(v.dataSync(), off);
          off += v.size;
        }
      }
      wait();
      if (init.index !== 0) {
        let off = bo;
        for (const v of all) {
          tf.tidy(() => v.assign(tf.tensor(ex.slice(off, off + v.size), v.shape, 'float32')));
          off += v.size;
        }
        learningRate = NaN; // only worker 0 (the owner) reports
      }
    }
    const emaAlpha = r.teacher?.update(m);
    const t5 = performance.now();
    return {
      loss,
      ce: ceSum,
      ...ceSplit,
      dice,
      gradNorm,
      learningRate,
      step: r.adam.step,
      ...(emaAlpha === undefined ? {} : { emaAlpha }),
      timings: { inputMs: t1 - t0, computeMs: t2 - t1 - phase1WaitMs, waitMs, reduceMs: t4 - t3, updateMs: t5 - t4 - (waitMs - phase1WaitMs - (t3 - t2)) },
    };
  } finally {
    tf.dispose(toDispose);
  }
}

function handle(req: WorkerRequest): unknown {
  switch (req.type) {
    case 'setup':
      setup(req.exchange, req.weights);
      return init.index === 0 ? model!.getWeights() : null;
    case 'step':
      return step(req.input, req.shard, req.update, req.loss, req.clipNorm);
    case 'getWeights': {
      const r = replica!;
      if (!req.teacher) return r.model.getWeights();
      if (r.teacher === undefined) throw new ModelInputError('getWeights: this trainer has no EMA teacher (create it with `ema`)');
      return r.teacher.model.getWeights();
    }
    case 'setWeights': {
      const r = replica!;
      if (!req.teacher) r.model.setWeights(req.weights);
      else if (r.teacher !== undefined) r.teacher.model.setWeights(req.weights);
      return null;
    }
    case 'getOptimizerState':
      return { adam: replica!.adam.getState(), emaUpdates: replica!.teacher?.updates };
    case 'setOptimizerState': {
      const r = replica!;
      r.adam.setState(req.state);
      if (r.teacher !== undefined && req.emaUpdates !== undefined) r.teacher.updates = req.emaUpdates;
      return null;
    }
    case 'getRngState':
      return model!.rng.state;
    case 'setRngState':
      model!.rng.state = req.state >>> 0;
      return null;
  }
}

port.on('message', (req: WorkerRequest) => {
  try {
    const value = handle(req);
    post({ type: 'result', id: req.id, value });
  } catch (err) {
    const aborted = err instanceof BarrierAbortedError;
    if (!aborted) abortBarrier(ctrl);
    const e = err instanceof Error ? err : new Error(String(err));
    post({ type: 'error', id: req.id, name: e.name, message: e.message, aborted });
  }
});

start().catch((err: unknown) => {
  const e = err instanceof Error ? err : new Error(String(err));
  post({ type: 'error', id: null, name: e.name, message: e.message, aborted: false });
});
