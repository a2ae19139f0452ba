import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { NiftiError, openDataset, type Dataset } from '@purify/imaging';
import { AugmentLevel, SOURCE_SCHEDULE, TrainingConfigError, TrainingDataError, trainSourceModel, type TrainSourceResult } from '@purify/training';
import { augmentArg, CliError, intArg, numberArg, output, table } from '../cli-util';
import { formatSeconds, Progress } from '../progress';
import { OutputPolicy } from '../write-safety';

/**
 * `purify train-source`: stage A — train the source segmentation model on a
 * labelled dataset, validate it by volume Dice per organ, publish it to the model
 * registry, and optionally predict the held-out test cases for `purify evaluate`.
 */

interface TrainSourceOpts {
  data: string;
  out: string;
  name: string;
  steps: number;
  batchSize: number;
  lr: number;
  size: number;
  tile?: number;
  width: number;
  depth: number;
  seed: number;
  valEvery: number;
  valCases?: number;
  patience: number;
  minDelta: number;
  annealFraction: number;
  augment: AugmentLevel;
  resume: boolean;
  backend: 'auto' | 'wasm' | 'cpu' | 'tensorflow' | 'tensorflow-gpu';
  workers?: number;
  predictTest?: string;
  overwrite: boolean;
  json: boolean;
}

/**
 * Checks every file train-source will write before training starts (the write rule
 * of tools/cli/src/write-safety.ts): the artifact store must not be a dataset
 * folder, and each `--predict-test` file `<dir>/<id>.nii.gz` must not be inside a
 * dataset's image or label folder, must not be any image or label of `--data`, and
 * must not exist unless `--overwrite`.
 */
function checkOutputs(opts: TrainSourceOpts): void {
  const noInputs = new OutputPolicy();
  noInputs.folder(opts.out, '--out');
  if (opts.predictTest === undefined) return;
  noInputs.folder(opts.predictTest, '--predict-test');
  let dataset: Dataset;
  try {
    dataset = openDataset(opts.data);
  } catch (err) {
    throw new CliError((err as Error).message, 2);
  }
  const inputs = dataset.cases.flatMap((c) => [
    ...c.imagePaths.map((path) => ({ path, what: `the image of case ${c.id} in --data` })),
    ...(c.labelPath === undefined ? [] : [{ path: c.labelPath, what: `the label map of case ${c.id} in --data` }]),
  ]);
  const policy = new OutputPolicy({ inputs, overwrite: opts.overwrite });
  for (const c of dataset.cases.filter((x) => x.split === 'test')) policy.file(join(opts.predictTest, `${c.id}.nii.gz`), '--predict-test');
}

function positiveNumber(raw: string): number {
  const v = Number(raw);
  if (!Number.isFinite(v) || v <= 0) throw new InvalidArgumentError(`must be a number > 0, got "${raw}"`);
  return v;
}

const dice = (v: number | undefined): string => (v === undefined || Number.isNaN(v) ? '–' : v.toFixed(4));

function summary(r: TrainSourceResult, opts: TrainSourceOpts): string {
  const best = r.training.best;
  const lines = [
    `backend ${r.backend.backend}${r.backend.wasmKernels === 'n/a' ? '' : ` (purify training kernels${r.backend.wasmKernels === 'purify-native' ? ', native' : ''})`}${r.backend.notes.length > 0 ? `; ${r.backend.notes.join('; ')}` : ''}`,
    `${r.training.stopReason} after ${r.training.stepsDone} steps (${r.training.startStep > 0 ? `resumed at ${r.training.startStep}, ` : ''}${r.training.msPerStep.toFixed(0)} ms/step on ${r.training.workers === 1 ? '1 thread' : `${r.training.workers} worker threads`}, wall ${formatSeconds(r.wallMs / 1000)}); best validation at step ${r.training.bestStep}`,
    '',
  ];
  if (best !== undefined) {
    lines.push(
      table(
        ['ORGAN', 'VAL DICE'],
        [...r.classes.slice(1).map((c) => [c.name, dice(best.dicePerClass[String(c.index)])]), ['mean', dice(best.meanDice)]],
      ),
      `(volume Dice on ${r.valCases.length} held-out training case${r.valCases.length === 1 ? '' : 's'}: ${r.valCases.join(', ')})`,
      '',
    );
  }
  if (r.version !== undefined) lines.push(`published ${r.version.meta.name} version ${r.version.meta.version}: ${r.version.dir}`);
  else lines.push(`cancelled: nothing published; continue with the same options and --resume`);
  if (r.predictions.length > 0) {
    const gt = resolve(opts.data, 'labelsTs');
    lines.push(
      `wrote ${r.predictions.length} test predictions to ${resolve(opts.predictTest ?? '')}`,
      existsSync(gt) ? `evaluate with: purify evaluate --pred ${resolve(opts.predictTest ?? '')} --gt ${gt}` : `(no ${gt} to evaluate them against)`,
    );
  }
  return lines.join('\n');
}

export function trainSourceCommand(): Command {
  return new Command('train-source')
    .description('Train the source segmentation model (2D U-Net on axial slices) on a labelled dataset and publish it to the model registry')
    .requiredOption('--data <dir>', 'labelled dataset folder (dataset.json, imagesTr/, labelsTr/; imagesTs/ for --predict-test)')
    .requiredOption('--out <dir>', 'artifact store: the model goes to <dir>/models/<name>/<version>, checkpoints to <dir>/checkpoints/<name>')
    .option('--name <name>', 'registry name of the model', 'source-ct')
    .option('--steps <n>', 'most explore steps (Adam updates) at the peak learning rate; the explore phase ends earlier once converged (--patience), then the anneal runs', intArg(1, 1_000_000), SOURCE_SCHEDULE.maxSteps)
    .option('--batch-size <n>', 'slices per step', intArg(1, 1024), 8)
    .option('--lr <rate>', 'peak learning rate: linear warm-up, held while exploring, then annealed (see --anneal-fraction)', positiveNumber, SOURCE_SCHEDULE.learningRate)
    .option('--size <px>', 'working in-plane size: the field of view is resampled to this many pixels', intArg(8, 2048), 96)
    .option('--tile <px>', 'training tile (random crops of the working slices; default = --size)', intArg(8, 2048))
    .option('--width <n>', 'U-Net base width (channels of the first level)', intArg(1, 256), 16)
    .option('--depth <n>', 'U-Net levels including the bottleneck', intArg(1, 8), 3)
    .option('--seed <n>', 'random seed (initialisation, batches, augmentation, validation split)', intArg(0, 2 ** 31 - 1), 1)
    .option('--val-every <n>', 'validate on the held-out cases every n steps', intArg(1, 1_000_000), SOURCE_SCHEDULE.valEvery)
    .option('--val-cases <n>', 'training cases held out for validation (default: 15 %, at least 1)', intArg(0, 100_000))
    .option('--patience <n>', 'converged: n validations in a row without a mean-Dice gain above --min-delta end the explore phase (0 = explore for all --steps)', intArg(0, 100_000), SOURCE_SCHEDULE.patience)
    .option('--min-delta <d>', 'smallest validation mean-Dice gain that counts as progress', numberArg(0, 1), SOURCE_SCHEDULE.minDelta)
    .option('--anneal-fraction <f>', 'after converging at the peak learning rate, anneal it to 0 over f × the steps taken (0 = one phase: poly decay to 0 at --steps, stopped by --patience)', numberArg(0, 10), SOURCE_SCHEDULE.annealFraction)
    .option('--augment <preset>', `augmentation preset, name or name@version: ${Object.values(AugmentLevel).join(', ')} (docs/training.md)`, augmentArg, SOURCE_SCHEDULE.augment)
    .option('--resume', 'continue from the last checkpoint of this --name in --out', false)
    .addOption(new Option('--backend <name>', 'TensorFlow.js backend').choices(['auto', 'wasm', 'cpu', 'tensorflow', 'tensorflow-gpu']).default('auto'))
    .option('--workers <n>', 'data-parallel training threads, each on a shard of every batch (1 = in-process; default: 2 on wasm with ≥ 2 cores and --batch-size ≥ 2, else 1)', intArg(1, 64))
    .option('--predict-test <dir>', "write the best model's label maps of the held-out test cases (imagesTs) here as <id>.nii.gz on their original grids (never inside a dataset's images*/labels* folder)")
    .option('--overwrite', 'replace existing --predict-test files (e.g. when continuing with --resume)', false)
    .option('--json', 'machine-readable output', false)
    .action(async (opts: TrainSourceOpts) => {
      // Before anything is loaded or trained: a refusal after an hour of training helps nobody.
      checkOutputs(opts);
      const controller = new AbortController();
      const stop = (): void => {
        if (!controller.signal.aborted) process.stderr.write('\nstopping after the current step (checkpoint kept; continue with --resume)…\n');
        controller.abort();
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
      let bar: Progress | undefined;
      let loadBar: Progress | undefined;
      let lastVal = '';
      let lastStep = '';
      let loss = Number.NaN;
      try {
        const result = await trainSourceModel(
          {
            dataPath: opts.data,
            artifactsDir: opts.out,
            name: opts.name,
            size: opts.size,
            tile: opts.tile,
            steps: opts.steps,
            batchSize: opts.batchSize,
            learningRate: opts.lr,
            seed: opts.seed,
            valEvery: opts.valEvery,
            valCases: opts.valCases,
            patience: opts.patience,
            minDelta: opts.minDelta,
            annealFraction: opts.annealFraction,
            augment: opts.augment,
            unet: { baseWidth: opts.width, depth: opts.depth },
            backend: opts.backend,
            workers: opts.workers,
            resume: opts.resume,
            predictTestDir: opts.predictTest,
            signal: controller.signal,
          },
          {
            onBackend: (b) => {
              if (!opts.json) process.stderr.write(`backend: ${b.backend}${b.notes.length > 0 ? ` (${b.notes.join('; ')})` : ''}\n`);
            },
            onLoad: (e) => {
              loadBar ??= new Progress('loading ', e.total, opts.json);
              loadBar.update(e.done, e.id);
            },
            onStart: (e) => {
              bar = new Progress('training', opts.steps, opts.json);
              if (e.resumed && !opts.json) process.stderr.write(`resuming at step ${e.startStep}\n`);
            },
            onStep: (e) => {
              // Exponential moving average of the loss, so the bar shows a trend rather than batch noise.
              loss = Number.isNaN(loss) ? e.loss : 0.9 * loss + 0.1 * e.loss;
              lastStep = `loss ${loss.toFixed(3)} lr ${e.learningRate.toExponential(1)} ${e.ms.toFixed(0)} ms/step`;
              bar?.setTotal(e.totalSteps);
              bar?.update(e.step, `${lastStep}${lastVal}`);
            },
            onValidation: (e) => {
              lastVal = `  val Dice ${e.meanDice.toFixed(3)} [${[...e.dicePerClass.values()].map((d) => d.toFixed(2)).join(' ')}] best ${e.bestMeanDice.toFixed(3)}@${e.bestStep}`;
              // The bar line of the final step is already out; the summary shows the last validation.
              if (e.step < opts.steps) bar?.update(e.step, `${lastStep}${lastVal}`);
            },
            onPredict: (e) => {
              if (!opts.json) process.stderr.write(`predicted ${e.id} → ${e.path}\n`);
            },
          },
        );
        output(
          opts.json,
          {
            version: result.version === undefined ? null : { name: result.version.meta.name, version: result.version.meta.version, dir: result.version.dir },
            stopReason: result.training.stopReason,
            stepsDone: result.training.stepsDone,
            startStep: result.training.startStep,
            bestStep: result.training.bestStep,
            best: result.training.best ?? null,
            validations: result.training.validations,
            msPerStep: result.training.msPerStep,
            workers: result.training.workers,
            wallMs: result.wallMs,
            backend: result.backend,
            classes: result.classes,
            trainCases: result.trainCases,
            valCases: result.valCases,
            spacingXyMm: result.spacingXyMm,
            tileYx: result.tileYx,
            normalization: result.normalization,
            predictions: result.predictions,
          },
          () => summary(result, opts),
        );
        if (result.training.stopReason === 'cancelled') process.exitCode = 130;
      } catch (err) {
        // A NiftiError names the file and what is wrong with it (e.g. a 4D image): bad input, like TrainingDataError.
        if (err instanceof TrainingDataError || err instanceof TrainingConfigError || err instanceof NiftiError) throw new CliError(err.message, 2);
        throw err;
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
    });
}
