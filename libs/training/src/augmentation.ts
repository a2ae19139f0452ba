/**
 * Seeded training augmentation of one 2D sample (image `[h, w]` in [0, 1], its
 * label map and weight map): a small spatial transform applied identically to all
 * three (image linear, label nearest, weights linear with 0 outside), then
 * appearance changes of the image only — random gamma, monotonic and
 * non-monotonic intensity curves, contrast, bias field, blur and noise
 * (DESIGN.md stage A: appearance augmentation is what prepares the source model
 * for the domain shift).
 */
import { randomAppearance, sampleSpatialTransform, warpSample, type AppearanceOptions, type Rng, type SpatialOptions } from '@purify/imaging';
import { TrainingConfigError } from './errors';

export interface AugmentConfig {
  /** Probability of applying a spatial transform to a sample. */
  readonly pSpatial: number;
  readonly spatial: SpatialOptions;
  /** Probability of applying the appearance chain to a sample (each transform then has its own probability). */
  readonly pAppearance: number;
  readonly appearance: AppearanceOptions;
}

/** Preset strengths: `none` for the oracle and validation, `light`, and `strong` (the default for source models). */
export const AugmentLevel = { None: 'none', Light: 'light', Strong: 'strong' } as const;
export type AugmentLevel = (typeof AugmentLevel)[keyof typeof AugmentLevel];

// No flips: left and right kidney (and liver vs spleen) are told apart by side.
export const AUGMENT_PRESETS: Readonly<Record<AugmentLevel, AugmentConfig>> = Object.freeze({
  none: { pSpatial: 0, spatial: {}, pAppearance: 0, appearance: {} },
  light: {
    pSpatial: 0.3,
    spatial: { maxRotationDeg: 8, scaleRange: [0.92, 1.08], maxTranslationVoxels: 2, elasticVoxels: 0 },
    pAppearance: 0.5,
    appearance: { pCurve: 0.2, pNonMonotonic: 0.3, pGamma: 0.3, gammaRange: [0.8, 1.25], pContrast: 0.3, pBias: 0.2, biasStrength: 0.2, pBlur: 0.1, pNoise: 0.2, noiseSigmaRange: [0, 0.03] },
  },
  strong: {
    pSpatial: 0.5,
    spatial: { maxRotationDeg: 12, scaleRange: [0.88, 1.12], maxTranslationVoxels: 4, elasticVoxels: 1.5, elasticWaves: 3 },
    pAppearance: 0.8,
    appearance: { pCurve: 0.6, pNonMonotonic: 0.5, pGamma: 0.4, gammaRange: [0.6, 1.6], pContrast: 0.3, contrastRange: [0.7, 1.3], pBias: 0.4, biasStrength: 0.3, pBlur: 0.2, blurSigmaRange: [0.5, 1.0], pNoise: 0.35, noiseSigmaRange: [0, 0.05] },
  },
});

/** A preset by name, or a full config checked field by field. */
export function resolveAugment(value: AugmentLevel | AugmentConfig): AugmentConfig {
  if (typeof value === 'string') {
    const preset = (AUGMENT_PRESETS as Record<string, AugmentConfig | undefined>)[value];
    if (preset === undefined) throw new TrainingConfigError(`augment must be one of ${Object.values(AugmentLevel).join(', ')} or a config object, got ${JSON.stringify(value)}`);
    return preset;
  }
  for (const f of ['pSpatial', 'pAppearance'] as const) {
    if (!(value[f] >= 0 && value[f] <= 1)) throw new TrainingConfigError(`augment.${f} must be a probability in [0, 1], got ${JSON.stringify(value[f])}`);
  }
  return value;
}

/** One 2D training sample, `[h, w]` arrays, x fastest. */
export interface Sample2D {
  /** Image in [0, 1]. */
  readonly image: Float32Array;
  /** Class index per pixel. */
  readonly label: Int32Array;
  /** Supervision weight per pixel in [0, 1]. */
  readonly weight: Float32Array;
}

/**
 * Augments one sample of shape `[h, w]` with draws from `rng` (new arrays; the
 * input is not modified). Image/label/weight stay aligned: each output pixel of
 * all three reads the same source position.
 */
export function augmentSample(sample: Sample2D, shape: readonly [number, number], config: AugmentConfig, rng: Rng): Sample2D {
  let { image, label, weight } = sample;
  const doSpatial = config.pSpatial > 0 && rng.bool(config.pSpatial);
  if (doSpatial) {
    const t = sampleSpatialTransform(rng, shape, config.spatial);
    const warped = warpSample(t, { image: { data: image, shape }, label: { data: label, shape }, weight: { data: weight, shape } });
    image = warped.image.data;
    label = warped.label!.data as Int32Array;
    weight = warped.weight!.data;
  }
  const doAppearance = config.pAppearance > 0 && rng.bool(config.pAppearance);
  if (doAppearance) image = randomAppearance({ data: image, shape }, rng, config.appearance).data;
  return {
    image: image === sample.image ? Float32Array.from(image) : image,
    label: label === sample.label ? Int32Array.from(label) : label,
    weight: weight === sample.weight ? Float32Array.from(weight) : weight,
  };
}
