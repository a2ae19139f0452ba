/**
 * Where a source model's target pseudo-labels are wrong, and how much of it a
 * region-level purifier could remove at best (stage B, #21) — an evaluation
 * study: the target test labels decide what is wrong, so nothing here is an
 * input to training or to any choice the product makes.
 *
 *   npx tsx --conditions=@purify/source tools/bench/adapt/errors.ts --artifacts DIR --data DIR --model NAME[:V] [--target mr|cbct]
 *
 * Per organ class, over the test cases (original grid, in-process TensorFlow.js
 * prediction on whole slices, as probe.ts):
 * - wrong pixels split into false positives (predicted the class, labelled
 *   otherwise) and false negatives, each split again by what the other side
 *   is: background or another organ;
 * - false positives inside *wrong components* — 3-D connected pieces of the
 *   prediction of which less than half is labelled the class — against those
 *   on the rim of a right component (over-extension);
 * - false negatives inside *missed components* — connected pieces of the
 *   label of which less than half is predicted — against those on the rim;
 * - the Dice as predicted, and with every wrong component relabelled
 *   background: the most that dropping whole regions can give (a region
 *   purifier cannot add the pixels the teacher never predicted).
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { components } from '@purify/adaptation';
import { readNifti } from '@purify/imaging';
import { predictLabelVolume } from '@purify/training';
import { loadStudyData, openStudyModel, STUDY_OPTIONS, studyArgs } from './target-test';

const { values } = parseArgs({ options: STUDY_OPTIONS });

interface ClassTally {
  tp: number;
  fpBackground: number;
  fpOrgan: number;
  fnBackground: number;
  fnOrgan: number;
  fpInWrongComponents: number;
  fnInMissedComponents: number;
  /** True positives inside wrong components (lost too when such a component is dropped). */
  tpInWrongComponents: number;
}

const dice = (tp: number, fp: number, fn: number): number => (tp + fp + fn === 0 ? Number.NaN : (2 * tp) / (2 * tp + fp + fn));

async function main(): Promise<void> {
  const args = studyArgs(values);
  const { version: v, model } = await openStudyModel(args.artifacts, args.model);
  const target = args.target;
  const { data, k, testSet } = await loadStudyData(args.data, target, v, args.seed);
  const tallies: ClassTally[] = Array.from({ length: k }, () => ({ tp: 0, fpBackground: 0, fpOrgan: 0, fnBackground: 0, fnOrgan: 0, fpInWrongComponents: 0, fnInMissedComponents: 0, tpInWrongComponents: 0 }));
  for (const t of testSet.volumes) {
    const truth = await readNifti(join(args.data, `${target}-eval`, 'labelsTs', `${t.id}.nii.gz`));
    const pred = predictLabelVolume(model, t).data;
    const lab = truth.data as ArrayLike<number>;
    const shape = [truth.shape[0], truth.shape[1], truth.shape[2]] as [number, number, number];
    const labU8 = Uint8Array.from(lab);
    for (let c = 1; c < k; c++) {
      const s = tallies[c]!;
      const predComp = components(pred, shape, c);
      const hits = new Array<number>(predComp.sizes.length).fill(0);
      for (let i = 0; i < pred.length; i++) if (predComp.ids[i]! >= 0 && labU8[i] === c) hits[predComp.ids[i]!]! += 1;
      const wrongComp = predComp.sizes.map((n, j) => hits[j]! < n / 2);
      const labComp = components(labU8, shape, c);
      const covered = new Array<number>(labComp.sizes.length).fill(0);
      for (let i = 0; i < pred.length; i++) if (labComp.ids[i]! >= 0 && pred[i] === c) covered[labComp.ids[i]!]! += 1;
      const missedComp = labComp.sizes.map((n, j) => covered[j]! < n / 2);
      for (let i = 0; i < pred.length; i++) {
        const p = pred[i] === c;
        const l = labU8[i] === c;
        if (p && l) {
          s.tp++;
          if (wrongComp[predComp.ids[i]!]) s.tpInWrongComponents++;
        } else if (p) {
          if (labU8[i] === 0) s.fpBackground++;
          else s.fpOrgan++;
          if (wrongComp[predComp.ids[i]!]) s.fpInWrongComponents++;
        } else if (l) {
          if (pred[i] === 0) s.fnBackground++;
          else s.fnOrgan++;
          if (missedComp[labComp.ids[i]!]) s.fnInMissedComponents++;
        }
      }
    }
  }
  process.stdout.write(`${args.model} → ${target}: ${testSet.volumes.length} test cases, ${new Date().toISOString()}\n`);
  process.stdout.write('| class | Dice | FP: background / other organ | FP in wrong components | FN: background / other organ | FN in missed components | Dice with wrong components dropped |\n|---|---|---|---|---|---|---|\n');
  let before = 0;
  let after = 0;
  for (let c = 1; c < k; c++) {
    const s = tallies[c]!;
    const fp = s.fpBackground + s.fpOrgan;
    const fn = s.fnBackground + s.fnOrgan;
    const d0 = dice(s.tp, fp, fn);
    const d1 = dice(s.tp - s.tpInWrongComponents, fp - s.fpInWrongComponents, fn + s.tpInWrongComponents);
    before += d0 / (k - 1);
    after += d1 / (k - 1);
    const pct = (x: number, n: number): string => (n === 0 ? '–' : `${((100 * x) / n).toFixed(0)} %`);
    process.stdout.write(`| ${data.classes[c]?.name ?? c} | ${d0.toFixed(3)} | ${s.fpBackground} / ${s.fpOrgan} | ${pct(s.fpInWrongComponents, fp)} | ${s.fnBackground} / ${s.fnOrgan} | ${pct(s.fnInMissedComponents, fn)} | ${d1.toFixed(3)} |\n`);
  }
  process.stdout.write(`organ mean (pooled over cases): ${before.toFixed(3)} → ${after.toFixed(3)} with every wrong component dropped\n`);
  model.dispose();
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
