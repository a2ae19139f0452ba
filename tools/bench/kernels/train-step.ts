/**
 * Training-step time of the reference U-Net on TensorFlow.js-wasm, with the
 * shipped kernels and with ours, against PyTorch CPU on the same architecture,
 * shapes and thread count in the same run.
 *
 *   npx tsx --conditions=@purify/source tools/bench/kernels/train-step.ts [--shape 1x128x128 --shape 8x96x96] [--reps 10] [--kernels ours,wasm,shipped] [--torch-threads 1,2]
 *
 * Each (kernel set, shape) runs in a fresh model after 3 warm-up steps; the
 * table gives the median and minimum of `--reps` steps (the machine is
 * shared: medians over repetitions, and the minimum as the least-disturbed
 * figure). 'ours' = the library's kernels (native where the addon is built),
 * 'wasm' = the library's pure-wasm kernels, 'shipped' = tfjs-backend-wasm's own kernels plus our
 * Conv2DBackpropFilter (it ships none, so without it the net cannot train at
 * all). The PyTorch peer (torch_unet_step.py) runs with OMP_WAIT_POLICY=PASSIVE
 * and torch.set_num_threads(t); it is skipped when torch is not installed.
 * tfjs wasm runs on one thread in Node (tfjs disables wasm threads there).
 */
import { spawnSync } from 'node:child_process';
/** Debian's python3 (where python3-torch installs), whatever `python3` is on PATH; override with PURIFY_PEER_PYTHON. */
const PEER_PYTHON = process.env['PURIFY_PEER_PYTHON'] ?? '/usr/bin/python3';
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { KERNEL_SETS, median, parseShape, stepFixture, useWasm, type KernelSet } from './reference-unet';

interface Row {
  what: string;
  shape: string;
  medianMs: number;
  minMs: number;
}

function torchRows(shapes: readonly string[], threads: number, reps: number): Row[] | string {
  const script = join(__dirname, 'torch_unet_step.py');
  const args = [script, '--threads', String(threads), '--reps', String(reps), ...shapes.flatMap((s) => ['--shape', s])];
  const r = spawnSync(PEER_PYTHON, args, { encoding: 'utf8', env: { ...process.env, OMP_WAIT_POLICY: 'PASSIVE' } });
  if (r.status !== 0) return `PyTorch peer unavailable (exit ${String(r.status)}): ${r.stderr.trim().split('\n').pop() ?? ''}`;
  return r.stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { shape: number[]; median_ms: number; min_ms: number; torch: string })
    .map((j) => ({ what: `pytorch ${j.torch} cpu, ${threads} thread${threads > 1 ? 's' : ''}`, shape: j.shape.join('x'), medianMs: j.median_ms, minMs: j.min_ms }));
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      shape: { type: 'string', multiple: true, default: ['1x128x128', '8x96x96'] },
      reps: { type: 'string', default: '10' },
      kernels: { type: 'string', default: 'ours,shipped' },
      'torch-threads': { type: 'string', default: '1,2' },
    },
  });
  const reps = Number(values.reps);
  const shapes = values.shape;
  // 'shipped' runs first: once ours are registered this process cannot go back to the shipped kernels.
  const sets = (values.kernels.split(',') as KernelSet[]).sort((a, b) => (a === 'shipped' ? -1 : b === 'shipped' ? 1 : 0));
  const rows: Row[] = [];
  const notes: string[] = [];

  for (const kernels of sets) {
    if (!KERNEL_SETS.includes(kernels)) throw new Error(`--kernels entries must be among ${KERNEL_SETS.join(', ')}, got '${String(kernels)}'`);
    await useWasm(kernels);
    for (const s of shapes) {
      const [n, h, w] = parseShape(s);
      const fx = stepFixture(n, h, w);
      for (let i = 0; i < 3; i++) fx.step();
      const times: number[] = [];
      for (let i = 0; i < reps; i++) {
        const t0 = performance.now();
        fx.step();
        times.push(performance.now() - t0);
      }
      fx.dispose();
      rows.push({ what: `tfjs-wasm, ${kernels} kernels`, shape: s, medianMs: median(times), minMs: Math.min(...times) });
    }
  }
  for (const t of values['torch-threads'].split(',').filter((x) => x !== '').map(Number)) {
    const r = torchRows(shapes, t, reps);
    if (typeof r === 'string') {
      notes.push(r);
      break;
    }
    rows.push(...r);
  }

  console.log(`reference U-Net (116,821 params) training step, Adam, softmax cross-entropy; ${reps} steps after 3 warm-up`);
  console.log(`${'backend'.padEnd(36)} ${'batch'.padEnd(10)} ${'median ms'.padStart(10)} ${'min ms'.padStart(8)} ${'vs torch 1t'.padStart(12)}`);
  for (const r of rows) {
    const ref = rows.find((x) => x.shape === r.shape && x.what.startsWith('pytorch') && x.what.endsWith(' 1 thread'));
    const ratio = ref ? `${(r.medianMs / ref.medianMs).toFixed(2)}×` : '-';
    console.log(`${r.what.padEnd(36)} ${r.shape.padEnd(10)} ${r.medianMs.toFixed(1).padStart(10)} ${r.minMs.toFixed(1).padStart(8)} ${ratio.padStart(12)}`);
  }
  for (const n of notes) console.log(`note: ${n}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
