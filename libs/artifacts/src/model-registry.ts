import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from './atomic';

/**
 * The model registry: one folder per model version on the artifact store,
 *
 *   <root>/models/<name>/<version>/model.onnx      the inference graph
 *   <root>/models/<name>/<version>/weights.bin     trainable weights (framework-specific)
 *   <root>/models/<name>/<version>/meta.json       {@link ModelMeta}
 *
 * Versions are consecutive integers from 1. A version folder is assembled in a
 * hidden temporary folder and renamed into place, so readers see a complete
 * version or none; versions are never modified afterwards.
 */

export const MODEL_FILES = { onnx: 'model.onnx', weights: 'weights.bin', meta: 'meta.json' } as const;

export interface ModelClass {
  readonly index: number;
  readonly name: string;
}

/** How input intensities are normalised before the network (mirrors proto Normalization). */
export type NormalizationSpec =
  | { readonly kind: 'ct-window'; readonly lowHu: number; readonly highHu: number }
  | { readonly kind: 'percentile'; readonly low: number; readonly high: number }
  | { readonly kind: 'zscore' };

export interface ModelMeta {
  readonly name: string;
  readonly version: number;
  /** Index 0 is background. */
  readonly classes: readonly ModelClass[];
  readonly inputChannels: number;
  /** Network tile [y, x] in pixels; larger slices are tiled (sliding window). */
  readonly inputSizeYx: readonly [number, number];
  /** In-plane spacing (x, y) mm the model was trained at; undefined = use the input's own grid. */
  readonly spacingXyMm?: readonly [number, number];
  readonly normalization: NormalizationSpec;
  /** ONNX graph I/O: input float32 [N, C, H, W], output softmax float32 [N, classes, H, W]. */
  readonly onnx: { readonly input: string; readonly output: string; readonly opset: number; readonly sha256: string };
  /** Where it came from: job id, method, datasets, commit, seed … */
  readonly provenance: Readonly<Record<string, string>>;
  readonly metrics: readonly { readonly name: string; readonly value: number; readonly split: string }[];
  readonly createdAt: string;
}

export class RegistryError extends Error {
  override readonly name = 'RegistryError';
  constructor(
    message: string,
    readonly kind: 'not-found' | 'invalid' | 'corrupt',
  ) {
    super(message);
  }
}

export interface ModelVersion {
  readonly dir: string;
  readonly meta: ModelMeta;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export class ModelRegistry {
  readonly root: string;

  constructor(artifactsDir: string) {
    this.root = join(artifactsDir, 'models');
  }

  /** Version numbers of `name`, ascending. */
  versions(name: string): number[] {
    checkName(name);
    const dir = join(this.root, name);
    if (!existsSync(dir)) return [];
    return readdirSync(dir)
      .filter((d) => /^[1-9]\d*$/.test(d) && statSync(join(dir, d)).isDirectory())
      .map(Number)
      .sort((a, b) => a - b);
  }

  /** Model names with at least one version. */
  names(): string[] {
    if (!existsSync(this.root)) return [];
    return readdirSync(this.root)
      .filter((n) => NAME.test(n) && this.versions(n).length > 0)
      .sort();
  }

  /** Resolves `version` 0 to the latest; throws not-found naming what exists. */
  resolve(name: string, version: number): number {
    const versions = this.versions(name);
    if (versions.length === 0) throw new RegistryError(`model "${name}" is not in the registry at ${this.root}`, 'not-found');
    if (version === 0) return versions[versions.length - 1] as number;
    if (!versions.includes(version)) {
      throw new RegistryError(`model "${name}" has no version ${version} (versions: ${versions.join(', ')})`, 'not-found');
    }
    return version;
  }

  /** Reads a version's meta and checks its files; version 0 = latest. */
  get(name: string, version = 0): ModelVersion {
    const v = this.resolve(name, version);
    const dir = join(this.root, name, String(v));
    for (const file of [MODEL_FILES.onnx, MODEL_FILES.meta]) {
      if (!existsSync(join(dir, file))) throw new RegistryError(`model ${name}:${v} is missing ${file} in ${dir}`, 'corrupt');
    }
    let meta: ModelMeta;
    try {
      meta = JSON.parse(readFileSync(join(dir, MODEL_FILES.meta), 'utf8')) as ModelMeta;
    } catch (err) {
      throw new RegistryError(`model ${name}:${v} has an unreadable meta.json: ${(err as Error).message}`, 'corrupt');
    }
    if (meta.name !== name || meta.version !== v) {
      throw new RegistryError(`model ${name}:${v} has meta.json for ${meta.name}:${meta.version}`, 'corrupt');
    }
    return { dir, meta };
  }

  /**
   * Publishes a new version of `name` and returns it. `meta` omits what the
   * registry assigns (name, version, createdAt, onnx.sha256).
   */
  publish(
    name: string,
    files: { onnx: Uint8Array; weights?: Uint8Array },
    meta: Omit<ModelMeta, 'name' | 'version' | 'createdAt' | 'onnx'> & { onnx: Omit<ModelMeta['onnx'], 'sha256'> },
  ): ModelVersion {
    checkName(name);
    const modelDir = join(this.root, name);
    mkdirSync(modelDir, { recursive: true });
    const sha256 = createHash('sha256').update(files.onnx).digest('hex');
    for (let attempt = 0; attempt < 20; attempt++) {
      const version = (this.versions(name).at(-1) ?? 0) + 1;
      const staging = join(modelDir, `.staging-${process.pid}-${Date.now()}-${attempt}`);
      mkdirSync(staging);
      try {
        const full: ModelMeta = { ...meta, name, version, createdAt: new Date().toISOString(), onnx: { ...meta.onnx, sha256 } };
        writeFileAtomic(join(staging, MODEL_FILES.onnx), files.onnx);
        if (files.weights) writeFileAtomic(join(staging, MODEL_FILES.weights), files.weights);
        writeJsonAtomic(join(staging, MODEL_FILES.meta), full);
        const target = join(modelDir, String(version));
        if (existsSync(target)) continue; // another writer took this number; try the next
        renameSync(staging, target);
        return { dir: target, meta: full };
      } finally {
        rmSync(staging, { recursive: true, force: true });
      }
    }
    throw new RegistryError(`could not allocate a version for model "${name}" (too many concurrent publishers)`, 'invalid');
  }
}

function checkName(name: string): void {
  if (!NAME.test(name) || name.includes('..')) {
    throw new RegistryError(`model name must match [A-Za-z0-9][A-Za-z0-9._-]* (at most 128 characters), got ${JSON.stringify(name)}`, 'invalid');
  }
}
