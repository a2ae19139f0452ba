import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFolderAtomic } from './atomic-dir';
import { resolveUNetConfig, type UNetConfig } from './config';
import { EmaTeacher } from './ema';
import { CheckpointError } from './errors';
import { Adam, type ResolvedAdamConfig } from './optimizer';
import type { Rng } from './rng';
import type { SegModel, WeightSnapshot } from './seg-model';
import { buildUNet } from './unet';

export const CHECKPOINT_FORMAT = 'purify-checkpoint';
export const CHECKPOINT_VERSION = 1;
export const MANIFEST_FILE = 'manifest.json';

/** What a checkpoint captures. */
export interface TrainingState {
  readonly model: SegModel;
  readonly optimizer: Adam;
  readonly ema?: EmaTeacher | undefined;
  /** Further random streams to save by name (e.g. the data loader's), restored with `restoreRngs`. */
  readonly rngs?: Readonly<Record<string, Rng>> | undefined;
  /** The caller's own JSON-serialisable data (epoch, metrics, data position…). */
  readonly extra?: unknown;
}

interface BlobRef {
  readonly file: string;
  readonly bytes: number;
  readonly sha256: string;
}

interface TensorEntry {
  readonly name: string;
  readonly shape: number[];
  readonly trainable: boolean;
}

/** `manifest.json`: written last, describes and checksums the binary files (float32 little-endian). */
export interface CheckpointManifest {
  readonly format: typeof CHECKPOINT_FORMAT;
  readonly version: typeof CHECKPOINT_VERSION;
  readonly createdAt: string;
  readonly unet: UNetConfig;
  /** `weights.bin`: every model weight, in `tensors` order. */
  readonly weights: BlobRef & { readonly tensors: TensorEntry[] };
  /** `optimizer.bin`: Adam first moments of the trainable weights, then second moments, in `tensors` order. */
  readonly optimizer: BlobRef & { readonly config: ResolvedAdamConfig; readonly step: number };
  /** `ema.bin`: the teacher's weights in `tensors` order. */
  readonly ema: (BlobRef & { readonly alpha: number; readonly updates: number }) | null;
  /** Generator states (uint32): `model` is the model's dropout stream. */
  readonly rng: Readonly<Record<string, number>>;
  readonly extra: unknown;
}

export interface LoadedCheckpoint {
  readonly model: SegModel;
  readonly optimizer: Adam;
  readonly ema: EmaTeacher | undefined;
  /** Saved states of the extra streams (`TrainingState.rngs`). */
  readonly rngStates: Readonly<Record<string, number>>;
  readonly extra: unknown;
  readonly manifest: CheckpointManifest;
  /** Disposes the model, optimiser and teacher. */
  dispose(): void;
}

function toBytes(arrays: readonly Float32Array[]): Uint8Array {
  const total = arrays.reduce((n, a) => n + a.length, 0);
  const out = new Uint8Array(total * 4);
  const view = new DataView(out.buffer);
  let o = 0;
  for (const a of arrays) for (let i = 0; i < a.length; i++, o += 4) view.setFloat32(o, a[i]!, true);
  return out;
}

function fromBytes(bytes: Uint8Array, sizes: readonly number[]): Float32Array[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let o = 0;
  return sizes.map((n) => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++, o += 4) a[i] = view.getFloat32(o, true);
    return a;
  });
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const blob = (file: string, bytes: Uint8Array): BlobRef => ({ file, bytes: bytes.length, sha256: sha256(bytes) });
const sizeOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/**
 * Saves weights, Adam state (moments, step, schedule), the EMA teacher and the
 * random-generator states to the folder `dir`, atomically (see
 * `writeFolderAtomic`: a temporary folder renamed into place; an existing
 * checkpoint at `dir` is replaced). Files: `weights.bin`, `optimizer.bin`,
 * `ema.bin` (with a teacher), `manifest.json`.
 */
export async function saveCheckpoint(dir: string, state: TrainingState): Promise<void> {
  const { model, optimizer, ema } = state;
  const weights = model.getWeights();
  const adam = optimizer.getState();
  const weightBytes = toBytes(weights.map((w) => w.values));
  const adamBytes = toBytes([...adam.m, ...adam.v]);
  const emaBytes = ema === undefined ? undefined : toBytes(alignTo(weights, ema.model.getWeights(), 'ema').map((w) => w.values));
  const rng: Record<string, number> = { model: model.rng.state };
  for (const [name, r] of Object.entries(state.rngs ?? {})) {
    if (name === 'model') throw new CheckpointError(`saveCheckpoint: rng name 'model' is reserved for the model's dropout stream`);
    rng[name] = r.state;
  }
  const manifest: CheckpointManifest = {
    format: CHECKPOINT_FORMAT,
    version: CHECKPOINT_VERSION,
    createdAt: new Date().toISOString(),
    unet: model.config,
    weights: { ...blob('weights.bin', weightBytes), tensors: weights.map((w) => ({ name: w.name, shape: [...w.shape], trainable: w.trainable })) },
    optimizer: { ...blob('optimizer.bin', adamBytes), config: optimizer.config, step: adam.step },
    ema: ema === undefined || emaBytes === undefined ? null : { ...blob('ema.bin', emaBytes), alpha: ema.alpha, updates: ema.updates },
    rng,
    extra: state.extra ?? null,
  };
  const files: [string, Uint8Array][] = [
    ['weights.bin', weightBytes],
    ['optimizer.bin', adamBytes],
  ];
  if (emaBytes !== undefined) files.push(['ema.bin', emaBytes]);
  files.push([MANIFEST_FILE, Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`, 'utf8')]);
  await writeFolderAtomic(dir, files);
}

/** Orders `other` like `reference` by name (the teacher is built from the same config). */
function alignTo(reference: readonly WeightSnapshot[], other: readonly WeightSnapshot[], what: string): WeightSnapshot[] {
  const byName = new Map(other.map((w) => [w.name, w]));
  return reference.map((r) => {
    const w = byName.get(r.name);
    if (w === undefined) throw new CheckpointError(`saveCheckpoint: ${what} has no weight '${r.name}'`);
    return w;
  });
}

async function readBlob(dir: string, ref: BlobRef | undefined, field: string): Promise<Uint8Array> {
  if (ref === undefined || typeof ref.file !== 'string' || ref.file.includes('/') || ref.file.includes('\\')) {
    throw new CheckpointError(`checkpoint '${dir}': manifest field '${field}' must name a file in the folder, got ${JSON.stringify(ref)}`);
  }
  const path = join(dir, ref.file);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new CheckpointError(`checkpoint '${dir}': cannot read ${ref.file} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  if (bytes.length !== ref.bytes) throw new CheckpointError(`checkpoint '${dir}': ${ref.file} must be ${ref.bytes} bytes, got ${bytes.length}`);
  if (sha256(bytes) !== ref.sha256) throw new CheckpointError(`checkpoint '${dir}': ${ref.file} is corrupt (sha256 differs from the manifest)`);
  return bytes;
}

export interface LoadCheckpointOptions {
  /** Name prefix of the restored model (default: a fresh one). */
  readonly namePrefix?: string;
  /** Name prefix of the restored teacher (default `<model prefix>ema_`). */
  readonly emaNamePrefix?: string;
}

/**
 * Rebuilds model, optimiser, teacher and dropout-generator state from a
 * checkpoint folder; training continues exactly as it would have without the
 * interruption. Throws {@link CheckpointError} naming the folder and file for a
 * missing manifest, unknown format, size/checksum mismatch or shape mismatch.
 */
export async function loadCheckpoint(dir: string, options: LoadCheckpointOptions = {}): Promise<LoadedCheckpoint> {
  let manifest: CheckpointManifest;
  try {
    manifest = JSON.parse(await readFile(join(dir, MANIFEST_FILE), 'utf8')) as CheckpointManifest;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CheckpointError(
      code === 'ENOENT' ? `checkpoint '${dir}': ${MANIFEST_FILE} is missing` : `checkpoint '${dir}': ${MANIFEST_FILE} is not valid JSON (${String(err)})`,
    );
  }
  if (manifest.format !== CHECKPOINT_FORMAT || manifest.version !== CHECKPOINT_VERSION) {
    throw new CheckpointError(
      `checkpoint '${dir}': expected format '${CHECKPOINT_FORMAT}' version ${CHECKPOINT_VERSION}, got '${String(manifest.format)}' version ${String(manifest.version)}`,
    );
  }
  const tensors = manifest.weights?.tensors;
  if (!Array.isArray(tensors)) throw new CheckpointError(`checkpoint '${dir}': manifest field 'weights.tensors' must be an array`);
  const sizes = tensors.map((t) => sizeOf(t.shape));
  const trainableSizes = tensors.filter((t) => t.trainable).map((t) => sizeOf(t.shape));
  const weightBytes = await readBlob(dir, manifest.weights, 'weights');
  const adamBytes = await readBlob(dir, manifest.optimizer, 'optimizer');
  const emaBytes = manifest.ema === null ? undefined : await readBlob(dir, manifest.ema, 'ema');
  const total = sizes.reduce((a, b) => a + b, 0);
  const trainableTotal = trainableSizes.reduce((a, b) => a + b, 0);
  if (weightBytes.length !== total * 4) throw new CheckpointError(`checkpoint '${dir}': weights.bin must hold ${total} float32 values for the listed tensors, got ${weightBytes.length / 4}`);
  if (adamBytes.length !== trainableTotal * 8) throw new CheckpointError(`checkpoint '${dir}': optimizer.bin must hold ${2 * trainableTotal} float32 values, got ${adamBytes.length / 4}`);

  const snapshot = (arrays: Float32Array[]): WeightSnapshot[] => tensors.map((t, i) => ({ name: t.name, shape: t.shape, trainable: t.trainable, values: arrays[i]! }));
  let config: UNetConfig;
  try {
    config = resolveUNetConfig(manifest.unet);
  } catch (err) {
    throw new CheckpointError(`checkpoint '${dir}': ${(err as Error).message}`);
  }
  const model = buildUNet(config, options.namePrefix === undefined ? {} : { namePrefix: options.namePrefix });
  let optimizer: Adam | undefined;
  let ema: EmaTeacher | undefined;
  try {
    model.setWeights(snapshot(fromBytes(weightBytes, sizes)));
    model.rng.state = manifest.rng['model'] ?? model.rng.state;
    optimizer = new Adam(model.trainableVariables(), { ...manifest.optimizer.config, learningRate: manifest.optimizer.config.schedule });
    const moments = fromBytes(adamBytes, [...trainableSizes, ...trainableSizes]);
    optimizer.setState({ step: manifest.optimizer.step, m: moments.slice(0, trainableSizes.length), v: moments.slice(trainableSizes.length) });
    if (manifest.ema !== null && emaBytes !== undefined) {
      if (emaBytes.length !== total * 4) throw new CheckpointError(`checkpoint '${dir}': ema.bin must hold ${total} float32 values, got ${emaBytes.length / 4}`);
      ema = EmaTeacher.create(model, { alpha: manifest.ema.alpha, ...(options.emaNamePrefix === undefined ? {} : { namePrefix: options.emaNamePrefix }) });
      ema.model.setWeights(snapshot(fromBytes(emaBytes, sizes)));
      ema.updates = manifest.ema.updates;
    }
  } catch (err) {
    ema?.dispose();
    optimizer?.dispose();
    model.dispose();
    if (err instanceof CheckpointError) throw err;
    throw new CheckpointError(`checkpoint '${dir}' does not match its model: ${(err as Error).message}`);
  }
  const rngStates = Object.fromEntries(Object.entries(manifest.rng).filter(([k]) => k !== 'model'));
  const opt = optimizer;
  return {
    model,
    optimizer: opt,
    ema,
    rngStates,
    extra: manifest.extra,
    manifest,
    dispose: () => {
      ema?.dispose();
      opt.dispose();
      model.dispose();
    },
  };
}
