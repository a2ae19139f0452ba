/**
 * The region feature schema: the column layout of every feature row the
 * reliability service emits and the agent consumes. Changing a column's
 * meaning, order or range means a new `version`.
 */

/** How a raw feature value is brought into [0, 1] before a model reads it. */
export type FeatureTransform =
  | { readonly kind: 'none' }
  /** x / divisor */
  | { readonly kind: 'scale'; readonly divisor: number }
  /** min(max(x, 0), max) / max */
  | { readonly kind: 'clip-scale'; readonly max: number }
  /** (log10(max(x, floor)) − log10(floor)) / (log10(max) − log10(floor)), clipped to [0, 1]: small divergences spread out */
  | { readonly kind: 'log-scale'; readonly floor: number; readonly max: number };

/** One column (mirrors proto `FeatureSpec`, plus the machine-readable transform). */
export interface FeatureSpec {
  readonly name: string;
  readonly description: string;
  /** Range of the raw value. */
  readonly min: number;
  readonly max: number;
  /** The transform in words/formula (proto `normalization`). */
  readonly normalization: string;
  readonly transform: FeatureTransform;
}

export interface FeatureSchema {
  readonly version: string;
  readonly features: readonly FeatureSpec[];
}

/** Class-fraction columns: classes 0 … 6 on their own, 7 and above pooled. */
export const CLASS_FRACTION_COLUMNS = 8;

const NONE: FeatureTransform = { kind: 'none' };
const unit = (name: string, description: string): FeatureSpec => ({ name, description, min: 0, max: 1, normalization: 'none (already in [0, 1])', transform: NONE });

/**
 * Divergence floor of the log-scaled columns. The divergences the model makes
 * between views live in [0, 0.05] bits (docs/reliability.md: the reliability
 * study), where a linear [0, 1] scale leaves a policy network nothing to read;
 * on a log scale from 1e-4 the same values span most of [0, 1].
 */
export const DIVERGENCE_FLOOR = 1e-4;

const logScaled = (name: string, description: string, max: number): FeatureSpec => ({
  name,
  description,
  min: 0,
  max,
  normalization: `(log10(max(x, ${DIVERGENCE_FLOOR})) − log10(${DIVERGENCE_FLOOR})) / (log10(${max}) − log10(${DIVERGENCE_FLOOR})), clipped to [0, 1]`,
  transform: { kind: 'log-scale', floor: DIVERGENCE_FLOOR, max },
});

const classFractions: FeatureSpec[] = Array.from({ length: CLASS_FRACTION_COLUMNS }, (_, k) =>
  k < CLASS_FRACTION_COLUMNS - 1
    ? unit(`class_fraction_${k}`, `Fraction of the region's pixels whose pseudo-label is class ${k}${k === 0 ? ' (background)' : ''}.`)
    : unit(`class_fraction_${k}plus`, `Fraction of the region's pixels whose pseudo-label is class ${k} or higher.`),
);

/**
 * Version `v2`, 24 columns (v1 had the same raw columns; v2 reads the four
 * divergence/variance columns on a log scale). "Whole" = the whole-image prediction p_full (its
 * argmax is the pseudo-label), "composed" = the Gaussian-weighted stitching of
 * the independently predicted anchor patches p_comp. Every per-pixel quantity is
 * averaged over the region's pixels. JS divergences are in bits.
 */
export const FEATURE_SCHEMA: FeatureSchema = Object.freeze({
  version: 'v2',
  features: Object.freeze<FeatureSpec[]>([
    logScaled('js_divergence', 'Mean Jensen–Shannon divergence (bits) between whole and composed class probabilities; 0 = identical.', 1),
    unit('argmax_agreement', 'Fraction of pixels where the whole and composed argmax labels agree.'),
    unit('dice_mean', 'Dice of the whole vs composed argmax masks per class, averaged over the classes present in either within the region.'),
    logScaled('patch_variance', 'Mean over pixels and classes of the weighted variance of the class probability across the overlapping anchor patches.', 0.25),
    unit('max_probability', 'Mean of the largest whole-image class probability (confidence).'),
    unit('entropy', 'Mean entropy of the whole-image class probabilities divided by log K.'),
    ...classFractions,
    unit('foreground_fraction', 'Fraction of pixels whose pseudo-label is not background (class ≠ 0).'),
    unit('boundary_density', 'Fraction of pixels with a 4-neighbour (inside the slice) of another pseudo-label class.'),
    unit('flip_view', '1 when the horizontal-flip view was computed, else 0 (flip_js is then 0).'),
    logScaled('flip_js', 'Mean JS divergence (bits) between the whole prediction and the prediction of the horizontally flipped image, flipped back.', 1),
    unit('appearance_view', '1 when the appearance-perturbation view was computed, else 0 (appearance_js is then 0).'),
    logScaled('appearance_js', 'Mean JS divergence (bits) between the whole prediction and the prediction of the gamma/contrast-perturbed image.', 1),
    unit('region_fraction', "Region pixels / stride² (smaller for edge cells and class-split parts)."),
    {
      name: 'round',
      description: 'Adaptation round index (image-level context).',
      min: 0,
      max: 4294967295,
      normalization: 'min(x, 20) / 20',
      transform: { kind: 'clip-scale', max: 20 },
    },
    unit('slice_reliability', 'Mean per-pixel reliability of the whole slice (image-level context).'),
    unit('reliability', 'The fixed reliability score of the region (mean per-pixel reliability, see docs/reliability.md).'),
  ]),
});

/** Column index of every feature of {@link FEATURE_SCHEMA}, by name. */
export const FEATURE_INDEX: Readonly<Record<string, number>> = Object.freeze(Object.fromEntries(FEATURE_SCHEMA.features.map((f, i) => [f.name, i])));

export const NUM_FEATURES = FEATURE_SCHEMA.features.length;

/** Column index of `name`; throws on an unknown name. */
export function featureIndex(name: string): number {
  const i = FEATURE_INDEX[name];
  if (i === undefined) throw new RangeError(`unknown feature "${name}" (schema ${FEATURE_SCHEMA.version}: ${FEATURE_SCHEMA.features.map((f) => f.name).join(', ')})`);
  return i;
}

/** Applies each column's transform: raw `[rows, F]` → new Float32Array in [0, 1] (row-major). */
export function normalizeFeatures(raw: Float32Array, schema: FeatureSchema = FEATURE_SCHEMA): Float32Array {
  const f = schema.features.length;
  if (raw.length % f !== 0) throw new RangeError(`a feature matrix of schema ${schema.version} needs a multiple of ${f} values, got ${raw.length}`);
  const out = new Float32Array(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const t = (schema.features[i % f] as FeatureSpec).transform;
    const x = raw[i] as number;
    out[i] = applyTransform(t, x);
  }
  return out;
}

function applyTransform(t: FeatureTransform, x: number): number {
  switch (t.kind) {
    case 'none':
      return x;
    case 'scale':
      return x / t.divisor;
    case 'clip-scale':
      return Math.min(Math.max(x, 0), t.max) / t.max;
    case 'log-scale': {
      const lo = Math.log10(t.floor);
      return Math.min(Math.max((Math.log10(Math.max(x, t.floor)) - lo) / (Math.log10(t.max) - lo), 0), 1);
    }
  }
}
