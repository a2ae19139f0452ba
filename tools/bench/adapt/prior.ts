/**
 * Feasibility study (stage B, #21): can a class-size prior from the SOURCE
 * labels correct the teacher's under-segmentation on the target? errors.ts
 * shows the target pseudo-labels' errors are mostly organ pixels predicted as
 * background, which no region-dropping purifier can fix. Here the teacher's
 * log-probabilities get one bias per class, fitted on the unlabelled target
 * TRAINING images so that each class's predicted share of the voxels matches
 * its share in the source labels (size constraints / class-ratio priors:
 * Kervadec et al. 2019, Bateson et al. 2020); the biased argmax is then
 * scored on the target TEST labels — evaluation only.
 *
 *   npx tsx --conditions=@purify/source tools/bench/adapt/prior.ts --artifacts DIR --data DIR --model NAME[:V] [--target mr|cbct] [--strength 0,0.5,1]
 *
 * `--strength s` moves each bias a fraction s of the way to the fitted one.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { readNifti } from '@purify/imaging';
import { predictSlices } from '@purify/training';
import { loadStudyData, openStudyModel, STUDY_OPTIONS, studyArgs } from './target-test';

const { values } = parseArgs({ options: { ...STUDY_OPTIONS, strength: { type: 'string', default: '0,0.5,1' } } });

/** Argmax of channels-last log-probabilities plus per-class biases; counts per class. */
function argmaxBiased(logp: Float32Array, k: number, bias: Float64Array, out: Uint8Array, counts: Float64Array): void {
  const n = logp.length / k;
  for (let i = 0; i < n; i++) {
    let best = 0;
    let bestV = -Infinity;
    for (let c = 0; c < k; c++) {
      const v = (logp[i * k + c] as number) + (bias[c] as number);
      if (v > bestV) {
        bestV = v;
        best = c;
      }
    }
    out[i] = best;
    counts[best] = (counts[best] as number) + 1;
  }
}

async function main(): Promise<void> {
  const args = studyArgs(values);
  const { version: v, model } = await openStudyModel(args.artifacts, args.model);
  const target = args.target;
  const { data, k, testSet } = await loadStudyData(args.data, target, v, args.seed);
  // The source prior: each class's share of the labelled source voxels.
  const prior = new Float64Array(k);
  let total = 0;
  for (const s of data.source.train) {
    for (const x of s.label!) prior[x] = (prior[x] as number) + 1;
    total += s.label!.length;
  }
  for (let c = 0; c < k; c++) prior[c] = (prior[c] as number) / total;
  const logOf = (vol: { image: Float32Array; shape: readonly [number, number, number] }): Float32Array => predictSlices(model, vol.image, vol.shape).map((p) => Math.log(Math.max(p, 1e-8)));
  const train = data.target.volumes.map(logOf);
  const nTrain = train.reduce((a, x) => a + x.length / k, 0);
  // Fit: multiplicative updates of exp(bias) towards the prior share, on the unlabelled training images.
  const bias = new Float64Array(k);
  for (let it = 0; it < 40; it++) {
    const counts = new Float64Array(k);
    for (const lp of train) argmaxBiased(lp, k, bias, new Uint8Array(lp.length / k), counts);
    for (let c = 1; c < k; c++) bias[c] = (bias[c] as number) + 0.5 * Math.log((prior[c] as number) / Math.max((counts[c] as number) / nTrain, 1e-9));
  }
  const tests = testSet.volumes.map((t) => ({ logp: logOf(t), id: t.id, n: t.image.length }));
  const labels = await Promise.all(tests.map((t) => readNifti(join(args.data, `${target}-eval`, 'labelsTs', `${t.id}.nii.gz`))));
  labels.forEach((l, i) => {
    if (l.data.length !== tests[i]!.n) throw new Error(`case ${tests[i]!.id}: the working grid differs from the label grid; this study compares on the working grid only`);
  });
  process.stdout.write(`${args.model} → ${target}: source prior ${[...prior].map((p) => p.toFixed(4)).join(' ')}; fitted biases ${[...bias].map((b) => b.toFixed(2)).join(' ')}\n`);
  for (const s of values.strength.split(',').map(Number)) {
    const b = bias.map((x) => s * x);
    const perOrgan = new Float64Array(k);
    for (const [i, t] of tests.entries()) {
      const pred = new Uint8Array(t.n);
      argmaxBiased(t.logp, k, b, pred, new Float64Array(k));
      const lab = labels[i]!.data as ArrayLike<number>;
      for (let c = 1; c < k; c++) {
        let tp = 0;
        let np = 0;
        let nl = 0;
        for (let j = 0; j < t.n; j++) {
          const p = pred[j] === c;
          const l = lab[j] === c;
          if (p) np++;
          if (l) nl++;
          if (p && l) tp++;
        }
        perOrgan[c] = (perOrgan[c] as number) + (np + nl === 0 ? 1 : (2 * tp) / (np + nl)) / tests.length;
      }
    }
    const organs = [...perOrgan].slice(1);
    process.stdout.write(`strength ${s}: organ Dice ${(organs.reduce((a, x) => a + x, 0) / organs.length).toFixed(4)} (${organs.map((x) => x.toFixed(3)).join(' ')})\n`);
  }
  model.dispose();
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
