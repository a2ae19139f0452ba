/**
 * Accuracy and speed of data-parallel training on the real training path
 * (issue #10 item 1): `trainSourceModel` (→ `trainSegmentation`) on the
 * built-in CT phantoms, the same seed and number of steps, once per
 * `--workers` value (1 = in-process on this thread, 2 = two worker threads).
 *
 *   node tools/cli/bin/purify.js data generate --out /tmp/bench10-data --domains ct --seed 1
 *   npx tsx --conditions=@purify/source tools/bench/parallel/train-source.ts --data /tmp/bench10-data/ct [--steps 150] [--size 96] [--tile 96]
 *     [--batch 8] [--workers 1,2] [--seed 1] [--lr 3e-3] [--augment strong] [--val-every N] [--target-dice 0.9] [--speed-rounds 3] [--speed-steps 20] [--accuracy false]
 *
 * Reported per run: median and mean wall time of a training step as
 * `trainSegmentation` measures it (`StepEvent.ms`: batch drawing +
 * augmentation + the update; the first 3 steps — worker start-up and
 * warm-up — left out of the median), the time spent validating, the total wall
 * time of `trainSourceModel`, the loss of the last 10 steps, the validation
 * Dice at the last step, and the held-out test Dice (the 8 imagesTs cases with
 * labelsTs; volume Dice per organ, mean over cases then organs, as `validate`)
 * of the published model (the best validation weights), and the time to the
 * first validation at or above `--target-dice` (wall seconds since the start of
 * `trainSourceModel`, including loading and the validations before it; "not
 * reached" otherwise). Runs are sequential:
 * compare them under similar load (`os.loadavg()` is printed).
 *
 * Then (`--speed-rounds R`, default 3; 0 skips) the step time alone, fairer
 * under changing load: R interleaved rounds of short `trainSegmentation` runs
 * (`--speed-steps S`, default 20, no validation, same data, batches and
 * model) with each `--workers` value; per variant the median step time over
 * every round's steps after the first 3 of each run, and the CPU time per
 * step of all the process's threads (`process.cpuUsage`): CPU / wall near 2
 * means both cores worked for this process, near 1 that it got one core's
 * worth (a loaded machine; the kernel's autogroup scheduler shares the CPU per
 * session).
 * (`--accuracy false` runs only this part.)
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openDataset, readNifti } from '@purify/imaging';
import {
  datasetClasses,
  defaultNormalization,
  initTrainingBackend,
  labelledCases,
  loadSliceVolume,
  modelFromWeights,
  slicesOf,
  spacingForSize,
  trainSegmentation,
  trainSourceModel,
  validate,
  type AugmentLevel,
  type SliceVolume,
} from '@purify/training';

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      data: { type: 'string' },
      steps: { type: 'string', default: '150' },
      size: { type: 'string', default: '96' },
      tile: { type: 'string' },
      batch: { type: 'string', default: '8' },
      workers: { type: 'string', default: '1,2' },
      seed: { type: 'string', default: '1' },
      lr: { type: 'string', default: '3e-3' },
      augment: { type: 'string', default: 'strong' },
      'val-every': { type: 'string' },
      'target-dice': { type: 'string', default: '0.9' },
      accuracy: { type: 'string', default: 'true' },
      'speed-rounds': { type: 'string', default: '3' },
      'speed-steps': { type: 'string', default: '20' },
    },
  });
  if (values.data === undefined) throw new Error('--data <CT dataset folder> is required (make one with: node tools/cli/bin/purify.js data generate --out /tmp/bench10-data --domains ct)');
  const steps = Number(values.steps);
  const size = Number(values.size);
  const tile = values.tile === undefined ? size : Number(values.tile);
  const batchSize = Number(values.batch);
  const seed = Number(values.seed);
  const learningRate = Number(values.lr);
  const valEvery = values['val-every'] === undefined ? Math.max(25, Math.floor(steps / 6)) : Number(values['val-every']);
  const workerList = values.workers.split(',').map(Number);
  const targetDice = Number(values['target-dice']);

  console.log(`# ${new Date().toISOString()} — ${cpus().length}× ${cpus()[0]?.model ?? '?'}, Node ${process.version}`);
  console.log(`# npx tsx --conditions=@purify/source tools/bench/parallel/train-source.ts ${process.argv.slice(2).join(' ')}`);
  console.log(`# ${values.data}: ${steps} steps, batch ${batchSize}×${tile}×${tile} (working size ${size}), lr ${learningRate}, augment ${values.augment}, seed ${seed}, validate every ${valEvery}; reference U-Net (BatchNorm)`);

  const root = mkdtempSync(join(tmpdir(), 'purify-bench-train-source-'));
  const rows: string[] = [];
  try {
    // Held-out test cases, on the working grid of the trained models (read after the first run: it fixes the spacing).
    let tests: SliceVolume[] | undefined;
    for (const workers of values.accuracy === 'false' ? [] : workerList) {
      const stepMs: number[] = [];
      let valMs = 0;
      const losses: number[] = [];
      const load0 = loadavg()[0]!;
      let reached: { step: number; s: number } | undefined;
      const t0 = performance.now();
      const r = await trainSourceModel(
        {
          dataPath: values.data,
          artifactsDir: join(root, `w${workers}`),
          name: `source-w${workers}`,
          size,
          tile,
          steps,
          batchSize,
          learningRate,
          seed,
          valEvery,
          augment: values.augment,
          backend: 'wasm',
          workers,
        },
        {
          onStep: (e) => {
            stepMs.push(e.ms);
            losses.push(e.loss);
            if (e.step % 25 === 0) console.log(`  workers=${workers} step ${e.step}: loss ${e.loss.toFixed(4)}, ${e.ms.toFixed(0)} ms`);
          },
          onValidation: (e) => {
            valMs += e.ms;
            if (reached === undefined && e.meanDice >= targetDice) reached = { step: e.step, s: (performance.now() - t0) / 1000 };
            console.log(`  workers=${workers} step ${e.step}: val Dice ${e.meanDice.toFixed(4)} (${e.ms.toFixed(0)} ms)`);
          },
        },
      );
      const load1 = loadavg()[0]!;
      if (r.version === undefined) throw new Error('nothing published');
      if (tests === undefined) {
        const dataset = openDataset(values.data);
        const classes = datasetClasses(dataset);
        tests = [];
        for (const c of dataset.cases.filter((x) => x.split === 'test')) {
          tests.push(await loadSliceVolume(c, { normalization: r.normalization, spacingXyMm: r.spacingXyMm, numClasses: classes.length, requireLabel: true, keepOriginalLabel: true }));
        }
      }
      const model = modelFromWeights(readFileSync(join(r.version.dir, 'weights.bin')));
      const test = validate(model, tests);
      model.dispose();
      const last = r.training.validations[r.training.validations.length - 1];
      const row = [
        `${workers === 1 ? '1 (in-process)' : `${workers} workers`}`,
        median(stepMs.slice(3)).toFixed(0),
        mean(stepMs).toFixed(0),
        (valMs / 1000).toFixed(1),
        (r.wallMs / 1000).toFixed(1),
        mean(losses.slice(-10)).toFixed(4),
        (last?.meanDice ?? NaN).toFixed(4),
        `${(r.training.best?.meanDice ?? NaN).toFixed(4)} @${r.training.bestStep}`,
        test.meanDice.toFixed(4),
        [...test.dicePerClass.values()].map((d) => d.toFixed(3)).join(' / '),
        reached === undefined ? 'not reached' : `${reached.s.toFixed(0)} s (step ${reached.step})`,
        `${load0.toFixed(1)}–${load1.toFixed(1)}`,
      ];
      rows.push(`| ${row.join(' | ')} |`);
      console.log(`  done: ${rows[rows.length - 1]}`);
    }
    if (rows.length > 0) console.log('');
    if (rows.length > 0) console.log(`| workers | step ms (median) | step ms (mean) | validation s | wall s | loss (last 10) | val Dice (last step) | best val Dice | test Dice (published) | test Dice per organ (liver / spleen / r. kidney / l. kidney) | to val Dice ≥ ${targetDice} | load |`);
    if (rows.length > 0) console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
    for (const row of rows) console.log(row);
    await speed(values.data, { size, tile, batchSize, seed, learningRate, augment: values.augment as AugmentLevel, workerList, rounds: Number(values['speed-rounds']), steps: Number(values['speed-steps']) });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/** Interleaved short trainSegmentation runs per workers value (see the module comment). */
async function speed(
  data: string,
  o: { size: number; tile: number; batchSize: number; seed: number; learningRate: number; augment: AugmentLevel; workerList: readonly number[]; rounds: number; steps: number },
): Promise<void> {
  if (o.rounds <= 0) return;
  const backend = await initTrainingBackend('wasm');
  if (backend.backend !== 'wasm') throw new Error(`wasm backend unavailable (${backend.notes.join('; ')})`);
  const dataset = openDataset(data);
  const classes = datasetClasses(dataset);
  const cases = labelledCases(dataset);
  const spacingXyMm = spacingForSize(await readNifti(cases[0]!.imagePaths[0]!), [o.size, o.size]);
  const volumes: SliceVolume[] = [];
  for (const c of cases) volumes.push(await loadSliceVolume(c, { normalization: defaultNormalization('CT'), spacingXyMm, numClasses: classes.length, requireLabel: true, keepOriginalLabel: false }));
  const pools = [{ slices: slicesOf(volumes), augment: o.augment, foregroundFraction: 0.5 }];
  const ms = new Map<number, number[]>(o.workerList.map((w) => [w, []]));
  const loads = new Map<number, number[]>(o.workerList.map((w) => [w, []]));
  const cpu = new Map<number, number[]>(o.workerList.map((w) => [w, []]));
  console.log('');
  console.log(`# step time on the trainSegmentation path: ${o.rounds} interleaved rounds × ${o.steps} steps per variant, batch ${o.batchSize}×${o.tile}×${o.tile}, augment ${o.augment}`);
  for (let round = 0; round < o.rounds; round++) {
    for (const workers of o.workerList) {
      const steps: number[] = [];
      const cpuMs: number[] = [];
      let last = process.cpuUsage();
      const r = await trainSegmentation(
        { pools, tileYx: [o.tile, o.tile], numClasses: classes.length, steps: o.steps, batchSize: o.batchSize, learningRate: o.learningRate, seed: o.seed, workers },
        {
          onStep: (e) => {
            steps.push(e.ms);
            const d = process.cpuUsage(last); // every thread of the process (workers included), since the previous step
            last = process.cpuUsage();
            cpuMs.push((d.user + d.system) / 1000);
          },
        },
      );
      r.model.dispose();
      ms.get(workers)!.push(...steps.slice(3));
      cpu.get(workers)!.push(...cpuMs.slice(3));
      loads.get(workers)!.push(loadavg()[0]!);
      console.log(`  round ${round + 1}, workers=${workers}: median ${median(steps.slice(3)).toFixed(0)} ms/step, CPU ${median(cpuMs.slice(3)).toFixed(0)} ms/step, load ${loadavg()[0]!.toFixed(1)}`);
    }
  }
  const base = median(ms.get(o.workerList[0]!)!);
  console.log('');
  console.log(`| workers | step ms (median of ${o.rounds}×${o.steps - 3} steps) | min | speed-up vs workers=${o.workerList[0]} | CPU ms/step, all threads (median) | CPU / wall | load |`);
  console.log('|---|---|---|---|---|---|---|');
  for (const w of o.workerList) {
    const xs = ms.get(w)!;
    const l = loads.get(w)!;
    const c = median(cpu.get(w)!);
    console.log(`| ${w === 1 ? '1 (in-process)' : `${w} workers`} | ${median(xs).toFixed(0)} | ${Math.min(...xs).toFixed(0)} | ${(base / median(xs)).toFixed(2)}× | ${c.toFixed(0)} | ${(c / median(xs)).toFixed(2)} | ${Math.min(...l).toFixed(1)}–${Math.max(...l).toFixed(1)} |`);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
