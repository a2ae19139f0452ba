/**
 * Dataset layouts: the MSD / nnU-Net `dataset.json` folder, and a plain folder of
 * images (+ optional labels folder) for unlabelled target sets.
 *
 * MSD / nnU-Net folder:
 *   dataset.json, imagesTr/, labelsTr/, imagesTs/, labelsTs/ (optional, ours: test labels
 *   kept apart for evaluation only).
 *   - Images are `<case>_<CCCC><ending>` with a 4-digit channel index (nnU-Net), or the
 *     plain `<case><ending>` that an MSD `training` list names (channel 0 only).
 *   - Labels are `<case><ending>`.
 *   - `labels`: name → int (nnU-Net v2, {"background": 0, "liver": 1}) or int → name
 *     (MSD, AMOS, {"0": "background", "1": "liver"}); region-based (list) labels are not
 *     supported.
 *   - Channels from `channel_names` (v2) or `modality` (MSD), {"0": "CT"}.
 *   - Cases: from the `training` / `validation` / `test` lists when present (MSD, AMOS,
 *     nnU-Net v1), else by listing imagesTr/ and imagesTs/ (nnU-Net v2).
 * Plain folder: every `.nii`/`.nii.gz` in the folder is a case; when every name ends in
 *   `_<CCCC>`, that suffix is the channel. Labels are matched by case id in `labelsDir`.
 *
 * Opening reads only dataset.json and folder listings; voxels load lazily per case.
 * {@link validateDataset} reads everything and reports every problem found.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { writeJsonAtomic } from '@purify/artifacts';
import { gridDifference } from './geometry';
import { NiftiError, readNifti, writeNifti, type NiftiReadOptions } from './nifti';
import type { Volume } from './volume';

export class DatasetError extends Error {
  override readonly name = 'DatasetError';
}

export const DatasetLayout = { msd: 'msd', folder: 'folder' } as const;
export type DatasetLayout = (typeof DatasetLayout)[keyof typeof DatasetLayout];

export const CaseSplit = { train: 'train', val: 'val', test: 'test' } as const;
export type CaseSplit = (typeof CaseSplit)[keyof typeof CaseSplit];

export interface DatasetCase {
  readonly id: string;
  readonly split: CaseSplit;
  /** Absolute path per channel (index = channel). */
  readonly imagePaths: readonly string[];
  /** Absolute path of the label map, when the layout names one (it may be missing on disk; see validation). */
  readonly labelPath: string | undefined;
  /** Loads channel `channel` (default 0); images must be finite. */
  loadImage(channel?: number, options?: NiftiReadOptions): Promise<Volume>;
  /** Loads the label map (integer classes, `[z, y, x]`), or undefined when the case has none. */
  loadLabel(): Promise<Volume | undefined>;
}

export interface Dataset {
  /** Absolute folder. */
  readonly root: string;
  readonly layout: DatasetLayout;
  readonly name: string;
  readonly description: string;
  /** Channel names by channel index. */
  readonly channelNames: readonly string[];
  /** Declared label value → name; empty when the layout declares none (plain folder). */
  readonly labels: ReadonlyMap<number, string>;
  /** File name ending of images and labels, e.g. ".nii.gz". */
  readonly fileEnding: string;
  /** `numTraining` from dataset.json, if present. */
  readonly numTraining: number | undefined;
  /** Path of dataset.json (msd layout). */
  readonly jsonPath: string | undefined;
  readonly cases: readonly DatasetCase[];
  getCase(id: string): DatasetCase | undefined;
}

const NIFTI_ENDINGS = ['.nii.gz', '.nii'] as const;
const CHANNEL_SUFFIX = /^(.+)_(\d{4})$/;

function stripEnding(file: string, ending?: string): string | undefined {
  const name = basename(file);
  for (const e of ending === undefined ? NIFTI_ENDINGS : [ending]) if (name.toLowerCase().endsWith(e)) return name.slice(0, -e.length);
  return undefined;
}

function makeCase(id: string, split: CaseSplit, imagePaths: string[], labelPath: string | undefined): DatasetCase {
  return {
    id,
    split,
    imagePaths,
    labelPath,
    loadImage: (channel = 0, options = { requireFinite: true }) => {
      const path = imagePaths[channel];
      if (path === undefined) return Promise.reject(new DatasetError(`case ${id}: no channel ${channel} (it has ${imagePaths.length})`));
      return readNifti(path, options);
    },
    loadLabel: () => (labelPath === undefined ? Promise.resolve(undefined) : readNifti(labelPath, { requireFinite: true })),
  };
}

function finishDataset(fields: Omit<Dataset, 'getCase'>): Dataset {
  const byId = new Map(fields.cases.map((c) => [c.id, c]));
  return { ...fields, getCase: (id) => byId.get(id) };
}

function listNifti(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => !f.startsWith('.') && stripEnding(f) !== undefined)
    .sort();
}

/** Groups image files by case id; `_CCCC` suffixes are channels (when `channels` is true). */
function groupImages(dir: string, files: readonly string[], ending: string | undefined, channels: boolean): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const f of files) {
    const stem = stripEnding(f, ending);
    if (stem === undefined) continue;
    const m = channels ? CHANNEL_SUFFIX.exec(stem) : null;
    const id = m ? (m[1] as string) : stem;
    const channel = m ? Number(m[2]) : 0;
    const list = out.get(id) ?? [];
    list[channel] = join(dir, f);
    out.set(id, list);
  }
  return out;
}

/**
 * Opens a dataset: `path` is a folder with dataset.json (or the dataset.json itself),
 * or a plain folder of images (`labelsDir` then names its labels folder).
 */
export function openDataset(path: string, options: { labelsDir?: string } = {}): Dataset {
  const abs = resolve(path);
  if (!existsSync(abs)) throw new DatasetError(`${abs}: no such file or folder`);
  if (statSync(abs).isFile()) {
    if (basename(abs) === 'dataset.json') return readMsdDataset(dirname(abs));
    throw new DatasetError(`${abs}: expected a dataset folder or its dataset.json`);
  }
  if (existsSync(join(abs, 'dataset.json'))) return readMsdDataset(abs);
  return openImageFolder(abs, options.labelsDir);
}

/** A plain folder of images, with labels matched by case id in `labelsDir` (optional). */
export function openImageFolder(imagesDir: string, labelsDir?: string): Dataset {
  const root = resolve(imagesDir);
  const files = listNifti(root);
  const stems = files.map((f) => stripEnding(f) as string);
  const channels = stems.length > 0 && stems.every((s) => CHANNEL_SUFFIX.test(s));
  const groups = groupImages(root, files, undefined, channels);
  const labelRoot = labelsDir === undefined ? undefined : resolve(labelsDir);
  const labelFiles = labelRoot === undefined ? [] : listNifti(labelRoot);
  const cases = [...groups].map(([id, paths]) => {
    let labelPath: string | undefined;
    if (labelRoot !== undefined) {
      const found = labelFiles.find((f) => stripEnding(f) === id);
      labelPath = join(labelRoot, found ?? `${id}${fileEndingOf(paths[0] ?? '.nii.gz')}`);
    }
    return makeCase(id, 'train', paths, labelPath);
  });
  const nChannels = Math.max(1, ...cases.map((c) => c.imagePaths.length));
  return finishDataset({
    root,
    layout: 'folder',
    name: basename(root),
    description: '',
    channelNames: Array.from({ length: nChannels }, (_, i) => String(i)),
    labels: new Map(),
    fileEnding: fileEndingOf(files[0] ?? '.nii.gz'),
    numTraining: undefined,
    jsonPath: undefined,
    cases,
  });
}

function fileEndingOf(file: string): string {
  return file.toLowerCase().endsWith('.nii.gz') ? '.nii.gz' : '.nii';
}

type Json = Record<string, unknown>;

/** Parses `labels` of either style into value → name. */
function parseLabels(raw: unknown, jsonPath: string): Map<number, string> {
  if (raw === undefined) return new Map();
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new DatasetError(`${jsonPath}: "labels" must be an object, got ${JSON.stringify(raw)}`);
  const entries = Object.entries(raw as Json);
  const out = new Map<number, string>();
  const intToName = entries.every(([k, v]) => /^\d+$/.test(k) && typeof v === 'string');
  for (const [k, v] of entries) {
    if (intToName) {
      out.set(Number(k), v as string);
    } else if (typeof v === 'number' && Number.isInteger(v) && v >= 0) {
      out.set(v, k);
    } else {
      throw new DatasetError(
        `${jsonPath}: "labels" entry ${JSON.stringify(k)}: ${JSON.stringify(v)} is neither name → integer (nnU-Net v2) nor integer → name (MSD); region-based labels are not supported`,
      );
    }
  }
  return out;
}

function parseChannels(json: Json, jsonPath: string): string[] {
  const raw = json.channel_names ?? json.modality;
  if (raw === undefined) return ['0'];
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new DatasetError(`${jsonPath}: "channel_names"/"modality" must be an object like {"0": "CT"}, got ${JSON.stringify(raw)}`);
  const entries = Object.entries(raw as Json);
  const names: string[] = [];
  for (const [k, v] of entries) {
    if (!/^\d+$/.test(k)) throw new DatasetError(`${jsonPath}: channel key ${JSON.stringify(k)} must be a channel index like "0"`);
    names[Number(k)] = String(v);
  }
  for (let i = 0; i < names.length; i++) if (names[i] === undefined) throw new DatasetError(`${jsonPath}: channel ${i} is missing from "channel_names"/"modality"`);
  return names;
}

function readMsdDataset(rootDir: string): Dataset {
  const root = resolve(rootDir);
  const jsonPath = join(root, 'dataset.json');
  let json: Json;
  try {
    const parsed: unknown = JSON.parse(readFileSync(jsonPath, 'utf8'));
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('the top level must be an object');
    json = parsed as Json;
  } catch (err) {
    throw new DatasetError(`${jsonPath}: invalid dataset.json: ${(err as Error).message}`, { cause: err });
  }
  const labels = parseLabels(json.labels, jsonPath);
  const channelNames = parseChannels(json, jsonPath);
  const fileEnding = typeof json.file_ending === 'string' ? json.file_ending : '.nii.gz';
  const numTraining = typeof json.numTraining === 'number' ? json.numTraining : undefined;
  const cases: DatasetCase[] = [];

  const resolveImages = (listed: string): string[] => {
    const abs = resolve(root, listed);
    const stem = stripEnding(abs, fileEnding) ?? stripEnding(abs) ?? abs;
    const ending = abs.slice(join(dirname(abs), stem).length);
    const suffixed = Array.from({ length: channelNames.length }, (_, c) => join(dirname(abs), `${stem}_${String(c).padStart(4, '0')}${ending}`));
    if (existsSync(abs) && channelNames.length === 1) return [abs];
    if (existsSync(suffixed[0] as string) || channelNames.length > 1) return suffixed;
    return [abs];
  };
  const caseId = (listed: string): string => stripEnding(listed, fileEnding) ?? stripEnding(listed) ?? basename(listed);
  const readList = (key: string, split: CaseSplit): boolean => {
    const list = json[key];
    if (list === undefined) return false;
    if (!Array.isArray(list)) throw new DatasetError(`${jsonPath}: "${key}" must be a list, got ${JSON.stringify(list)}`);
    list.forEach((entry: unknown, i) => {
      const image = typeof entry === 'string' ? entry : (entry as Json | null)?.image;
      const label = typeof entry === 'string' ? undefined : (entry as Json | null)?.label;
      if (typeof image !== 'string') throw new DatasetError(`${jsonPath}: "${key}"[${i}] must be a path or {"image": path, "label": path}, got ${JSON.stringify(entry)}`);
      if (label !== undefined && typeof label !== 'string') throw new DatasetError(`${jsonPath}: "${key}"[${i}].label must be a path, got ${JSON.stringify(label)}`);
      const id = caseId(image);
      let labelPath = label === undefined ? undefined : resolve(root, label);
      if (labelPath === undefined && split === 'test') {
        const candidate = join(root, 'labelsTs', `${id}${fileEnding}`);
        if (existsSync(candidate)) labelPath = candidate;
      }
      cases.push(makeCase(id, split, resolveImages(image), labelPath));
    });
    return true;
  };
  const listed = readList('training', 'train');
  readList('validation', 'val');
  const listedTest = readList('test', 'test');
  if (!listed) {
    // No labelsTr/ folder at all = an unlabelled (target) dataset; a folder that
    // lacks some case's file is a problem that validation reports.
    const labelled = existsSync(join(root, 'labelsTr'));
    for (const [id, paths] of groupImages(join(root, 'imagesTr'), listNifti(join(root, 'imagesTr')), fileEnding, true)) {
      cases.push(makeCase(id, 'train', paths, labelled ? join(root, 'labelsTr', `${id}${fileEnding}`) : undefined));
    }
  }
  if (!listedTest) {
    for (const [id, paths] of groupImages(join(root, 'imagesTs'), listNifti(join(root, 'imagesTs')), fileEnding, true)) {
      const candidate = join(root, 'labelsTs', `${id}${fileEnding}`);
      cases.push(makeCase(id, 'test', paths, existsSync(candidate) ? candidate : undefined));
    }
  }
  return finishDataset({
    root,
    layout: 'msd',
    name: typeof json.name === 'string' ? json.name : basename(root),
    description: typeof json.description === 'string' ? json.description : '',
    channelNames,
    labels,
    fileEnding,
    numTraining,
    jsonPath,
    cases,
  });
}

// ---------------------------------------------------------------------------------------------
// Validation

export const DatasetProblemKind = {
  missingFile: 'missing-file',
  unreadable: 'unreadable',
  countMismatch: 'count-mismatch',
  channelMismatch: 'channel-mismatch',
  shapeMismatch: 'shape-mismatch',
  geometryMismatch: 'geometry-mismatch',
  nonIntegerLabel: 'non-integer-label',
  undeclaredLabel: 'undeclared-label',
} as const;
export type DatasetProblemKind = (typeof DatasetProblemKind)[keyof typeof DatasetProblemKind];

export interface DatasetProblem {
  readonly kind: DatasetProblemKind;
  /** The file the problem is in (absolute). */
  readonly file: string;
  readonly caseId: string | undefined;
  /** One line, starting with the file name. */
  readonly message: string;
}

export interface ValidateOptions {
  /** Read voxels (shapes, geometry, label values, NaNs); false checks files exist only (default true). */
  readVoxels?: boolean;
  /** Called after each case, for progress bars. */
  onCase?: (done: number, total: number) => void;
}

/**
 * Checks a dataset and returns every problem found (empty = valid): missing files,
 * unreadable or non-finite images, numTraining disagreeing with the case list,
 * channels or image/label differing in shape or geometry (shape first, then spacing,
 * origin, direction with tolerances 1e-4 relative, 1e-3 mm, 1e-4), non-integer label
 * values, and label values not declared in dataset.json. Reads one case at a time.
 */
export async function validateDataset(dataset: Dataset, options: ValidateOptions = {}): Promise<DatasetProblem[]> {
  const problems: DatasetProblem[] = [];
  const add = (kind: DatasetProblemKind, file: string, caseId: string | undefined, message: string): void => {
    problems.push({ kind, file, caseId, message: `${file}: ${message}` });
  };
  if (dataset.numTraining !== undefined && dataset.jsonPath !== undefined) {
    const found = dataset.cases.filter((c) => c.split === 'train').length;
    if (found !== dataset.numTraining) add('count-mismatch', dataset.jsonPath, undefined, `numTraining is ${dataset.numTraining} but ${found} training cases were found`);
  }
  const declared = [...dataset.labels.keys()].sort((a, b) => a - b);
  let done = 0;
  for (const c of dataset.cases) {
    const missing = (path: string, role: string): boolean => {
      if (existsSync(path)) return false;
      add('missing-file', path, c.id, `file not found (case ${c.id}, ${role})`);
      return true;
    };
    const images: (Volume | undefined)[] = [];
    for (let ch = 0; ch < dataset.channelNames.length; ch++) {
      const path = c.imagePaths[ch];
      if (path === undefined) {
        add('missing-file', join(dataset.root, c.id), c.id, `case ${c.id} has no image for channel ${ch} (${dataset.channelNames[ch]})`);
        continue;
      }
      if (missing(path, `image channel ${ch}`) || options.readVoxels === false) continue;
      images[ch] = await loadChecked(path, c.id, add);
    }
    const reference = images[0];
    const referencePath = c.imagePaths[0] as string;
    for (let ch = 1; ch < images.length; ch++) {
      const img = images[ch];
      if (reference === undefined || img === undefined) continue;
      const diff = gridDifference(reference, img);
      if (diff !== undefined) add('channel-mismatch', c.imagePaths[ch] as string, c.id, `channel ${ch} does not match channel 0 ${referencePath}: ${diff}`);
    }
    if (c.labelPath !== undefined && !missing(c.labelPath, 'label') && options.readVoxels !== false) {
      const label = await loadChecked(c.labelPath, c.id, add);
      if (label !== undefined) {
        if (reference !== undefined) {
          const diff = gridDifference(reference, label);
          if (diff !== undefined) {
            add(label.shape.some((d, i) => d !== reference.shape[i]) ? 'shape-mismatch' : 'geometry-mismatch', c.labelPath, c.id, `label does not match image ${referencePath}: ${diff}`);
          }
        }
        const values = new Set<number>();
        const nonInteger = new Set<number>();
        for (const v of label.data) {
          if (Number.isInteger(v)) values.add(v);
          else nonInteger.add(v);
        }
        if (nonInteger.size > 0) add('non-integer-label', c.labelPath, c.id, `label map has non-integer values ${[...nonInteger].sort((a, b) => a - b).slice(0, 5).join(', ')}${nonInteger.size > 5 ? ', …' : ''}`);
        if (declared.length > 0) {
          const undeclared = [...values].filter((v) => !dataset.labels.has(v)).sort((a, b) => a - b);
          if (undeclared.length > 0) {
            add('undeclared-label', c.labelPath, c.id, `label value${undeclared.length > 1 ? 's' : ''} ${undeclared.join(', ')} not declared in dataset.json labels (declared: ${declared.join(', ')})`);
          }
        }
      }
    }
    options.onCase?.(++done, dataset.cases.length);
  }
  return problems;
}

async function loadChecked(path: string, caseId: string, add: (kind: DatasetProblemKind, file: string, caseId: string | undefined, message: string) => void): Promise<Volume | undefined> {
  try {
    return await readNifti(path, { requireFinite: true });
  } catch (err) {
    if (!(err instanceof NiftiError)) throw err;
    // NiftiError messages start with the path; keep the rest.
    add('unreadable', path, caseId, err.message.startsWith(`${path}: `) ? err.message.slice(path.length + 2) : err.message);
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

export interface DatasetMeta {
  readonly name: string;
  readonly description?: string;
  /** Channel names by index, e.g. ["CT"]. */
  readonly channelNames: readonly string[];
  /** Label value → name; must include 0 (background). */
  readonly labels: ReadonlyMap<number, string>;
  /** Default ".nii.gz". */
  readonly fileEnding?: '.nii.gz' | '.nii';
  /** Extra top-level fields for dataset.json (e.g. provenance). */
  readonly extra?: Readonly<Record<string, unknown>>;
}

export interface CaseToWrite {
  /** Letters, digits, '.', '-', '_'; must not itself end in a 4-digit channel suffix. */
  readonly id: string;
  /** 'train' → imagesTr/labelsTr; 'test' → imagesTs/labelsTs. */
  readonly split: 'train' | 'test';
  /** One volume per channel, in channel order. */
  readonly channels: readonly Volume[];
  readonly label?: Volume;
}

/**
 * Writes a dataset in the nnU-Net v2 layout (readable by {@link openDataset}): each
 * case's files are written atomically as they come; dataset.json is written last
 * (atomically) by {@link DatasetWriter.finish}, so a folder without dataset.json is an
 * unfinished write. dataset.json holds name, description, channel_names,
 * labels (name → int), numTraining, numTest, file_ending and any extra fields.
 */
export class DatasetWriter {
  private readonly root: string;
  private readonly ending: string;
  private readonly ids = new Set<string>();
  private numTraining = 0;
  private numTest = 0;
  private finished = false;

  constructor(root: string, private readonly meta: DatasetMeta) {
    this.root = resolve(root);
    this.ending = meta.fileEnding ?? '.nii.gz';
    if (meta.channelNames.length === 0) throw new DatasetError('dataset needs at least one channel name');
    if (!meta.labels.has(0)) throw new DatasetError('dataset labels must declare 0 (background)');
  }

  /** Writes one case's images (and label). Returns the paths written. */
  writeCase(c: CaseToWrite): string[] {
    if (this.finished) throw new DatasetError(`${this.root}: dataset already finished; cannot add case ${c.id}`);
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(c.id) || CHANNEL_SUFFIX.test(c.id)) {
      throw new DatasetError(`case id must be letters, digits, '.', '-', '_' and not end in _NNNN, got ${JSON.stringify(c.id)}`);
    }
    if (this.ids.has(c.id)) throw new DatasetError(`case id ${c.id} written twice`);
    if (c.channels.length !== this.meta.channelNames.length) {
      throw new DatasetError(`case ${c.id}: ${c.channels.length} channels given, the dataset has ${this.meta.channelNames.length} (${this.meta.channelNames.join(', ')})`);
    }
    if (c.label !== undefined) {
      const diff = gridDifference(c.channels[0] as Volume, c.label);
      if (diff !== undefined) throw new DatasetError(`case ${c.id}: label does not match the image: ${diff}`);
    }
    const [imagesDir, labelsDir] = c.split === 'train' ? ['imagesTr', 'labelsTr'] : ['imagesTs', 'labelsTs'];
    const written: string[] = [];
    c.channels.forEach((v, ch) => {
      const path = join(this.root, imagesDir, `${c.id}_${String(ch).padStart(4, '0')}${this.ending}`);
      writeNifti(path, v);
      written.push(path);
    });
    if (c.label !== undefined) {
      const path = join(this.root, labelsDir, `${c.id}${this.ending}`);
      writeNifti(path, c.label);
      written.push(path);
    }
    this.ids.add(c.id);
    if (c.split === 'train') this.numTraining++;
    else this.numTest++;
    return written;
  }

  /** Writes dataset.json (last, atomically) and returns its path. */
  finish(): string {
    const path = join(this.root, 'dataset.json');
    const labels: Record<string, number> = {};
    for (const [value, name] of [...this.meta.labels].sort((a, b) => a[0] - b[0])) labels[name] = value;
    writeJsonAtomic(path, {
      name: this.meta.name,
      description: this.meta.description ?? '',
      channel_names: Object.fromEntries(this.meta.channelNames.map((n, i) => [String(i), n])),
      labels,
      numTraining: this.numTraining,
      numTest: this.numTest,
      file_ending: this.ending,
      ...this.meta.extra,
    });
    this.finished = true;
    return path;
  }
}
