/**
 * Loading the data of an adaptation job — and the barrier that keeps target
 * labels out of it.
 *
 * The barrier is structural:
 * - the target is opened through {@link openTargetImages}, which strips every
 *   label path from the cases before anything is read (a `labelsTr/` folder in
 *   the target dataset is ignored with a warning), so no code downstream can
 *   even name a target label file;
 * - evaluation labels (`<domain>-eval/labelsTs`) have no loader at all;
 * - oracle labels come only through {@link loadOracleLabels}, which the loop
 *   calls only for the `oracle` method;
 * - every file this module reads passes a {@link ReadGuard} holding the roots the
 *   job declared (source dataset, target images, and the oracle folder only for
 *   `oracle`); anything else throws {@link ForbiddenReadError}.
 *
 * Volumes live on the in-plane working grid as the training library's
 * `SliceVolume`s: images `[z, h, w]` float32 normalised to [0, 1], labels `[z, h, w]` uint8.
 */
import { existsSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { NormalizationSpec } from '@purify/artifacts';
import { gridDifference, gridOf, openDataset, readNifti, resampleToGrid, Rng, type Dataset, type DatasetCase } from '@purify/imaging';
import { datasetClasses, defaultNormalization, loadSliceVolume, spacingForSize, type SliceVolume } from '@purify/training';
import { AdaptationDataError, ForbiddenReadError } from './errors';

/** Paths a job may read: a file is readable when it lies under one of the roots. */
export class ReadGuard {
  private readonly roots: string[] = [];
  /** Every path checked (and allowed), in order — for tests and audits. */
  readonly reads: string[] = [];

  constructor(roots: readonly string[] = []) {
    for (const r of roots) this.allow(r);
  }

  allow(root: string): void {
    this.roots.push(resolve(root));
  }

  /** Throws {@link ForbiddenReadError} unless `path` lies under an allowed root. */
  check(path: string, what: string): string {
    const abs = resolve(path);
    const ok = this.roots.some((root) => {
      const rel = relative(root, abs);
      return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel) && !rel.startsWith(`..${sep}`));
    });
    if (!ok) throw new ForbiddenReadError(`${what}: ${abs} is outside the paths this job may read (${this.roots.join(', ') || 'none'})`);
    this.reads.push(abs);
    return abs;
  }
}

/** A dataset case with no label: `labelPath` is undefined and `loadLabel` refuses. */
function withoutLabel(c: DatasetCase, guard: ReadGuard): DatasetCase {
  return {
    id: c.id,
    split: c.split,
    imagePaths: c.imagePaths,
    labelPath: undefined,
    loadImage: (channel, options) => {
      guard.check(c.imagePaths[channel ?? 0] ?? '', `target case ${c.id} image`);
      return c.loadImage(channel, options);
    },
    loadLabel: () => Promise.reject(new ForbiddenReadError(`target case ${c.id}: target labels are never read by training code`)),
  };
}

function openChecked(path: string, field: string): Dataset {
  if (!existsSync(path)) throw new AdaptationDataError(field, `${field}: dataset ${resolve(path)} does not exist`);
  try {
    return openDataset(path);
  } catch (err) {
    throw new AdaptationDataError(field, `${field}: ${(err as Error).message}`);
  }
}

function selectCases(dataset: Dataset, caseIds: readonly string[], field: string): DatasetCase[] {
  const training = dataset.cases.filter((c) => c.split !== 'test');
  if (caseIds.length === 0) {
    if (training.length === 0) throw new AdaptationDataError(field, `${field}: ${dataset.root} has no training cases (imagesTr/ is empty or missing)`);
    return training;
  }
  return caseIds.map((id) => {
    const c = training.find((t) => t.id === id);
    if (c === undefined) throw new AdaptationDataError(`${field}.case_ids`, `${field}.case_ids: case "${id}" is not a training case of ${dataset.root}`);
    return c;
  });
}

/** Classes declared by a dataset (0..K−1, 0 = background), or undefined when it declares none. */
export function declaredClasses(dataset: Dataset): { index: number; name: string }[] | undefined {
  return dataset.labels.size === 0 ? undefined : datasetClasses(dataset);
}

export interface SourceData {
  readonly dataset: Dataset;
  readonly classes: readonly { index: number; name: string }[];
  readonly train: readonly SliceVolume[];
  readonly val: readonly SliceVolume[];
}

export interface LoadOptions {
  readonly normalization: NormalizationSpec;
  /** In-plane working spacing (x, y) mm. */
  readonly spacingXyMm: readonly [number, number];
  readonly numClasses: number;
  readonly guard: ReadGuard;
}

/**
 * The labelled source: training cases and held-out validation cases (the
 * dataset's own split when it lists `val` cases, else `valCases` drawn with `seed`).
 */
export async function loadSourceData(path: string, caseIds: readonly string[], options: LoadOptions & { valCases: number; seed: number }): Promise<SourceData> {
  const dataset = openChecked(options.guard.check(path, 'source'), 'source');
  const classes = declaredClasses(dataset);
  if (classes === undefined) throw new AdaptationDataError('source', `source: ${dataset.root} declares no labels (a labelled dataset.json is needed)`);
  const cases = selectCases(dataset, caseIds, 'source');
  const missing = cases.filter((c) => c.labelPath === undefined || !existsSync(c.labelPath));
  if (missing.length > 0) throw new AdaptationDataError('source', `source: case ${missing[0]!.id} of ${dataset.root} has no label file; the source must be labelled`);
  let val = cases.filter((c) => c.split === 'val');
  let train = cases.filter((c) => c.split !== 'val');
  if (val.length === 0 && options.valCases > 0) {
    if (cases.length <= options.valCases) throw new AdaptationDataError('source', `source: ${cases.length} labelled cases cannot spare ${options.valCases} for validation`);
    const order = new Rng(options.seed).shuffle([...cases.keys()]);
    const pick = new Set(order.slice(0, options.valCases));
    val = cases.filter((_, i) => pick.has(i));
    train = cases.filter((_, i) => !pick.has(i));
  }
  const load = async (list: readonly DatasetCase[], keepOriginal: boolean): Promise<SliceVolume[]> => {
    const out: SliceVolume[] = [];
    for (const c of list) {
      options.guard.check(c.imagePaths[0] ?? '', `source case ${c.id} image`);
      options.guard.check(c.labelPath ?? '', `source case ${c.id} label`);
      out.push(await loadSliceVolume(c, { normalization: options.normalization, spacingXyMm: options.spacingXyMm, numClasses: options.numClasses, requireLabel: true, keepOriginalLabel: keepOriginal }));
    }
    return out;
  };
  return { dataset, classes, train: await load(train, false), val: await load(val, true) };
}

export interface TargetData {
  readonly dataset: Dataset;
  /** Classes the target dataset declares (names only; its labels are never read), if any. */
  readonly classes: readonly { index: number; name: string }[] | undefined;
  /** Unlabelled volumes (`label` undefined). */
  readonly volumes: readonly SliceVolume[];
  readonly warnings: readonly string[];
}

/**
 * The unlabelled target: only channel 0 of the chosen training cases' images is
 * read. Label files present in the target dataset are ignored with a warning.
 */
export async function openTargetImages(path: string, caseIds: readonly string[], options: LoadOptions): Promise<TargetData> {
  const dataset = openChecked(options.guard.check(path, 'target'), 'target');
  const warnings: string[] = [];
  const cases = selectCases(dataset, caseIds, 'target');
  const labelled = cases.filter((c) => c.labelPath !== undefined && existsSync(c.labelPath)).length;
  if (labelled > 0) {
    warnings.push(`target: ${dataset.root} has labels for ${labelled} of its ${cases.length} training cases (labelsTr/); they are ignored — adaptation never reads target labels`);
  }
  const volumes: SliceVolume[] = [];
  for (const c of cases) {
    const safe = withoutLabel(c, options.guard);
    volumes.push(await loadSliceVolume(safe, { normalization: options.normalization, spacingXyMm: options.spacingXyMm, numClasses: options.numClasses, requireLabel: false, keepOriginalLabel: false }));
  }
  return { dataset, classes: declaredClasses(dataset), volumes, warnings };
}

/**
 * Target TRAINING labels for the `oracle` method only: `<path>/<case id>.nii.gz`
 * (or `.nii`) for every target volume, checked against the image's grid and
 * resampled (nearest) to the working grid. `path` must be allowed in `guard`.
 */
export async function loadOracleLabels(path: string, volumes: readonly SliceVolume[], numClasses: number, guard: ReadGuard): Promise<Map<string, Uint8Array>> {
  const root = guard.check(path, 'oracle_labels');
  if (!existsSync(root) || !statSync(root).isDirectory()) throw new AdaptationDataError('oracle_labels', `oracle_labels: ${root} is not a folder of label files`);
  const out = new Map<string, Uint8Array>();
  for (const v of volumes) {
    const file = ['.nii.gz', '.nii'].map((e) => join(root, `${v.id}${e}`)).find((f) => existsSync(f));
    if (file === undefined) throw new AdaptationDataError('oracle_labels', `oracle_labels: no label file for target case ${v.id} in ${root} (expected ${v.id}.nii.gz)`);
    const label = await readNifti(guard.check(file, `oracle label of ${v.id}`));
    const diff = gridDifference(v.originalGrid, gridOf(label));
    if (diff !== undefined) throw new AdaptationDataError('oracle_labels', `oracle_labels: ${file} is not on the grid of target image ${v.id}: ${diff}`);
    const onGrid = resampleToGrid(label, v.workingGrid, { interpolation: 'nearest' });
    const data = Uint8Array.from(onGrid.data);
    const bad = data.findIndex((x) => x >= numClasses);
    if (bad >= 0) throw new AdaptationDataError('oracle_labels', `oracle_labels: ${file} has label value ${data[bad]} outside [0, ${numClasses - 1}]`);
    out.set(v.id, data);
  }
  return out;
}

export interface JobDataRequest {
  readonly method: string;
  readonly source: { readonly path: string; readonly caseIds: readonly string[] };
  readonly target: { readonly path: string; readonly caseIds: readonly string[] };
  /** Target training labels: only for the `oracle` method (refused otherwise). */
  readonly oracleLabels?: { readonly path: string } | undefined;
  /** Source normalisation (the source model's), default from the source channel name. */
  readonly sourceNormalization?: NormalizationSpec | undefined;
  /** Target normalisation, default from the target channel name (CT window for CT, else percentiles). */
  readonly targetNormalization?: NormalizationSpec | undefined;
  /** In-plane working spacing (x, y) mm; default: the first source case's field of view on `imageSizeYx` pixels. */
  readonly spacingXyMm?: readonly [number, number] | undefined;
  readonly imageSizeYx?: readonly [number, number] | undefined;
  /** Source cases held out for the source-validation Dice (default 1). */
  readonly valCases?: number | undefined;
  readonly seed: number;
}

export interface JobData {
  readonly source: SourceData;
  readonly target: TargetData;
  /** Oracle labels by target case id (the `oracle` method only). */
  readonly oracleLabels: Map<string, Uint8Array> | undefined;
  readonly classes: readonly { index: number; name: string }[];
  readonly spacingXyMm: readonly [number, number];
  readonly sourceNormalization: NormalizationSpec;
  readonly targetNormalization: NormalizationSpec;
  readonly guard: ReadGuard;
  readonly warnings: readonly string[];
}

/**
 * Everything a job reads, through one {@link ReadGuard} holding exactly the
 * declared roots: the source dataset, the target dataset (images only, see
 * {@link openTargetImages}), and the oracle folder only when the method is
 * `oracle`. Checks that source and target declare the same classes.
 */
export async function loadJobData(req: JobDataRequest, guard = new ReadGuard()): Promise<JobData> {
  if (req.oracleLabels !== undefined && req.method !== 'oracle') {
    throw new AdaptationDataError('oracle_labels', `\`oracle_labels\` may only be given for the oracle method, got it for method ${req.method}`);
  }
  if (req.method === 'oracle' && req.oracleLabels === undefined) throw new AdaptationDataError('oracle_labels', '`oracle_labels` is required by the oracle method');
  guard.allow(req.source.path);
  guard.allow(req.target.path);
  if (req.method === 'oracle' && req.oracleLabels !== undefined) guard.allow(req.oracleLabels.path);

  const sourceDataset = openChecked(guard.check(req.source.path, 'source'), 'source');
  const classes = declaredClasses(sourceDataset);
  if (classes === undefined) throw new AdaptationDataError('source', `source: ${sourceDataset.root} declares no labels (a labelled dataset.json is needed)`);
  const sourceNormalization = req.sourceNormalization ?? defaultNormalization(sourceDataset.channelNames[0] ?? '');
  let spacingXyMm = req.spacingXyMm;
  if (spacingXyMm === undefined) {
    const first = selectCases(sourceDataset, req.source.caseIds, 'source')[0]!;
    const image = await readNifti(guard.check(first.imagePaths[0] ?? '', `source case ${first.id} image`));
    spacingXyMm = spacingForSize(gridOf(image), req.imageSizeYx ?? [96, 96]);
  }
  const source = await loadSourceData(req.source.path, req.source.caseIds, { normalization: sourceNormalization, spacingXyMm, numClasses: classes.length, guard, valCases: req.valCases ?? 1, seed: req.seed });
  const targetDataset = openChecked(guard.check(req.target.path, 'target'), 'target');
  const targetNormalization = req.targetNormalization ?? defaultNormalization(targetDataset.channelNames[0] ?? '');
  const target = await openTargetImages(req.target.path, req.target.caseIds, { normalization: targetNormalization, spacingXyMm, numClasses: classes.length, guard });
  if (target.classes !== undefined) {
    const a = classes.map((c) => `${c.index}:${c.name}`).join(', ');
    const b = target.classes.map((c) => `${c.index}:${c.name}`).join(', ');
    if (a !== b) throw new AdaptationDataError('target', `target: ${target.dataset.root} declares classes [${b}], the source declares [${a}]; they must match`);
  }
  const oracleLabels = req.method === 'oracle' ? await loadOracleLabels(req.oracleLabels!.path, target.volumes, classes.length, guard) : undefined;
  return { source, target, oracleLabels, classes, spacingXyMm, sourceNormalization, targetNormalization, guard, warnings: target.warnings };
}
