/**
 * The target test set of a `purify data generate` folder for the adaptation
 * studies (probe.ts, tta.ts): its images as the models see them, and a scorer
 * against `<target>-eval/labelsTs` — evaluation only, never an input to
 * training or to a choice the product makes.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadJobData, type JobData } from '@purify/adaptation';
import { ModelRegistry, type ModelVersion } from '@purify/artifacts';
import { openDataset, readNifti } from '@purify/imaging';
import { computeCaseMetrics, MetricsAccumulator, type MetricsSummary } from '@purify/metrics';
import { buildUNet, type SegModel, type UNetConfig, type WeightSnapshot } from '@purify/models';
import { decodeWeights, defaultNormalization, initTrainingBackend, loadSliceVolume, predictLabelVolume, type SliceVolume } from '@purify/training';

/** The command-line options every study takes (`parseArgs`); a study adds its own. */
export const STUDY_OPTIONS = {
  artifacts: { type: 'string' },
  data: { type: 'string' },
  model: { type: 'string' },
  target: { type: 'string', default: 'mr' },
  seed: { type: 'string', default: '1' },
} as const;

export interface StudyArgs {
  readonly artifacts: string;
  readonly data: string;
  /** `name[:version]` of the source model in the registry at `artifacts`. */
  readonly model: string;
  readonly target: string;
  readonly seed: number;
}

/** The study options of a parsed command line; an error naming the missing required ones. */
export function studyArgs(values: { artifacts?: string | undefined; data?: string | undefined; model?: string | undefined; target?: string | undefined; seed?: string | undefined }): StudyArgs {
  const missing = (['artifacts', 'data', 'model'] as const).filter((k) => values[k] === undefined).map((k) => `--${k}`);
  if (missing.length > 0) throw new Error(`${missing.join(', ')} required (--artifacts, --data and --model name the registry, the data folder and the source model)`);
  const seed = Number(values.seed ?? '1');
  if (!Number.isInteger(seed)) throw new Error(`--seed must be an integer, got ${values.seed}`);
  return { artifacts: values.artifacts!, data: values.data!, model: values.model!, target: values.target ?? 'mr', seed };
}

/** A source model of the registry, ready in process: its version, weights and a built network (the caller disposes it). */
export interface StudyModel {
  readonly version: ModelVersion;
  readonly unet: UNetConfig;
  readonly weights: WeightSnapshot[];
  readonly model: SegModel;
}

/** Opens `name[:version]` of the registry at `artifacts` on the wasm training backend (the studies' common start). */
export async function openStudyModel(artifacts: string, ref: string): Promise<StudyModel> {
  const [name, version] = ref.split(':') as [string, string | undefined];
  await initTrainingBackend('wasm');
  const v = new ModelRegistry(artifacts).get(name, version === undefined ? 0 : Number(version));
  const init = decodeWeights(readFileSync(join(v.dir, 'weights.bin')));
  const model = buildUNet(init.unet);
  model.setWeights(init.weights);
  return { version: v, unet: init.unet, weights: init.weights, model };
}

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

/**
 * A study's data: the job data an adaptation job from `version` would get
 * from `<dataDir>/ct` and `<dataDir>/<target>` (unlabelled target; the source
 * split drawn with `seed`), its class count, and the target test set.
 */
export async function loadStudyData(dataDir: string, target: string, version: ModelVersion, seed: number): Promise<{ data: JobData; k: number; testSet: TargetTestSet }> {
  const m = version.meta;
  const data = await loadJobData({ method: 'naive', source: { path: join(dataDir, 'ct'), caseIds: [] }, target: { path: join(dataDir, target), caseIds: [] }, sourceNormalization: m.normalization, spacingXyMm: m.spacingXyMm, imageSizeYx: m.inputSizeYx, seed });
  const k = data.classes.length;
  return { data, k, testSet: await loadTargetTestSet(dataDir, target, { spacingXyMm: data.spacingXyMm, numClasses: k }) };
}
