/**
 * A registry model version loaded into an onnxruntime session, with its meta
 * checked against the graph.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { MODEL_FILES, type ModelMeta, type ModelVersion } from '@purify/artifacts';
import { InferenceError } from './errors';
import { createSession, type ExecutionProvider, type SessionConfig } from './execution';
import { OnnxFormatError, readOnnxHeader, type OnnxModelHeader } from './onnx-metadata';

/** Name and resolved version of a loaded model. */
export interface ModelKey {
  readonly name: string;
  readonly version: number;
}

/** A float32 tensor in NCHW layout: `data` is C-ordered `[n, c, h, w]`, w fastest. */
export interface Nchw {
  readonly data: Float32Array;
  /** [n, c, h, w]. */
  readonly shape: readonly [number, number, number, number];
}

/** Largest class count a uint8 label map can hold. */
export const MAX_CLASSES = 256;

function fail(key: ModelKey, message: string, cause?: unknown): InferenceError {
  return InferenceError.failedPrecondition(`model ${key.name}:${key.version}: ${message}`, cause);
}

const isPositiveInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;
const show = (v: unknown): string => JSON.stringify(v) ?? 'nothing';

/** Checks the fields of meta.json that inference relies on; throws FAILED_PRECONDITION naming the field. */
function checkMeta(key: ModelKey, meta: ModelMeta): void {
  const bad = (field: string, expected: string, got: unknown): InferenceError => fail(key, `meta.json \`${field}\` ${expected}, got ${show(got)}`);
  const classes: unknown = meta.classes;
  if (!Array.isArray(classes) || classes.length < 2 || classes.length > MAX_CLASSES) {
    throw bad('classes', `must list 2 to ${MAX_CLASSES} classes (background first)`, Array.isArray(classes) ? `${classes.length} classes` : classes);
  }
  classes.forEach((c: { index?: unknown; name?: unknown }, i) => {
    if (c?.index !== i || typeof c.name !== 'string') throw bad(`classes[${i}]`, `must be {index: ${i}, name: string}`, c);
  });
  if (!isPositiveInt(meta.inputChannels)) throw bad('inputChannels', 'must be a positive integer', meta.inputChannels);
  const size: unknown = meta.inputSizeYx;
  if (!Array.isArray(size) || size.length !== 2 || !size.every(isPositiveInt)) throw bad('inputSizeYx', 'must be two positive integers [y, x]', size);
  if (meta.spacingXyMm !== undefined) {
    const s: unknown = meta.spacingXyMm;
    if (!Array.isArray(s) || s.length !== 2 || !s.every((v) => typeof v === 'number' && Number.isFinite(v) && v > 0)) {
      throw bad('spacingXyMm', 'must be two positive mm values (x, y) when present', s);
    }
  }
  const n = meta.normalization as { kind?: unknown; lowHu?: unknown; highHu?: unknown; low?: unknown; high?: unknown } | undefined;
  const num = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
  if (n?.kind === 'ct-window') {
    if (!num(n.lowHu) || !num(n.highHu) || !(n.highHu > n.lowHu)) throw bad('normalization', 'ct-window must have finite lowHu < highHu', n);
  } else if (n?.kind === 'percentile') {
    if (!num(n.low) || !num(n.high) || !(n.low >= 0 && n.low < n.high && n.high <= 100)) throw bad('normalization', 'percentile must have 0 ≤ low < high ≤ 100', n);
  } else if (n?.kind !== 'zscore') {
    throw bad('normalization.kind', "must be 'ct-window', 'percentile' or 'zscore'", n?.kind);
  }
  if (typeof meta.onnx?.input !== 'string' || typeof meta.onnx.output !== 'string') throw bad('onnx', 'must name the graph input and output', meta.onnx);
}

/** Information about a loaded model (no session handle). */
export interface LoadedModelInfo {
  readonly key: ModelKey;
  readonly meta: ModelMeta;
  readonly dir: string;
  readonly sha256: string;
  readonly numClasses: number;
  readonly sizeMultiple: number;
  readonly executionProvider: ExecutionProvider;
  readonly providerNote: string | undefined;
  readonly loadedAt: Date;
  readonly loadMs: number;
}

/**
 * A model version ready to run. Loading checks, in order: meta.json fields,
 * model.onnx against the sha256 recorded in meta.json, the ONNX header, the
 * session, the graph's input/output names, and a probe run on one zero tile
 * (which gives the class count even when the graph's dims are symbolic). Every
 * failure is an {@link InferenceError} of kind `failed-precondition` naming the
 * model and what is wrong.
 */
export class LoadedModel implements LoadedModelInfo {
  private disposed = false;

  private constructor(
    readonly key: ModelKey,
    readonly meta: ModelMeta,
    readonly dir: string,
    readonly sha256: string,
    readonly header: OnnxModelHeader,
    private readonly session: ort.InferenceSession,
    readonly numClasses: number,
    readonly sizeMultiple: number,
    readonly executionProvider: ExecutionProvider,
    readonly providerNote: string | undefined,
    readonly loadedAt: Date,
    readonly loadMs: number,
  ) {}

  static async load(version: ModelVersion, config: SessionConfig): Promise<LoadedModel> {
    const started = performance.now();
    const { meta, dir } = version;
    const key = { name: meta.name, version: meta.version };
    checkMeta(key, meta);
    const path = join(dir, MODEL_FILES.onnx);
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(path);
    } catch (err) {
      throw fail(key, `cannot read ${path}: ${(err as Error).message}`, err);
    }
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    if (typeof meta.onnx.sha256 === 'string' && meta.onnx.sha256 !== sha256) {
      throw fail(key, `model.onnx does not match meta.json (sha256 recorded ${meta.onnx.sha256}, file has ${sha256}): the file is corrupt or was replaced`);
    }
    let header: OnnxModelHeader;
    try {
      header = readOnnxHeader(bytes);
    } catch (err) {
      if (err instanceof OnnxFormatError) throw fail(key, `model.onnx is not an ONNX model (${err.message})`, err);
      throw err;
    }
    const multipleText = header.metadata['purify.size_multiple'];
    const sizeMultiple = multipleText === undefined ? 1 : Number(multipleText);
    if (!isPositiveInt(sizeMultiple)) throw fail(key, `model.onnx metadata purify.size_multiple must be a positive integer, got ${show(multipleText)}`);
    const [th, tw] = meta.inputSizeYx;
    if (th % sizeMultiple !== 0 || tw % sizeMultiple !== 0) {
      throw fail(key, `meta.json \`inputSizeYx\` must be multiples of the graph's size multiple ${sizeMultiple}, got [${th}, ${tw}]`);
    }
    let created;
    try {
      created = await createSession(bytes, config);
    } catch (err) {
      throw fail(key, `onnxruntime cannot load model.onnx: ${(err as Error).message}`, err);
    }
    const { session } = created;
    try {
      if (!session.inputNames.includes(meta.onnx.input)) {
        throw fail(key, `meta.json names graph input "${meta.onnx.input}" but model.onnx has inputs [${session.inputNames.join(', ')}]`);
      }
      if (!session.outputNames.includes(meta.onnx.output)) {
        throw fail(key, `meta.json names graph output "${meta.onnx.output}" but model.onnx has outputs [${session.outputNames.join(', ')}]`);
      }
      const inputMeta = session.inputMetadata.find((m) => m.name === meta.onnx.input);
      const channelDim = inputMeta?.isTensor ? inputMeta.shape[1] : undefined;
      if (typeof channelDim === 'number' && channelDim !== meta.inputChannels) {
        throw fail(key, `meta.json \`inputChannels\` is ${meta.inputChannels} but graph input "${meta.onnx.input}" takes ${channelDim} channels`);
      }
      const classes = meta.classes.length;
      const declared = header.metadata['purify.num_classes'];
      if (declared !== undefined && Number(declared) !== classes) {
        throw fail(key, `class-count mismatch: meta.json lists ${classes} classes but model.onnx declares purify.num_classes = ${declared}`);
      }
      // Probe: one zero tile [1, C, th, tw] → [1, K, th, tw].
      const probeShape: [number, number, number, number] = [1, meta.inputChannels, th, tw];
      let probe: ort.Tensor;
      try {
        const out = await session.run({ [meta.onnx.input]: new ort.Tensor('float32', new Float32Array(meta.inputChannels * th * tw), probeShape) });
        probe = out[meta.onnx.output] as ort.Tensor;
      } catch (err) {
        throw fail(key, `probe run on a zero tile [${probeShape.join(', ')}] failed (does the graph take ${meta.inputChannels} input channels?): ${(err as Error).message}`, err);
      }
      const dims = probe.dims;
      if (dims.length !== 4 || dims[0] !== 1 || dims[2] !== th || dims[3] !== tw) {
        throw fail(key, `graph output "${meta.onnx.output}" must be [N, K, H, W] of the input's H and W; a [${probeShape.join(', ')}] tile gave [${dims.join(', ')}]`);
      }
      if (dims[1] !== classes) {
        throw fail(key, `class-count mismatch: meta.json lists ${classes} classes but model.onnx outputs ${dims[1]} (dim 1 of "${meta.onnx.output}")`);
      }
      return new LoadedModel(key, meta, dir, sha256, header, session, classes, sizeMultiple, created.provider, created.fallbackReason, new Date(), performance.now() - started);
    } catch (err) {
      await session.release();
      throw err;
    }
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Checks a batch for this model: float32 `[n, inputChannels, h, w]`, h and w positive multiples of the size multiple. */
  checkBatch(shape: readonly number[], field = 'batch'): void {
    const m = this.sizeMultiple;
    const c = this.meta.inputChannels;
    if (shape.length !== 4 || shape.some((d) => !Number.isInteger(d) || d <= 0)) {
      throw InferenceError.invalidArgument(`${field} must be [n, c, y, x] with positive dims, got [${shape.join(', ')}]`);
    }
    if (shape[1] !== c) {
      throw InferenceError.invalidArgument(`${field} has ${shape[1]} channels but model ${this.key.name}:${this.key.version} takes ${c}, got shape [${shape.join(', ')}]`);
    }
    if ((shape[2] as number) % m !== 0 || (shape[3] as number) % m !== 0) {
      throw InferenceError.invalidArgument(
        `${field} y and x must be multiples of ${m} (the size multiple of model ${this.key.name}:${this.key.version}), got shape [${shape.join(', ')}]`,
      );
    }
  }

  /**
   * Runs the network on a batch: `input` float32 `[n, c, h, w]` (normalised as the
   * meta says) → softmax probabilities float32 `[n, K, h, w]`. Synchronous inside
   * onnxruntime (the event loop is blocked for one run); batches are the unit of
   * cooperative scheduling.
   */
  async predictBatch(input: Nchw): Promise<Nchw> {
    if (this.disposed) throw fail(this.key, 'the session has been released');
    this.checkBatch(input.shape);
    const expected = input.shape.reduce((a, b) => a * b, 1);
    if (input.data.length !== expected) {
      throw InferenceError.invalidArgument(`batch data has ${input.data.length} values but shape [${input.shape.join(', ')}] needs ${expected}`);
    }
    const out = await this.session.run({ [this.meta.onnx.input]: new ort.Tensor('float32', input.data, [...input.shape]) });
    const t = out[this.meta.onnx.output] as ort.Tensor;
    const [n, , h, w] = input.shape;
    return { data: t.data as Float32Array, shape: [n, this.numClasses, h, w] };
  }

  /** Releases the session. Callers must not run it afterwards (the pool guarantees this with leases). */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.session.release();
  }

  info(): LoadedModelInfo {
    return {
      key: this.key,
      meta: this.meta,
      dir: this.dir,
      sha256: this.sha256,
      numClasses: this.numClasses,
      sizeMultiple: this.sizeMultiple,
      executionProvider: this.executionProvider,
      providerNote: this.providerNote,
      loadedAt: this.loadedAt,
      loadMs: this.loadMs,
    };
  }
}
