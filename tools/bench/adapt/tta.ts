/**
 * Study: are pseudo-labels averaged over appearance views better than the
 * teacher's single clean prediction? A model is applied to each target test
 * slice clean and under N − 1 appearance views drawn from its own training
 * augmentation preset (no spatial part, so the probabilities need no warping
 * back; class-wise views remap by the clean prediction, never a label); the
 * softmax outputs are averaged and arg-maxed. Scored against the target test
 * labels — evaluation only, for deciding how the product builds pseudo-labels.
 *
 *   npx tsx --conditions=@purify/source tools/bench/adapt/tta.ts --artifacts DIR --data DIR --model NAME[:V] \
 *     [--target mr|cbct] [--views 1,4,8] [--seed 1]
 */
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '@purify/imaging';
import type { SegModel } from '@purify/models';
import { AUGMENT_PRESETS, augmentSample, parseAugmentLevel } from '@purify/training';
import { loadTargetTestSet, openStudyModel, STUDY_OPTIONS, studyArgs } from './target-test';

const { values } = parseArgs({
  options: { ...STUDY_OPTIONS, views: { type: 'string', default: '1,4,8' } },
});

/** A model whose prediction is the mean softmax over `views` appearance views of each slice (view 0 = clean). */
function viewEnsemble(model: SegModel, views: number, preset: string, seed: number): SegModel {
  const config = { ...AUGMENT_PRESETS[parseAugmentLevel(preset)].config, pSpatial: 0, pAppearance: 1 };
  const rng = new Rng(seed);
  const predict = (x: tf.Tensor4D): tf.Tensor4D => {
    const [b, h, w] = x.shape;
    const clean = model.predict(x);
    if (views <= 1) return clean;
    const images = x.dataSync() as Float32Array;
    const labels = tf.tidy(() => clean.argMax(-1).dataSync() as Int32Array);
    let sum: tf.Tensor4D = clean;
    for (let v = 1; v < views; v++) {
      const batch = new Float32Array(b * h * w);
      for (let s = 0; s < b; s++) {
        const n = h * w;
        const out = augmentSample(
          { image: images.slice(s * n, (s + 1) * n), label: Int32Array.from(labels.subarray(s * n, (s + 1) * n)), weight: new Float32Array(n).fill(1) },
          [h, w],
          config,
          rng,
        );
        batch.set(out.image, s * n);
      }
      const p = model.predict(tf.tensor4d(batch, [b, h, w, 1]));
      sum = tf.add(sum, p);
    }
    return tf.div(sum, views);
  };
  return new Proxy(model, { get: (t, k): unknown => (k === 'predict' ? predict : (Reflect.get(t, k) as unknown)) });
}

async function main(): Promise<void> {
  const args = studyArgs(values);
  const { version: v, unet, model } = await openStudyModel(args.artifacts, args.model);
  const preset = v.meta.provenance['augment']?.split('@')[0] ?? 'strong';
  const target = args.target;
  const k = unet.numClasses;
  const testSet = await loadTargetTestSet(args.data, target, { spacingXyMm: v.meta.spacingXyMm, numClasses: k });
  process.stdout.write(`${args.model} (${preset}) → ${target}, ${testSet.volumes.length} test cases, ${new Date().toISOString()}\n`);
  for (const views of values.views.split(',').map(Number)) {
    const s = testSet.score(viewEnsemble(model, views, preset, args.seed));
    process.stdout.write(`views ${views}: Dice ${s.organAverage.dice.toFixed(4)} (${s.labels.map((l) => l.dice.mean.toFixed(3)).join(' / ')})\n`);
  }
  model.dispose();
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
