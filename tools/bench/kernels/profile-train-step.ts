/**
 * Per-kernel profile of one training step on the TensorFlow.js wasm backend:
 * the reference U-Net (`--model reference`, no normalisation, CE, the network
 * the PyTorch peer mirrors) or the library's U-Net as the product trains it
 * (`--model library`: `buildUNet` + `trainStep`, `--norm batch|instance|none`,
 * `--dice` for CE + soft Dice).
 *
 *   npx tsx --conditions=@purify/source tools/bench/kernels/profile-train-step.ts [--shape 8x96x96] [--kernels ours|wasm|shipped] [--model reference|library] [--norm batch] [--dice] [--steps 3]
 *
 * Runs `--steps` profiled steps after two warm-up steps and prints, per kernel
 * name, calls per step, median total ms per step, and share of the summed
 * kernel time. Kernel times come from `tf.profile` (wall time around each
 * kernel dispatch, wasm being synchronous); "step wall" is the unprofiled
 * median of the same number of steps. `--detail Conv2D,MaxPoolGrad` adds a
 * per-call listing (with input shapes) for the named kernels. `--kernels`:
 * 'ours' (default: the library's, native where the addon is built), 'wasm'
 * (the library's pure-wasm kernels), 'shipped' (tfjs-backend-wasm's own, plus
 * our Conv2DBackpropFilter, which it lacks).
 */
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs';
import { buildUNet, createAdam, trainStep, type UNetConfig } from '@purify/models';
import { KERNEL_SETS, median, parseShape, stepFixture, useWasm, type KernelSet } from './reference-unet';

/** One training step of the library's U-Net as the product runs it; returns the step and its disposer. */
function libraryStep(n: number, h: number, w: number, norm: UNetConfig['norm'], dice: boolean): { step(): void; dispose(): void } {
  const model = buildUNet({ depth: 3, baseWidth: 16, norm, dropout: 0, upsampling: 'transposed', inputChannels: 1, numClasses: 5, seed: 0 });
  const optimizer = createAdam(model, { learningRate: 1e-3 });
  const images = tf.randomNormal<tf.Rank.R4>([n, h, w, 1], 0, 1, 'float32', 1);
  const labels = tf.tidy(() => tf.randomUniform<tf.Rank.R3>([n, h, w], 0, 5, 'int32', 2));
  return {
    step: () => {
      trainStep(model, { images, labels }, { optimizer, loss: dice ? {} : { diceWeight: 0 }, validate: false });
    },
    dispose: () => {
      tf.dispose([images, labels]);
      optimizer.dispose();
      model.dispose();
    },
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      shape: { type: 'string', default: '8x96x96' },
      kernels: { type: 'string', default: 'ours' },
      steps: { type: 'string', default: '3' },
      detail: { type: 'string', default: '' },
      model: { type: 'string', default: 'reference' },
      norm: { type: 'string', default: 'batch' },
      dice: { type: 'boolean', default: false },
    },
  });
  const kernels = values.kernels as KernelSet;
  if (!KERNEL_SETS.includes(kernels)) throw new Error(`--kernels must be one of ${KERNEL_SETS.join(', ')}, got '${String(values.kernels)}'`);
  if (values.model !== 'reference' && values.model !== 'library') throw new Error(`--model must be 'reference' or 'library', got '${values.model}'`);
  if (!['batch', 'instance', 'none'].includes(values.norm)) throw new Error(`--norm must be batch, instance or none, got '${values.norm}'`);
  const [n, h, w] = parseShape(values.shape);
  const steps = Number(values.steps);
  await useWasm(kernels);
  const library = values.model === 'library';
  const fx = library ? libraryStep(n, h, w, values.norm as UNetConfig['norm'], values.dice) : stepFixture(n, h, w);
  fx.step();
  fx.step();

  const wall: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    fx.step();
    wall.push(performance.now() - t0);
  }

  /** kernel name -> per profiled step: [calls, ms]. */
  const perKernel = new Map<string, { calls: number[]; ms: number[] }>();
  /** With --detail K1,K2: "kernel (input shapes)" -> ms of each call, over all profiled steps. */
  const detailOf = new Set(values.detail.split(',').filter((s) => s !== ''));
  const perCall = new Map<string, number[]>();
  for (let i = 0; i < steps; i++) {
    const info = await tf.profile(() => {
      fx.step();
    });
    const seen = new Map<string, { calls: number; ms: number }>();
    for (const k of info.kernels) {
      const s = seen.get(k.name) ?? { calls: 0, ms: 0 };
      s.calls += 1;
      s.ms += k.kernelTimeMs as number;
      seen.set(k.name, s);
      if (detailOf.has(k.name)) {
        const key = `${k.name} ${k.inputShapes.map((sh) => `[${(sh ?? []).join(',')}]`).join(' ')}`;
        perCall.set(key, [...(perCall.get(key) ?? []), k.kernelTimeMs as number]);
      }
    }
    for (const [name, s] of seen) {
      const e = perKernel.get(name) ?? { calls: [], ms: [] };
      e.calls.push(s.calls);
      e.ms.push(s.ms);
      perKernel.set(name, e);
    }
  }
  fx.dispose();

  const rows = [...perKernel].map(([name, e]) => ({ name, calls: median(e.calls), ms: median(e.ms) })).sort((a, b) => b.ms - a.ms);
  const total = rows.reduce((s, r) => s + r.ms, 0);
  const what = library ? `library U-Net (norm ${values.norm}, ${values.dice ? 'CE + Dice' : 'CE'})` : 'reference U-Net';
  console.log(`${what} train step, wasm (${kernels} kernels), batch ${n}×${h}×${w}×1, ${steps} profiled steps (medians)`);
  console.log(`step wall (unprofiled, median): ${median(wall).toFixed(1)} ms; summed kernel time (profiled): ${total.toFixed(1)} ms`);
  console.log(`${'kernel'.padEnd(24)} ${'calls'.padStart(6)} ${'total ms'.padStart(10)} ${'%'.padStart(6)}`);
  for (const r of rows) {
    console.log(`${r.name.padEnd(24)} ${String(r.calls).padStart(6)} ${r.ms.toFixed(1).padStart(10)} ${((100 * r.ms) / total).toFixed(1).padStart(6)}`);
  }
  if (perCall.size > 0) {
    console.log('\nper call (median ms over profiled steps; repeated shapes are pooled):');
    for (const [key, ms] of [...perCall].sort((a, b) => median(b[1]) - median(a[1]))) console.log(`${median(ms).toFixed(1).padStart(8)}  ×${ms.length / steps}  ${key}`);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
