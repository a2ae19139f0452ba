/**
 * Publishing a trained model: ONNX graph + weights + meta.json as a new version in
 * the model registry of `@purify/artifacts`.
 */
import { execFileSync } from 'node:child_process';
import { ModelRegistry, type ModelClass, type ModelMeta, type ModelVersion, type NormalizationSpec } from '@purify/artifacts';
import { exportOnnx, ONNX_INPUT_NAME, ONNX_OPSET, ONNX_OUTPUT_NAME, type SegModel } from '@purify/models';
import { TrainingDataError } from './errors';
import { encodeWeights } from './weights';

export interface PublishModelOptions {
  /** Artifact store root (the registry lives in `<artifactsDir>/models`). */
  readonly artifactsDir: string;
  readonly name: string;
  readonly model: SegModel;
  /** Index 0 is background; must have the model's number of classes. */
  readonly classes: readonly ModelClass[];
  /** Network tile `[y, x]` in pixels. */
  readonly inputSizeYx: readonly [number, number];
  /** In-plane spacing (x, y) mm the model was trained at. */
  readonly spacingXyMm?: readonly [number, number] | undefined;
  readonly normalization: NormalizationSpec;
  readonly provenance: Readonly<Record<string, string>>;
  readonly metrics: ModelMeta['metrics'];
}

/**
 * Exports the model to ONNX (input `image` float32 `[N, C, H, W]`, output
 * `probabilities` `[N, K, H, W]`, opset {@link ONNX_OPSET}, BatchNorm folded) and
 * publishes it with its weights file (see `weights.ts`) and meta.json. Returns
 * the new version.
 */
export function publishSegmentationModel(o: PublishModelOptions): ModelVersion {
  if (o.classes.length !== o.model.config.numClasses || o.classes.some((c, i) => c.index !== i)) {
    throw new TrainingDataError(
      `classes must list indices 0..${o.model.config.numClasses - 1} for a model with ${o.model.config.numClasses} outputs, got [${o.classes.map((c) => `${c.index}:${c.name}`).join(', ')}]`,
    );
  }
  checkRegistryClasses(o.artifactsDir, o.name, o.classes);
  const onnx = exportOnnx(o.model);
  const registry = new ModelRegistry(o.artifactsDir);
  return registry.publish(
    o.name,
    { onnx, weights: encodeWeights(o.model) },
    {
      classes: o.classes.map((c) => ({ index: c.index, name: c.name })),
      inputChannels: o.model.config.inputChannels,
      inputSizeYx: [o.inputSizeYx[0], o.inputSizeYx[1]],
      ...(o.spacingXyMm === undefined ? {} : { spacingXyMm: [o.spacingXyMm[0], o.spacingXyMm[1]] as const }),
      normalization: o.normalization,
      onnx: { input: ONNX_INPUT_NAME, output: ONNX_OUTPUT_NAME, opset: ONNX_OPSET },
      provenance: o.provenance,
      metrics: o.metrics,
    },
  );
}

/**
 * Versions of one model name are interchangeable: refuses to publish classes that
 * differ from the latest existing version's (throws {@link TrainingDataError}).
 */
export function checkRegistryClasses(artifactsDir: string, name: string, classes: readonly ModelClass[]): void {
  const registry = new ModelRegistry(artifactsDir);
  if (registry.versions(name).length === 0) return;
  const { meta } = registry.get(name);
  const a = meta.classes.map((c) => `${c.index}:${c.name}`).join(', ');
  const b = classes.map((c) => `${c.index}:${c.name}`).join(', ');
  if (a !== b) {
    throw new TrainingDataError(`class mismatch: model "${name}" version ${meta.version} in ${registry.root} has classes [${a}], this training has [${b}]; publish under another name`);
  }
}

/** `git rev-parse HEAD` in `cwd`, or undefined outside a repository / without git. */
export function gitCommit(cwd = process.cwd()): string | undefined {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 }).trim() || undefined;
  } catch {
    return undefined;
  }
}
