/**
 * No loss of accuracy from data parallelism (issue #10 target): the same
 * number of seeded steps on a small learnable task, in-process vs
 * DataParallelTrainer with 1 and 2 workers, reaches the same loss and Dice.
 *
 *   npx tsx --conditions=@purify/source tools/bench/parallel/accuracy.ts [--steps 150] [--norm none,batch] [--seeds 1,2,3]
 *
 * Task: 32×32 images of a noisy background with a random disc (class 1) and a
 * random square (class 2), intensities overlapping so the net must use shape
 * and context; labels are the shapes. 64 training images, batches of 8 drawn
 * by a seeded generator (the same batches for every variant), 32 held-out
 * images. U-Net depth 3, 8-16-32 channels; CE + Dice (the product's default
 * loss); Adam lr 3e-3. Reported: mean loss of the last 10 steps, held-out
 * mean foreground Dice (argmax), and the largest weight difference from the
 * in-process run. With norm 'none' the runs differ only by float summation
 * order; with 'batch' the workers use per-shard statistics (4 images each).
 */
import * as tf from '@tensorflow/tfjs';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import {
  buildUNet,
  createAdam,
  DataParallelTrainer,
  registerWasmTrainingKernels,
  Rng,
  selectBackend,
  trainStep,
  type HostBatch,
  type SegModel,
  type UNetConfig,
  type WeightSnapshot,
} from '@purify/models';

const S = 32;
const K = 3;

/** `count` images `[S, S]` with labels; seeded. */
function dataset(count: number, seed: number): { images: Float32Array; labels: Int32Array } {
  const rng = new Rng(seed);
  const images = new Float32Array(count * S * S);
  const labels = new Int32Array(count * S * S);
  const gauss = (): number => Math.sqrt(-2 * Math.log(rng.next() + 1e-12)) * Math.cos(2 * Math.PI * rng.next());
  for (let i = 0; i < count; i++) {
    const cx = 6 + rng.next() * 20;
    const cy = 6 + rng.next() * 20;
    const r = 3 + rng.next() * 4;
    const sx = 4 + rng.next() * 20;
    const sy = 4 + rng.next() * 20;
    const half = 2 + rng.next() * 3;
    const discI = 0.6 + 0.3 * rng.next();
    const squareI = 0.5 + 0.3 * rng.next();
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        const p = i * S * S + y * S + x;
        let label = 0;
        let v = 0.2;
        if (Math.abs(x - sx) <= half && Math.abs(y - sy) <= half) {
          label = 2;
          v = squareI;
        }
        if ((x - cx) ** 2 + (y - cy) ** 2 <= r * r) {
          label = 1;
          v = discI;
        }
        labels[p] = label;
        images[p] = v + 0.15 * gauss();
      }
    }
  }
  return { images, labels };
}

function batchAt(data: { images: Float32Array; labels: Int32Array }, indices: readonly number[]): HostBatch {
  const images = new Float32Array(indices.length * S * S);
  const labels = new Int32Array(indices.length * S * S);
  indices.forEach((src, dst) => {
    images.set(data.images.subarray(src * S * S, (src + 1) * S * S), dst * S * S);
    labels.set(data.labels.subarray(src * S * S, (src + 1) * S * S), dst * S * S);
  });
  return { shape: [indices.length, S, S, 1], images, labels };
}

/** Mean foreground Dice of argmax predictions over the held-out set. */
function heldOutDice(model: SegModel, data: { images: Float32Array; labels: Int32Array }, count: number): number {
  const pred = tf.tidy(() => tf.argMax(model.predict(tf.tensor4d(data.images, [count, S, S, 1])), -1).dataSync());
  let sum = 0;
  for (let k = 1; k < K; k++) {
    let inter = 0;
    let a = 0;
    let b = 0;
    for (let i = 0; i < pred.length; i++) {
      const p = pred[i] === k;
      const t = data.labels[i] === k;
      if (p && t) inter += 1;
      if (p) a += 1;
      if (t) b += 1;
    }
    sum += a + b === 0 ? 1 : (2 * inter) / (a + b);
  }
  return sum / (K - 1);
}

const maxDiff = (a: readonly WeightSnapshot[], b: readonly WeightSnapshot[]): number =>
  Math.max(...a.map((w, i) => Math.max(...w.values.map((v, j) => Math.abs(v - b[i]!.values[j]!)))));

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { steps: { type: 'string', default: '150' }, norm: { type: 'string', default: 'none,batch' }, seeds: { type: 'string', default: '1,2,3' } } });
  const steps = Number(values.steps);
  console.log(`# ${new Date().toISOString()} — ${cpus().length}× ${cpus()[0]?.model ?? '?'}, Node ${process.version}`);
  console.log(`# npx tsx --conditions=@purify/source tools/bench/parallel/accuracy.ts ${process.argv.slice(2).join(' ')}`);
  await selectBackend('wasm');
  registerWasmTrainingKernels();
  const train = dataset(64, 1000);
  const test = dataset(32, 2000);
  console.log(`${'norm'.padEnd(6)} ${'seed'.padEnd(5)} ${'variant'.padEnd(12)} ${'loss (last 10)'.padStart(14)} ${'held-out Dice'.padStart(13)} ${'max |Δw| vs in-process'.padStart(23)}  load`);
  for (const norm of values.norm.split(',') as UNetConfig['norm'][]) {
    for (const seed of values.seeds.split(',').map(Number)) {
      const config: UNetConfig = { depth: 3, baseWidth: 8, norm, dropout: 0, upsampling: 'transposed', inputChannels: 1, numClasses: K, seed };
      const batchRng = new Rng(seed * 7919);
      const order = Array.from({ length: steps }, () => Array.from({ length: 8 }, () => Math.floor(batchRng.next() * 64)));
      const eval_ = buildUNet(config);
      const initial = eval_.getWeights();
      let reference: WeightSnapshot[] | undefined;
      for (const variant of ['in-process', 'workers=1', 'workers=2']) {
        const losses: number[] = [];
        let final: WeightSnapshot[];
        if (variant === 'in-process') {
          const model = buildUNet(config);
          model.setWeights(initial);
          const optimizer = createAdam(model, { learningRate: 3e-3 });
          for (const idx of order) {
            const b = batchAt(train, idx);
            const images = tf.tensor4d(b.images, [8, S, S, 1]);
            const labels = tf.tensor3d(b.labels as Int32Array, [8, S, S], 'int32');
            losses.push(trainStep(model, { images, labels }, { optimizer }).loss);
            tf.dispose([images, labels]);
          }
          final = model.getWeights();
          optimizer.dispose();
          model.dispose();
          reference = final;
        } else {
          const trainer = await DataParallelTrainer.create({ config, weights: initial, workers: variant === 'workers=1' ? 1 : 2, optimizer: { learningRate: 3e-3 } });
          try {
            for (const idx of order) losses.push((await trainer.step(batchAt(train, idx))).loss);
            final = await trainer.getWeights();
          } finally {
            await trainer.dispose();
          }
        }
        eval_.setWeights(final);
        const dice = heldOutDice(eval_, test, 32);
        const last = losses.slice(-10).reduce((a, x) => a + x, 0) / 10;
        console.log(
          `${norm.padEnd(6)} ${String(seed).padEnd(5)} ${variant.padEnd(12)} ${last.toFixed(4).padStart(14)} ${dice.toFixed(4).padStart(13)} ${maxDiff(final, reference!).toExponential(2).padStart(23)}  ${loadavg()[0]!.toFixed(1)}`,
        );
      }
      eval_.dispose();
    }
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
