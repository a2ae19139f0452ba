/**
 * Training-step time of the U-Net trained in-process vs data-parallel over
 * worker threads (DataParallelTrainer), and what a second core buys when the
 * main thread has other work (issue #10 item 1).
 *
 *   npx tsx --conditions=@purify/source tools/bench/parallel/train-step.ts [--shape 8x96x96 --shape 1x128x128] [--reps 7] [--rounds 3] [--norm none|batch] [--dice] [--torch-threads 1,2] [--no-overlap]
 *
 * Network: the reference U-Net (3 levels, 16-32-64, transposed-conv
 * upsampling, 5 classes) without normalisation by default, i.e. the
 * 116,821-parameter net of tools/bench/kernels (and of the PyTorch peer
 * torch_unet_step.py); mean softmax cross-entropy (`--dice` adds soft Dice),
 * Adam lr 1e-3, random images and labels.
 *
 * Variants (each 3 warm-up steps, then `--reps` timed steps, repeated in
 * `--rounds` interleaved rounds so that load changes hit every variant):
 *   in-process          trainStep on this thread (tfjs-wasm + our kernels)
 *   workers=1           DataParallelTrainer, 1 worker (measures the messaging cost)
 *   workers=2           2 workers, every replica applies Adam ('replicated', the default)
 *   workers=2 broadcast 2 workers, worker 0 applies Adam and the other copies its weights
 *   overlap: 1 worker training while this thread runs teacher inference (model.predict of the same batch) in a loop;
 *            and 2 workers with the same inference load (3 busy threads on 2 cores)
 * Prints medians (and minimum), the per-worker breakdown, os.loadavg() next to
 * every figure, and the speed-up against in-process. The machine is shared:
 * compare rows of one run.
 */
import * as tf from '@tensorflow/tfjs';
/** Debian's python3 (where python3-torch installs), whatever `python3` is on PATH; override with PURIFY_PEER_PYTHON. */
const PEER_PYTHON = process.env['PURIFY_PEER_PYTHON'] ?? '/usr/bin/python3';
import { spawnSync } from 'node:child_process';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import {
  buildUNet,
  createAdam,
  DataParallelTrainer,
  registerWasmTrainingKernels,
  selectBackend,
  trainStep,
  type HostBatch,
  type ParallelStepResult,
  type SegModel,
  type UNetConfig,
  type WorkerTimings,
} from '@purify/models';

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const load = (): string => loadavg()[0]!.toFixed(1);

function parseShape(s: string): [number, number, number] {
  const m = /^(\d+)x(\d+)x(\d+)$/.exec(s);
  if (m == null) throw new Error(`--shape must look like NxHxW (e.g. 8x96x96), got '${s}'`);
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

function randomBatch(n: number, h: number, w: number, classes: number): HostBatch {
  let s = 12345;
  const u = (): number => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s / 2 ** 32;
  };
  return {
    shape: [n, h, w, 1],
    images: Float32Array.from({ length: n * h * w }, () => 2 * u() - 1),
    labels: Int32Array.from({ length: n * h * w }, () => Math.floor(u() * classes)),
  };
}

interface Sample {
  ms: number;
  load: string;
  timings?: readonly WorkerTimings[];
  wallMs?: number;
  inferences?: number;
}

/** A variant: set up once, then `run()` times one step. */
interface Variant {
  readonly name: string;
  run(): Promise<Sample>;
  dispose(): Promise<void>;
}

async function inProcess(config: UNetConfig, batch: HostBatch, dice: boolean): Promise<Variant> {
  const model = buildUNet(config);
  const optimizer = createAdam(model, { learningRate: 1e-3 });
  const [n, h, w, c] = batch.shape;
  const images = tf.tensor4d(batch.images, [n, h, w, c]);
  const labels = tf.tensor3d(batch.labels as Int32Array, [n, h, w], 'int32');
  return {
    name: 'in-process (main thread)',
    async run() {
      const t0 = performance.now();
      trainStep(model, { images, labels }, { optimizer, loss: dice ? {} : { diceWeight: 0 }, validate: false });
      return { ms: performance.now() - t0, load: load() };
    },
    async dispose() {
      tf.dispose([images, labels]);
      optimizer.dispose();
      model.dispose();
    },
  };
}

/**
 * Data-parallel variant; with `inference`, this thread runs teacher inference
 * (`predict` of the batch) back to back while the step runs, and the sample
 * records how many inferences finished.
 */
async function parallel(config: UNetConfig, batch: HostBatch, dice: boolean, workers: number, mode: 'replicated' | 'broadcast', teacher?: SegModel): Promise<Variant> {
  const trainer = await DataParallelTrainer.create({ config, workers, optimizer: { learningRate: 1e-3 }, loss: dice ? {} : { diceWeight: 0 }, updateMode: mode });
  const [n, h, w, c] = batch.shape;
  const images = teacher ? tf.tensor4d(batch.images, [n, h, w, c]) : undefined;
  const name = `workers=${workers}${mode === 'broadcast' ? ' broadcast' : ''}${teacher ? ' + main-thread inference' : ''}`;
  return {
    name,
    async run() {
      const t0 = performance.now();
      let r: ParallelStepResult | undefined;
      let inferences = 0;
      const step = trainer.step(batch).then((x) => (r = x));
      if (teacher && images) {
        // Inference in slices of the event loop, so the step's reply is seen as soon as it arrives.
        while (r === undefined) {
          tf.dispose(teacher.predict(images));
          inferences += 1;
          await new Promise((resolve) => setImmediate(resolve));
        }
      }
      await step;
      return { ms: performance.now() - t0, load: load(), timings: r!.timings, wallMs: r!.wallMs, inferences };
    },
    async dispose() {
      if (images) images.dispose();
      await trainer.dispose();
    },
  };
}

function torchRows(shapes: readonly string[], threads: number, reps: number): { shape: string; medianMs: number; minMs: number; version: string }[] | string {
  const script = join(__dirname, '..', 'kernels', 'torch_unet_step.py');
  const args = [script, '--threads', String(threads), '--reps', String(reps), ...shapes.flatMap((s) => ['--shape', s])];
  const r = spawnSync(PEER_PYTHON, args, { encoding: 'utf8', env: { ...process.env, OMP_WAIT_POLICY: 'PASSIVE' } });
  if (r.status !== 0) return `PyTorch peer unavailable (exit ${String(r.status)}): ${r.stderr.trim().split('\n').pop() ?? ''}`;
  return r.stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { shape: number[]; median_ms: number; min_ms: number; torch: string })
    .map((j) => ({ shape: j.shape.join('x'), medianMs: j.median_ms, minMs: j.min_ms, version: j.torch }));
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      shape: { type: 'string', multiple: true, default: ['8x96x96', '1x128x128'] },
      reps: { type: 'string', default: '7' },
      rounds: { type: 'string', default: '3' },
      norm: { type: 'string', default: 'none' },
      dice: { type: 'boolean', default: false },
      'no-overlap': { type: 'boolean', default: false },
      'torch-threads': { type: 'string', default: '1,2' },
    },
  });
  const reps = Number(values.reps);
  const rounds = Number(values.rounds);
  const norm = values.norm as UNetConfig['norm'];
  const dice = values.dice;
  console.log(`# ${new Date().toISOString()} — ${cpus().length}× ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}`);
  console.log(`# npx tsx --conditions=@purify/source tools/bench/parallel/train-step.ts ${process.argv.slice(2).join(' ')}`);
  await selectBackend('wasm');
  registerWasmTrainingKernels();
  const config: UNetConfig = { depth: 3, baseWidth: 16, norm, dropout: 0, upsampling: 'transposed', inputChannels: 1, numClasses: 5, seed: 0 };
  const probe = buildUNet(config);
  console.log(`# U-Net 3 levels 16-32-64, norm ${norm}, ${probe.numParams} trainable parameters; loss ${dice ? 'CE + Dice' : 'mean CE'}; Adam; tfjs-wasm + our kernels in every thread`);
  probe.dispose();

  for (const s of values.shape) {
    const [n, h, w] = parseShape(s);
    const batch = randomBatch(n, h, w, config.numClasses);
    const teacher = buildUNet(config);
    const makers: (() => Promise<Variant>)[] = [
      () => inProcess(config, batch, dice),
      () => parallel(config, batch, dice, 1, 'replicated'),
      () => parallel(config, batch, dice, 2, 'replicated'),
      () => parallel(config, batch, dice, 2, 'broadcast'),
    ];
    if (!values['no-overlap']) {
      makers.push(() => parallel(config, batch, dice, 1, 'replicated', teacher));
      makers.push(() => parallel(config, batch, dice, 2, 'replicated', teacher));
    }
    // Teacher inference alone, for the overlap rows' reference.
    const images = tf.tensor4d(batch.images, [n, h, w, 1]);
    for (let i = 0; i < 2; i++) tf.dispose(teacher.predict(images));
    const inferMs: number[] = [];
    const samples = new Map<string, Sample[]>();
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < 3; i++) {
        const t0 = performance.now();
        tf.dispose(teacher.predict(images));
        inferMs.push(performance.now() - t0);
      }
      for (const make of makers) {
        const v = await make();
        for (let i = 0; i < 3; i++) await v.run();
        const list = samples.get(v.name) ?? [];
        for (let i = 0; i < reps; i++) list.push(await v.run());
        samples.set(v.name, list);
        await v.dispose();
      }
    }
    images.dispose();
    teacher.dispose();

    const base = median(samples.get('in-process (main thread)')!.map((x) => x.ms));
    console.log(`\n## ${s}  (${rounds}×${reps} steps per variant; teacher inference alone: median ${median(inferMs).toFixed(1)} ms)`);
    console.log(`${'variant'.padEnd(40)} ${'median ms'.padStart(9)} ${'min'.padStart(7)} ${'speed-up'.padStart(8)}  ${'load'.padStart(9)}  per-worker medians ms: compute / wait / reduce / update / input; messaging`);
    for (const [name, list] of samples) {
      const ms = median(list.map((x) => x.ms));
      const loads = list.map((x) => Number(x.load));
      let detail = '';
      if (list[0]!.timings) {
        const workers = list[0]!.timings.length;
        const parts = Array.from({ length: workers }, (_, k) => {
          const m = (f: keyof WorkerTimings): string => median(list.map((x) => x.timings![k]![f])).toFixed(1);
          return `w${k}: ${m('computeMs')} / ${m('waitMs')} / ${m('reduceMs')} / ${m('updateMs')} / ${m('inputMs')}`;
        });
        const messaging = median(list.map((x) => x.wallMs! - Math.max(...x.timings!.map((t) => t.inputMs + t.computeMs + t.waitMs + t.reduceMs + t.updateMs))));
        detail = `${parts.join('; ')}; ${messaging.toFixed(1)}`;
        if (list[0]!.inferences !== undefined && name.includes('inference')) {
          const perStep = median(list.map((x) => x.inferences!));
          detail += `; ${perStep} inferences per step (${((1000 * list.reduce((a, x) => a + x.inferences!, 0)) / list.reduce((a, x) => a + x.ms, 0)).toFixed(2)}/s)`;
        }
      }
      console.log(
        `${name.padEnd(40)} ${ms.toFixed(1).padStart(9)} ${Math.min(...list.map((x) => x.ms)).toFixed(1).padStart(7)} ${`${(base / ms).toFixed(2)}×`.padStart(8)}  ${`${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)}`.padStart(9)}  ${detail}`,
      );
    }
  }

  const torchShapes = values.shape;
  for (const t of values['torch-threads'].split(',').filter((x) => x !== '').map(Number)) {
    const r = torchRows(torchShapes, t, reps * rounds);
    if (typeof r === 'string') {
      console.log(`\nnote: ${r}`);
      break;
    }
    for (const row of r) console.log(`pytorch ${row.version} cpu, ${t} thread(s), ${row.shape}: median ${row.medianMs.toFixed(1)} ms (min ${row.minMs.toFixed(1)}), load ${load()}`);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
