/**
 * Does the reliability score find the wrong pseudo-label pixels on the real
 * target, per class, better than plain confidence? (#21 item 2.) An
 * evaluation-only study: the source model labels the target TEST images, the
 * in-process reliability pipeline (the product's default patch size and
 * stride for the model's tile) scores them, and the target test labels
 * (`<target>-eval/labelsTs`, on the model's working grid) say which pixels are
 * wrong. Per pseudo-label class: the share of wrong pixels and the AUROC of
 * 1 − reliability (the region score under the pixel) and of 1 − max-probability
 * for detecting them. Also: the feature columns that are constant over every
 * region of the target (a dead input of the agent).
 *
 *   npx tsx --conditions=@purify/source tools/bench/adapt/reliability-auroc.ts --artifacts DIR --data DIR \
 *     --model NAME[:V] [--target mr|cbct] [--seed 1]
 *
 * The in-process pipeline computes no flip or appearance view (the service's
 * `flip_view` / `appearance_view`, off by default in jobs), so their four
 * columns show as constant here as they are in a default job.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { LocalReliabilityPort, LocalTeacherPort, loadOracleLabels, ReadGuard } from '@purify/adaptation';
import { auroc, FEATURE_SCHEMA } from '@purify/reliability';
import { loadStudyData, openStudyModel, STUDY_OPTIONS, studyArgs } from './target-test';

const { values } = parseArgs({
  options: STUDY_OPTIONS,
});

async function main(): Promise<void> {
  const args = studyArgs(values);
  const target = args.target;
  const { version, model, unet } = await openStudyModel(args.artifacts, args.model);
  const { k, testSet } = await loadStudyData(args.data, target, version, args.seed);
  // Evaluation only: the test labels on the working grid, read to mark wrong pixels and for nothing else.
  const root = join(args.data, `${target}-eval`, 'labelsTs');
  const labels = await loadOracleLabels(root, testSet.volumes, k, new ReadGuard([root]));
  const teacher = new LocalTeacherPort();
  const ref = await teacher.publish(model);
  // The product's default for the tile (services/trainer reliabilityConfig): patch = half the tile, rounded down to the size multiple; stride = patch / 2.
  const multiple = 2 ** (unet.depth - 1);
  const side = Math.min(...version.meta.inputSizeYx);
  const patchSize = Math.max(multiple, Math.floor(side / 2 / multiple) * multiple);
  const reliability = new LocalReliabilityPort(teacher, { patchSize, stride: Math.max(1, Math.floor(patchSize / 2)) });

  const perClass = Array.from({ length: k }, () => ({ wrong: [] as boolean[], unreliability: [] as number[], unconfidence: [] as number[] }));
  const F = FEATURE_SCHEMA.features.length;
  const lo = new Float64Array(F).fill(Infinity);
  const hi = new Float64Array(F).fill(-Infinity);
  let regions = 0;
  for (const v of testSet.volumes) {
    const s = await reliability.score(ref, v, 0);
    const truth = labels.get(v.id)!;
    for (let i = 0; i < s.pseudoLabel.length; i++) {
      const c = perClass[s.pseudoLabel[i]!]!;
      c.wrong.push(s.pseudoLabel[i] !== truth[i]);
      c.unreliability.push(1 - (s.scores[s.regionIndex[i]!] as number));
      c.unconfidence.push(1 - (s.maxProbability[i] as number));
    }
    for (let r = 0; r < s.numRegions; r++) {
      for (let f = 0; f < F; f++) {
        const x = s.features[r * s.numFeatures + f] as number;
        lo[f] = Math.min(lo[f]!, x);
        hi[f] = Math.max(hi[f]!, x);
      }
    }
    regions += s.numRegions;
  }
  const all = { wrong: perClass.flatMap((c) => c.wrong), unreliability: perClass.flatMap((c) => c.unreliability), unconfidence: perClass.flatMap((c) => c.unconfidence) };
  const row = (name: string, c: (typeof perClass)[number]): string => {
    const wrong = c.wrong.filter(Boolean).length;
    return `| ${name} | ${c.wrong.length} | ${((100 * wrong) / Math.max(1, c.wrong.length)).toFixed(2)} % | ${auroc(c.unreliability, c.wrong).toFixed(3)} | ${auroc(c.unconfidence, c.wrong).toFixed(3)} |`;
  };
  process.stdout.write(`${args.model} → ${target}, ${testSet.volumes.length} test cases, patch ${patchSize}, stride ${Math.max(1, Math.floor(patchSize / 2))}, ${new Date().toISOString()}\n\n`);
  process.stdout.write('| pseudo-label class | pixels | wrong | AUROC 1 − reliability | AUROC 1 − max-probability |\n|---|---|---|---|---|\n');
  perClass.forEach((c, i) => process.stdout.write(`${row(`${i}`, c)}\n`));
  process.stdout.write(`${row('all', all)}\n\n`);
  const constant = FEATURE_SCHEMA.features.flatMap((x, f) => (hi[f] === lo[f] ? [`${x.name} (= ${lo[f]!.toFixed(3)})`] : []));
  process.stdout.write(`feature columns constant over all ${regions} regions: ${constant.length === 0 ? 'none' : constant.join(', ')}\n`);
  model.dispose();
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
