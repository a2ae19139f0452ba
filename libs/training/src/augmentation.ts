/**
 * Seeded training augmentation of one 2D sample (image `[h, w]` in [0, 1], its
 * label map and weight map): a small spatial transform applied identically to all
 * three (image linear, label nearest, weights linear with 0 outside), then an
 * appearance change of the image only (DESIGN.md stage A: appearance
 * augmentation is what prepares the source model for the domain shift).
 *
 * The appearance step draws one *view* of the image:
 * - the global chain of @purify/imaging's `randomAppearance` — random monotonic
 *   and non-monotonic intensity curves, gamma, contrast, bias field, blur, noise;
 * - GIN, a random shallow convolution network (`randomConvAppearance`);
 * - class-wise location-scale remapping (`classwiseRemap`): each labelled
 *   structure and the background get their own intensity curve.
 * GIN and class-wise views are followed by the `post` chain (bias field, blur,
 * noise). With probability `ipa.p` a second, independently drawn view is blended
 * with the first through a smooth random mask (IPA-style), so the appearance
 * varies across the image in ways unrelated to the anatomy.
 *
 * Presets are a documented, versioned list ({@link AUGMENT_PRESETS}, docs/training.md):
 * a model's provenance records `<name>@<version>`.
 */
import {
  blendImages,
  classwiseRemap,
  randomAppearance,
  randomConvAppearance,
  sampleSpatialTransform,
  smoothRandomMask,
  warpSample,
  type AppearanceOptions,
  type ClasswiseRemapOptions,
  type ImageArray,
  type RandomConvOptions,
  type Rng,
  type SpatialOptions,
} from '@purify/imaging';
import { TrainingConfigError } from './errors';

export interface AugmentConfig {
  /** Probability of applying a spatial transform to a sample. */
  readonly pSpatial: number;
  readonly spatial: SpatialOptions;
  /** Probability of applying an appearance change to a sample (the view, then each transform of a chain with its own probability). */
  readonly pAppearance: number;
  /** The global intensity chain. */
  readonly appearance: AppearanceOptions;
  /** GIN: probability that a view is a random-convolution view, and the network's options. */
  readonly gin?: { readonly p: number; readonly options?: RandomConvOptions } | undefined;
  /** Class-wise remapping: probability that a view is class-wise (needs the label map), and its options. */
  readonly classwise?: { readonly p: number; readonly options?: ClasswiseRemapOptions } | undefined;
  /** IPA: probability of blending two independently drawn views through a smooth random mask. */
  readonly ipa?: { readonly p: number } | undefined;
  /** Chain applied after a GIN or class-wise view (bias field, blur, noise; default none). */
  readonly post?: AppearanceOptions | undefined;
}

/** Preset names: `none` (oracle, validation), `light`, `strong`, and the appearance-agnostic `gin`, `classwise`, `gin-classwise`. */
export const AugmentLevel = { None: 'none', Light: 'light', Strong: 'strong', Gin: 'gin', Classwise: 'classwise', GinClasswise: 'gin-classwise' } as const;
export type AugmentLevel = (typeof AugmentLevel)[keyof typeof AugmentLevel];

/** A preset: its config and version (bumped whenever the config changes, so a recorded `name@version` always means one config). */
export interface AugmentPreset {
  readonly version: number;
  readonly description: string;
  readonly config: AugmentConfig;
}

const NONE: AugmentConfig = { pSpatial: 0, spatial: {}, pAppearance: 0, appearance: {} };
const STRONG_SPATIAL: SpatialOptions = { maxRotationDeg: 12, scaleRange: [0.88, 1.12], maxTranslationVoxels: 4, elasticVoxels: 1.5, elasticWaves: 3 };
const STRONG_APPEARANCE: AppearanceOptions = { pCurve: 0.6, pNonMonotonic: 0.5, pGamma: 0.4, gammaRange: [0.6, 1.6], pContrast: 0.3, contrastRange: [0.7, 1.3], pBias: 0.4, biasStrength: 0.3, pBlur: 0.2, blurSigmaRange: [0.5, 1.0], pNoise: 0.35, noiseSigmaRange: [0, 0.05] };
/** After a GIN or class-wise view: the strong chain's acquisition effects, no intensity curves. */
const POST: AppearanceOptions = { pCurve: 0, pGamma: 0, pContrast: 0, pBias: 0.4, biasStrength: 0.3, pBlur: 0.2, blurSigmaRange: [0.5, 1.0], pNoise: 0.35, noiseSigmaRange: [0, 0.05] };
const STRONG: AugmentConfig = { pSpatial: 0.5, spatial: STRONG_SPATIAL, pAppearance: 0.8, appearance: STRONG_APPEARANCE };
const GIN_OPTIONS: RandomConvOptions = { layers: 4, channels: 2, kernelSizes: [1, 3] };
const CLASSWISE_OPTIONS: ClasswiseRemapOptions = { boundarySigma: 1 };

// No flips: left and right kidney (and liver vs spleen) are told apart by side.
export const AUGMENT_PRESETS: Readonly<Record<AugmentLevel, AugmentPreset>> = Object.freeze({
  none: { version: 1, description: 'no augmentation (the oracle, validation)', config: NONE },
  light: {
    version: 1,
    description: 'mild spatial and global intensity changes',
    config: {
      pSpatial: 0.3,
      spatial: { maxRotationDeg: 8, scaleRange: [0.92, 1.08], maxTranslationVoxels: 2, elasticVoxels: 0 },
      pAppearance: 0.5,
      appearance: { pCurve: 0.2, pNonMonotonic: 0.3, pGamma: 0.3, gammaRange: [0.8, 1.25], pContrast: 0.3, pBias: 0.2, biasStrength: 0.2, pBlur: 0.1, pNoise: 0.2, noiseSigmaRange: [0, 0.03] },
    },
  },
  strong: { version: 1, description: 'spatial + elastic, random monotonic and non-monotonic global intensity curves, gamma, contrast, bias field, blur, noise', config: STRONG },
  gin: {
    version: 1,
    description: 'strong, with half the views drawn by GIN (random 4-layer convolution networks) and IPA blends of two views',
    config: { ...STRONG, pAppearance: 0.9, gin: { p: 0.5, options: GIN_OPTIONS }, ipa: { p: 0.3 }, post: POST },
  },
  classwise: {
    version: 1,
    description: 'strong, with half the views class-wise Bézier location-scale remaps (SLAug-style) and IPA blends of two views',
    config: { ...STRONG, pAppearance: 0.9, classwise: { p: 0.5, options: CLASSWISE_OPTIONS }, ipa: { p: 0.3 }, post: POST },
  },
  'gin-classwise': {
    version: 1,
    description: 'strong, with a third of the views GIN, a third class-wise remaps, and IPA blends of two views',
    config: { ...STRONG, pAppearance: 0.9, gin: { p: 1 / 3, options: GIN_OPTIONS }, classwise: { p: 1 / 3, options: CLASSWISE_OPTIONS }, ipa: { p: 0.3 }, post: POST },
  },
});

/** `name@version` of a preset, as provenance records it. */
export function augmentPresetId(level: AugmentLevel): string {
  return `${level}@${AUGMENT_PRESETS[level].version}`;
}

/**
 * A preset by name (`strong`) or versioned name (`strong@1`: refused when the
 * version is not the current one), or a full config checked field by field.
 */
export function resolveAugment(value: string | AugmentConfig): AugmentConfig {
  if (typeof value === 'string') return AUGMENT_PRESETS[parseAugmentLevel(value)].config;
  const prob = (field: string, p: unknown): void => {
    if (!(typeof p === 'number' && p >= 0 && p <= 1)) throw new TrainingConfigError(`augment.${field} must be a probability in [0, 1], got ${JSON.stringify(p)}`);
  };
  prob('pSpatial', value.pSpatial);
  prob('pAppearance', value.pAppearance);
  if (value.gin !== undefined) prob('gin.p', value.gin.p);
  if (value.classwise !== undefined) prob('classwise.p', value.classwise.p);
  if (value.ipa !== undefined) prob('ipa.p', value.ipa.p);
  if ((value.gin?.p ?? 0) + (value.classwise?.p ?? 0) > 1 + 1e-9) throw new TrainingConfigError(`augment.gin.p + augment.classwise.p must be ≤ 1 (they share the views), got ${value.gin?.p} + ${value.classwise?.p}`);
  return value;
}

/** The preset name of `strong` or `strong@1`; throws naming the known presets and their versions. */
export function parseAugmentLevel(value: string): AugmentLevel {
  const [name, version] = value.split('@') as [string, string | undefined];
  const preset = (AUGMENT_PRESETS as Record<string, AugmentPreset | undefined>)[name];
  const known = (Object.keys(AUGMENT_PRESETS) as AugmentLevel[]).map(augmentPresetId).join(', ');
  if (preset === undefined) throw new TrainingConfigError(`augment must be one of ${known} (the version may be left out) or a config object, got ${JSON.stringify(value)}`);
  if (version !== undefined && version !== String(preset.version)) {
    throw new TrainingConfigError(`augment ${JSON.stringify(value)}: preset ${name} is at version ${preset.version} in this release; use ${name}@${preset.version} (or ${name})`);
  }
  return name as AugmentLevel;
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

const NO_POST: AppearanceOptions = { pCurve: 0, pGamma: 0, pContrast: 0, pBias: 0, pBlur: 0, pNoise: 0 };

/** One appearance view of `image` (see the module comment). */
function drawView(image: ImageArray, label: ImageArray<Int32Array>, config: AugmentConfig, rng: Rng): ImageArray {
  const pGin = config.gin?.p ?? 0;
  const pClasswise = config.classwise?.p ?? 0;
  // Only configs with GIN or class-wise views draw the view type, so light/strong draw exactly as their version 1 did.
  const u = pGin + pClasswise > 0 ? rng.next() : 1;
  if (u < pGin) return randomAppearance(randomConvAppearance(image, rng, config.gin?.options), rng, config.post ?? NO_POST);
  if (u < pGin + pClasswise) return randomAppearance(classwiseRemap(image, label, rng, config.classwise?.options), rng, config.post ?? NO_POST);
  return randomAppearance(image, rng, config.appearance);
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
  if (doAppearance) {
    const img: ImageArray = { data: image, shape };
    const lab: ImageArray<Int32Array> = { data: label, shape };
    let view = drawView(img, lab, config, rng);
    if (config.ipa !== undefined && config.ipa.p > 0 && rng.bool(config.ipa.p)) {
      const other = drawView(img, lab, config, rng);
      view = blendImages(view, other, smoothRandomMask(shape[0], shape[1], rng));
    }
    image = view.data;
  }
  return {
    image: image === sample.image ? Float32Array.from(image) : image,
    label: label === sample.label ? Int32Array.from(label) : label,
    weight: weight === sample.weight ? Float32Array.from(weight) : weight,
  };
}
