/**
 * Inference throughput (slices/s) of the reference U-Net: the segmenter path
 * (onnxruntime-node in-process, @purify/inference) against TensorFlow.js-wasm
 * on the same weights and, when Debian's python3-torch is installed, PyTorch
 * CPU on the same architecture — same slices, batch and thread count.
 *
 *   npx tsx --conditions=@purify/source tools/bench/segmenter-throughput.ts [--slices 64] [--size 128] [--batch 8] [--threads 1] [--reps 5]
 *
 * Rows:
 *   - ort segmentVolume: the whole segmenter computation on a [slices, size, size]
 *     int16 CT volume at the model's tile size (normalisation, batching, blending,
 *     argmax; no resampling), what a Segment call costs minus the network transfer;
 *   - ort network: LoadedModel.predictBatch only, batches of `--batch` slices;
 *   - tfjs-wasm network: SegModel.predict on the same weights (tfjs-wasm is
 *     single-threaded in Node, whatever --threads says);
 *   - torch network: tools/bench/segmenter_throughput_torch.py (OMP_WAIT_POLICY=PASSIVE,
 *     torch.set_num_threads(--threads)), skipped when torch is missing.
 * Each row: 2 warm-up runs, then the median and the best of `--reps` runs over all
 * slices. The machine is shared: read medians, and the best run as the least
 * disturbed figure.
 */
import { spawnSync } from 'node:child_process';
/** Debian's python3 (where python3-torch installs), whatever `python3` is on PATH; override with PURIFY_PEER_PYTHON. */
const PEER_PYTHON = process.env['PURIFY_PEER_PYTHON'] ?? '/usr/bin/python3';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { ModelRegistry } from '@purify/artifacts';
import { makeVolume } from '@purify/imaging';
import { LoadedModel, providerAvailability, segmentVolume, type SegmentTimings } from '@purify/inference';
import { buildUNet, exportOnnx, ONNX_INPUT_NAME, ONNX_OPSET, ONNX_OUTPUT_NAME, REFERENCE_UNET, selectBackend } from '@purify/models';

const { values } = parseArgs({
  options: {
    slices: { type: 'string', default: '64' },
    size: { type: 'string', default: '128' },
    batch: { type: 'string', default: '8' },
    threads: { type: 'string', default: '1' },
    reps: { type: 'string', default: '5' },
  },
});
const int = (name: string, v: string | undefined): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${v}`);
  return n;
};
const slices = int('slices', values.slices);
const size = int('size', values.size);
const batch = int('batch', values.batch);
const threads = int('threads', values.threads);
const reps = int('reps', values.reps);
const batches = Math.ceil(slices / batch);

interface Row {
  what: string;
  medianMs: number;
  minMs: number;
  note?: string;
}

async function time(run: () => Promise<void>): Promise<{ medianMs: number; minMs: number }> {
  for (let i = 0; i < 2; i++) await run();
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await run();
    times.push(performance.now() - t0);
  }
  const sorted = [...times].sort((a, b) => a - b);
  return { medianMs: sorted[Math.floor(sorted.length / 2)] as number, minMs: sorted[0] as number };
}

function torchRow(): Row | string {
  const probe = spawnSync(PEER_PYTHON, ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.status !== 0) return 'python3-torch is not installed (${PEER_PYTHON} -c "import torch" failed)';
  const script = join(__dirname, 'segmenter_throughput_torch.py');
  const res = spawnSync(PEER_PYTHON, [script, '--slices', String(slices), '--size', String(size), '--batch', String(batch), '--threads', String(threads), '--reps', String(reps)], {
    encoding: 'utf8',
    env: { ...process.env, OMP_WAIT_POLICY: 'PASSIVE' },
  });
  if (res.status !== 0) return `torch peer failed: ${res.stderr.trim().split('\n').at(-1) ?? ''}`;
  const out = JSON.parse(res.stdout.trim().split('\n').at(-1) ?? '{}') as { median_ms: number; min_ms: number; torch: string };
  return { what: `torch ${out.torch} network`, medianMs: out.median_ms, minMs: out.min_ms };
}

async function main(): Promise<void> {
  const choice = await selectBackend('wasm');
  tf.env().set('IS_TEST', true);
  const root = mkdtempSync(join(tmpdir(), 'bench-segmenter-'));
  const rows: Row[] = [];
  const skipped: string[] = [];
  try {
    // The reference U-Net (BatchNorm, folded at export); the same weights go to ONNX and stay in tfjs.
    const model = buildUNet(REFERENCE_UNET);
    const numParams = model.numParams;
    const registry = new ModelRegistry(root);
    const version = registry.publish('bench', { onnx: exportOnnx(model) }, {
      classes: ['background', 'liver', 'spleen', 'kidney_r', 'kidney_l'].map((name, index) => ({ index, name })),
      inputChannels: 1,
      inputSizeYx: [size, size],
      normalization: { kind: 'ct-window', lowHu: -160, highHu: 240 },
      onnx: { input: ONNX_INPUT_NAME, output: ONNX_OUTPUT_NAME, opset: ONNX_OPSET },
      provenance: { bench: 'segmenter-throughput' },
      metrics: [],
    });
    const ort = await LoadedModel.load(version, { intraOpThreads: threads, interOpThreads: 1, graphOptimization: 'all', executionProvider: 'auto' });
    const volume = makeVolume(Int16Array.from({ length: slices * size * size }, (_, i) => Math.round(300 * Math.sin(i * 0.001) + 80 * Math.cos(i * 0.37))), [slices, size, size]);
    const input = Float32Array.from({ length: batch * size * size }, (_, i) => (Math.sin(i * 0.01) + 1) / 2);

    // Parity on one batch (sanity: the two engines run the same network).
    const ortOut = await ort.predictBatch({ data: input, shape: [batch, 1, size, size] });
    const tfOut = tf.tidy(() => model.predict(tf.tensor4d(input, [batch, size, size, 1])).transpose([0, 3, 1, 2]).dataSync());
    let maxDiff = 0;
    for (let i = 0; i < tfOut.length; i++) maxDiff = Math.max(maxDiff, Math.abs((tfOut[i] as number) - (ortOut.data[i] as number)));

    let phases: SegmentTimings | undefined;
    rows.push({ what: `ort ${ort.executionProvider} segmentVolume`, ...(await time(async () => void (phases = (await segmentVolume(ort, volume, { batchSize: batch })).timings))) });
    rows.push({
      what: `ort ${ort.executionProvider} network`,
      ...(await time(async () => {
        for (let b = 0; b < batches; b++) await ort.predictBatch({ data: input, shape: [batch, 1, size, size] });
      })),
    });
    const x = tf.tensor4d(input, [batch, size, size, 1]);
    rows.push({
      what: `tfjs-${choice.backend} network`,
      ...(await time(async () => {
        for (let b = 0; b < batches; b++) {
          const y = model.predict(x);
          await y.data();
          y.dispose();
        }
      })),
      note: 'single-threaded',
    });
    x.dispose();
    await ort.dispose();
    model.dispose();
    const torch = torchRow();
    if (typeof torch === 'string') skipped.push(`torch: ${torch}`);
    else rows.push(torch);

    const n = batches * batch;
    const best = Math.min(...rows.map((r) => r.medianMs));
    const lines = [
      `# segmenter inference throughput — ${new Date().toISOString()}`,
      `command: npx tsx --conditions=@purify/source tools/bench/segmenter-throughput.ts --slices ${slices} --size ${size} --batch ${batch} --threads ${threads} --reps ${reps}`,
      `machine: ${cpus()[0]?.model ?? 'unknown'} (${cpus().length} logical cpus), node ${process.version}, onnxruntime-node ${providerAvailability().onnxruntimeVersion}, tfjs ${tf.version.tfjs}`,
      `model: reference U-Net (${numParams} params, BatchNorm folded in ONNX), ${n} slices of ${size}×${size}, batch ${batch}, ${threads} thread(s); ORT vs tfjs max |Δprob| ${maxDiff.toExponential(1)}`,
      '',
      '| engine | median ms | slices/s (median) | slices/s (best run) | × fastest |',
      '|---|---|---|---|---|',
      ...rows.map((r) => `| ${r.what}${r.note ? ` (${r.note})` : ''} | ${r.medianMs.toFixed(1)} | ${(n / (r.medianMs / 1000)).toFixed(1)} | ${(n / (r.minMs / 1000)).toFixed(1)} | ${(r.medianMs / best).toFixed(2)} |`),
      ...skipped.map((s) => `skipped — ${s}`),
      '',
      phases
        ? `segmentVolume phases (last run, ms): ${(['normalizeMs', 'resampleMs', 'inferenceMs', 'blendMs', 'resampleBackMs', 'argmaxMs', 'totalMs'] as const).map((k) => `${k.replace('Ms', '')} ${phases![k].toFixed(1)}`).join(', ')}`
        : '',
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
