/**
 * Per-kernel profile of one training step of the library's U-Net (the model the
 * product trains: `buildUNet` + `trainStep`), on the TensorFlow.js wasm backend
 * with our kernels.
 *
 *   npx tsx --conditions=@purify/source tools/bench/kernels/profile-lib-step.ts [--shape 4x64x64] [--norm batch|none|instance] [--dice] [--steps 5] [--native true|false] [--detail Multiply,Mean]
 *
 * Prints the unprofiled median step wall time, then per kernel name: calls per
 * step, median ms per step and share of the summed kernel time (`tf.profile`).
 */
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { buildUNet, createAdam, registerWasmTrainingKernels, trainStep, type UNetConfig } from '@purify/models';
import { median, parseShape } from './reference-unet';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      shape: { type: 'string', default: '4x64x64' },
      norm: { type: 'string', default: 'batch' },
      dice: { type: 'boolean', default: false },
      steps: { type: 'string', default: '5' },
      native: { type: 'string', default: 'true' },
      detail: { type: 'string', default: '' },
    },
  });
  const [n, h, w] = parseShape(values.shape);
  const steps = Number(values.steps);
  if (!['batch', 'none', 'instance'].includes(values.norm)) throw new Error(`--norm must be batch, none or instance, got '${values.norm}'`);
  await tf.setBackend('wasm');
  await tf.ready();
  const status = registerWasmTrainingKernels({ native: values.native !== 'false' });
  const config: UNetConfig = { depth: 3, baseWidth: 16, norm: values.norm as UNetConfig['norm'], dropout: 0, upsampling: 'transposed', inputChannels: 1, numClasses: 5, seed: 0 };
  const model = buildUNet(config);
  const optimizer = createAdam(model, { learningRate: 1e-3 });
  const images = tf.randomNormal<tf.Rank.R4>([n, h, w, 1], 0, 1, 'float32', 1);
  const labels = tf.tidy(() => tf.randomUniform<tf.Rank.R3>([n, h, w], 0, 5, 'int32', 2));
  const step = (): void => {
    trainStep(model, { images, labels }, { optimizer, loss: values.dice ? {} : { diceWeight: 0 }, validate: false });
  };
  step();
  step();
  const wall: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    step();
    wall.push(performance.now() - t0);
  }
  const perKernel = new Map<string, { calls: number[]; ms: number[] }>();
  const detailOf = new Set(values.detail.split(',').filter((k) => k !== ''));
  const perCall = new Map<string, number[]>();
  for (let i = 0; i < steps; i++) {
    const info = await tf.profile(() => {
      step();
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
  const rows = [...perKernel].map(([name, e]) => ({ name, calls: median(e.calls), ms: median(e.ms) })).sort((a, b) => b.ms - a.ms);
  const total = rows.reduce((s, r) => s + r.ms, 0);
  console.log(`library U-Net (norm ${values.norm}${values.dice ? ', CE + Dice' : ', CE'}) train step, wasm, native kernels ${status.loaded ? 'on' : `off (${status.reason ?? ''})`}, batch ${n}×${h}×${w}×1, ${steps} profiled steps (medians)`);
  console.log(`step wall (unprofiled, median): ${median(wall).toFixed(1)} ms; summed kernel time (profiled): ${total.toFixed(1)} ms`);
  console.log('kernel                    calls   total ms      %');
  for (const r of rows) console.log(`${r.name.padEnd(24)} ${String(r.calls).padStart(6)} ${r.ms.toFixed(1).padStart(10)} ${((100 * r.ms) / total).toFixed(1).padStart(6)}`);
  if (perCall.size > 0) {
    console.log('\nper call (ms summed over the profiled steps / steps; input shapes):');
    const calls = [...perCall].map(([key, ms]) => ({ key, ms: ms.reduce((a, b) => a + b, 0) / steps, count: ms.length / steps })).sort((a, b) => b.ms - a.ms);
    for (const c of calls.slice(0, 40)) console.log(`${c.ms.toFixed(2).padStart(8)}  ×${c.count}  ${c.key}`);
  }
  tf.dispose([images, labels]);
  optimizer.dispose();
  model.dispose();
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
