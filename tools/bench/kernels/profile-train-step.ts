/**
 * Per-kernel profile of one training step of the reference U-Net on the
 * TensorFlow.js wasm backend.
 *
 *   npx tsx --conditions=@purify/source tools/bench/kernels/profile-train-step.ts [--shape 8x96x96] [--kernels ours|shipped] [--steps 3]
 *
 * Runs `--steps` profiled steps after two warm-up steps and prints, per kernel
 * name, calls per step, median total ms per step, and share of the summed
 * kernel time. Kernel times come from `tf.profile` (wall time around each
 * kernel dispatch, wasm being synchronous); "step wall" is the unprofiled
 * median of the same number of steps. `--detail Conv2D,MaxPoolGrad` adds a
 * per-call listing (with input shapes) for the named kernels. 'shipped' uses tfjs-backend-wasm's own
 * kernels (plus our Conv2DBackpropFilter, which it lacks).
 */
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs';
import { median, parseShape, stepFixture, useWasm, type KernelSet } from './reference-unet';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      shape: { type: 'string', default: '8x96x96' },
      kernels: { type: 'string', default: 'ours' },
      steps: { type: 'string', default: '3' },
      detail: { type: 'string', default: '' },
    },
  });
  const kernels = values.kernels as KernelSet;
  if (kernels !== 'ours' && kernels !== 'shipped') throw new Error(`--kernels must be 'ours' or 'shipped', got '${String(values.kernels)}'`);
  const [n, h, w] = parseShape(values.shape);
  const steps = Number(values.steps);
  await useWasm(kernels);
  const fx = stepFixture(n, h, w);
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
        const key = `${k.name} ${k.inputShapes.map((sh) => `[${sh.join(',')}]`).join(' ')}`;
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
  console.log(`reference U-Net train step, wasm (${kernels} kernels), batch ${n}×${h}×${w}×1, ${steps} profiled steps (medians)`);
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
