import { resolveOptions, type ReliabilityOptions } from './config';
import { decomposeAndCompose, type PatchPredictor } from './decompose';
import { computeFeatures, type ReliabilityResult } from './features';
import { buildGrid } from './grid';

export interface ScoreInputs {
  /** Normalised image, float32 `[z, c, y, x]` (the model's input units). */
  readonly image: Float32Array;
  readonly shapeZyx: readonly [number, number, number];
  /** Channels c of `image` (the model's input channels). Default 1. */
  readonly channels?: number;
  /** Whole-image class probabilities, float32 `[K, z, y, x]`. */
  readonly whole: Float32Array;
  readonly predict: PatchPredictor;
  /** Flip view, flipped back to the image frame, `[K, z, y, x]` (optional). */
  readonly flip?: Float32Array | undefined;
  /** Appearance-perturbed view, `[K, z, y, x]` (optional). */
  readonly appearance?: Float32Array | undefined;
  readonly round?: number;
  readonly options: ReliabilityOptions;
  readonly signal?: AbortSignal;
}

/**
 * Decompose → compose → region features, scores and maps, in one call
 * (DESIGN §4 steps 2–4). The whole-image and view probabilities come from the
 * caller; only the anchor patches go through `predict`.
 */
export async function scoreReliability(inputs: ScoreInputs): Promise<ReliabilityResult> {
  const options = resolveOptions(inputs.options, inputs.shapeZyx);
  const grid = buildGrid(inputs.shapeZyx, options);
  const [z, h, w] = inputs.shapeZyx;
  const k = inputs.whole.length / (z * h * w);
  const composition = await decomposeAndCompose(inputs.image, inputs.channels ?? 1, grid, inputs.predict, options, {
    ...(Number.isInteger(k) && k > 0 ? { numClasses: k } : {}),
    ...(inputs.signal ? { signal: inputs.signal } : {}),
  });
  return computeFeatures({
    grid,
    whole: inputs.whole,
    composition,
    flip: inputs.flip,
    appearance: inputs.appearance,
    round: inputs.round ?? 0,
    splitByClass: options.splitByClass,
  });
}
