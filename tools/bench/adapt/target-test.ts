/**
 * The target test set of a `purify data generate` folder for the adaptation
 * studies (probe.ts, tta.ts): its images as the models see them, and a scorer
 * against `<target>-eval/labelsTs` — evaluation only, never an input to
 * training or to a choice the product makes.
 */
import { join } from 'node:path';
import { openDataset, readNifti } from '@purify/imaging';
import { computeCaseMetrics, MetricsAccumulator, type MetricsSummary } from '@purify/metrics';
import type { SegModel } from '@purify/models';
import { defaultNormalization, loadSliceVolume, predictLabelVolume, type SliceVolume } from '@purify/training';

export interface TargetTestSet {
  readonly volumes: readonly SliceVolume[];
  /** The model's predictions of every test volume scored against the test labels (organ classes 1 … K − 1). */
  score(model: SegModel): MetricsSummary;
}

export async function loadTargetTestSet(dataDir: string, target: string, o: { spacingXyMm: readonly [number, number] | undefined; numClasses: number }): Promise<TargetTestSet> {
  const dataset = openDataset(join(dataDir, target));
  const normalization = defaultNormalization(dataset.channelNames[0] ?? '');
  const volumes: SliceVolume[] = [];
  for (const c of dataset.cases.filter((x) => x.split === 'test')) {
    volumes.push(await loadSliceVolume(c, { normalization, spacingXyMm: o.spacingXyMm, numClasses: o.numClasses, requireLabel: false, keepOriginalLabel: false }));
  }
  const labels = await Promise.all(volumes.map((t) => readNifti(join(dataDir, `${target}-eval`, 'labelsTs', `${t.id}.nii.gz`))));
  const organs = Array.from({ length: o.numClasses - 1 }, (_, i) => i + 1);
  return {
    volumes,
    score: (model) => {
      const acc = new MetricsAccumulator();
      volumes.forEach((t, i) => acc.update(t.id, computeCaseMetrics(predictLabelVolume(model, t), labels[i]!, organs)));
      return acc.aggregate();
    },
  };
}
