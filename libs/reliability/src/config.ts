import { invalidInput } from './errors';

/** How anchor patches that would cross the slice edge are handled. */
export const BorderMode = {
  /** Edge anchors are moved inward so every patch lies inside the slice. */
  Shift: 'shift',
  /** Anchors stay on the regular grid; patch pixels outside the slice are 0 (normalised units). */
  Pad: 'pad',
} as const;
export type BorderMode = (typeof BorderMode)[keyof typeof BorderMode];

/** Settings of one reliability computation (mirrors proto `ReliabilityConfig`). */
export interface ReliabilityOptions {
  /** Anchor patch side in pixels (square, in-plane); 1 ≤ patchSize ≤ min(H, W). */
  readonly patchSize: number;
  /** Grid stride in pixels = region cell side; 1 ≤ stride ≤ patchSize (so every pixel is covered). */
  readonly stride: number;
  /** Default `shift`. */
  readonly borderMode?: BorderMode;
  /** Split each grid cell into one region per predicted (pseudo-label) class. Default false. */
  readonly splitByClass?: boolean;
  /** σ of the Gaussian stitching weights as a fraction of the patch side. Default 0.25. */
  readonly sigmaFraction?: number;
  /** Patches per `predict` call. Default 64. */
  readonly batchSize?: number;
  /** `predict` calls in flight at once. Default 2. */
  readonly concurrency?: number;
}

export type ResolvedOptions = Required<ReliabilityOptions>;

export const DEFAULT_OPTIONS = Object.freeze({
  borderMode: BorderMode.Shift,
  splitByClass: false,
  sigmaFraction: 0.25,
  batchSize: 64,
  concurrency: 2,
});

const positiveInt = (v: number): boolean => Number.isSafeInteger(v) && v > 0;

/**
 * Validates options against an image of shape `[z, y, x]` and fills defaults.
 * Throws {@link ReliabilityError} naming the field (`config.<name>`, or `image.shape_zyx`).
 */
export function resolveOptions(options: ReliabilityOptions, shapeZyx: readonly number[]): ResolvedOptions {
  if (shapeZyx.length !== 3 || shapeZyx.some((d) => !positiveInt(d))) {
    throw invalidInput('image.shape_zyx', 'must have 3 positive dims [z, y, x]', [...shapeZyx]);
  }
  const [, h, w] = shapeZyx as [number, number, number];
  const { patchSize, stride } = options;
  if (!positiveInt(stride)) throw invalidInput('config.stride', 'must be an integer > 0', stride);
  if (!positiveInt(patchSize)) throw invalidInput('config.patch_size', 'must be an integer > 0', patchSize);
  if (patchSize > h || patchSize > w) {
    throw invalidInput('config.patch_size', `must not exceed the image (${h} × ${w} pixels, [y, x])`, patchSize);
  }
  if (stride > patchSize) {
    throw invalidInput('config.stride', `must not exceed config.patch_size (${patchSize}), or pixels between patches are never predicted`, stride);
  }
  const borderMode: string = options.borderMode ?? DEFAULT_OPTIONS.borderMode;
  if (borderMode !== BorderMode.Shift && borderMode !== BorderMode.Pad) {
    throw invalidInput('config.border_mode', `must be "${BorderMode.Shift}" or "${BorderMode.Pad}"`, borderMode);
  }
  const sigmaFraction = options.sigmaFraction ?? DEFAULT_OPTIONS.sigmaFraction;
  // Below ~0.05 the corner weights underflow towards 0 and stitching loses pixels.
  if (!(sigmaFraction >= 0.05 && sigmaFraction <= 10)) throw invalidInput('config.sigma_fraction', 'must be a number in [0.05, 10]', sigmaFraction);
  const batchSize = options.batchSize ?? DEFAULT_OPTIONS.batchSize;
  if (!positiveInt(batchSize)) throw invalidInput('config.patch_batch_size', 'must be an integer > 0', batchSize);
  const concurrency = options.concurrency ?? DEFAULT_OPTIONS.concurrency;
  if (!positiveInt(concurrency)) throw invalidInput('config.concurrency', 'must be an integer > 0', concurrency);
  return { patchSize, stride, borderMode: borderMode, splitByClass: options.splitByClass ?? false, sigmaFraction, batchSize, concurrency };
}
