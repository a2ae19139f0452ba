import { ModelConfigError } from './errors';

/** Normalisation after each 3×3 convolution of a U-Net block. */
export const Norm = {
  /** BatchNormalization (momentum 0.9, epsilon 1e-5); running statistics at inference. */
  Batch: 'batch',
  /** Per-sample, per-channel normalisation over H×W with learned scale/shift (epsilon 1e-5). */
  Instance: 'instance',
  /** No normalisation; the convolutions carry a bias instead. */
  None: 'none',
} as const;
export type Norm = (typeof Norm)[keyof typeof Norm];

/** How the decoder doubles the spatial size. */
export const Upsampling = {
  /** 2×2 transposed convolution, stride 2 (halves the channels). */
  Transposed: 'transposed',
  /** Nearest-neighbour ×2 resize (each pixel repeated 2×2), then a 3×3 convolution halving the channels. */
  Nearest: 'nearest',
  /** Bilinear ×2 resize with half-pixel centres (PyTorch `align_corners=False`), then a 3×3 convolution halving the channels. */
  Bilinear: 'bilinear',
} as const;
export type Upsampling = (typeof Upsampling)[keyof typeof Upsampling];

/**
 * A 2D U-Net. Level l (0-based) works at 1/2^l of the input size with
 * `baseWidth · 2^l` channels; level `depth − 1` is the bottleneck. Each block is
 * two (3×3 conv → norm → ReLU); the encoder max-pools 2×2 between levels, the
 * decoder upsamples, concatenates the skip connection `[skip, up]` on channels
 * and runs a block; a 1×1 convolution gives class logits and a softmax the
 * probabilities. Input `[N, H, W, inputChannels]`, output `[N, H, W, numClasses]`,
 * with H and W divisible by 2^(depth − 1).
 */
export interface UNetConfig {
  /** Number of resolution levels including the bottleneck, in [1, 8]. */
  readonly depth: number;
  /** Channels of level 0 (doubling per level), integer in [1, 1024]. */
  readonly baseWidth: number;
  readonly norm: Norm;
  /** Dropout rate in [0, 1) after every block at levels ≥ 1 (encoder, bottleneck and decoder); 0 disables. */
  readonly dropout: number;
  readonly upsampling: Upsampling;
  /** Image channels C of the input `[N, H, W, C]`, integer ≥ 1. */
  readonly inputChannels: number;
  /** Output classes K (background included), integer ≥ 2. */
  readonly numClasses: number;
  /** Seed of the weight initialisers and of the dropout masks (integer). */
  readonly seed: number;
}

/**
 * The issue's reference U-Net: 3 levels of 16-32-64 channels, transposed-conv
 * upsampling, batch norm, no dropout; one CT channel in, background + 4 organs out.
 * 117,141 trainable parameters (117,781 with the BatchNorm running statistics).
 */
export const REFERENCE_UNET: UNetConfig = Object.freeze({
  depth: 3,
  baseWidth: 16,
  norm: Norm.Batch,
  dropout: 0,
  upsampling: Upsampling.Transposed,
  inputChannels: 1,
  numClasses: 5,
  seed: 0,
});

function intIn(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ModelConfigError(`UNetConfig.${field} must be an integer in [${min}, ${max}], got ${JSON.stringify(value)}`);
  }
  return value;
}

function oneOf<T extends string>(field: string, value: unknown, allowed: Readonly<Record<string, T>>): T {
  const values = Object.values(allowed);
  if (typeof value !== 'string' || !(values as string[]).includes(value)) {
    throw new ModelConfigError(`UNetConfig.${field} must be one of ${values.map((v) => `'${v}'`).join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value as T;
}

/**
 * Validates a (partial) U-Net configuration once at the edge: copies it, fills
 * defaults from {@link REFERENCE_UNET}, and rejects bad values with a
 * {@link ModelConfigError} naming the field and the received value.
 */
export function resolveUNetConfig(partial: Partial<UNetConfig> = {}): UNetConfig {
  const c = { ...REFERENCE_UNET, ...partial };
  const dropout = c.dropout;
  if (typeof dropout !== 'number' || !Number.isFinite(dropout) || dropout < 0 || dropout >= 1) {
    throw new ModelConfigError(`UNetConfig.dropout must be a number in [0, 1), got ${JSON.stringify(dropout)}`);
  }
  return Object.freeze({
    depth: intIn('depth', c.depth, 1, 8),
    baseWidth: intIn('baseWidth', c.baseWidth, 1, 1024),
    norm: oneOf('norm', c.norm, Norm),
    dropout,
    upsampling: oneOf('upsampling', c.upsampling, Upsampling),
    inputChannels: intIn('inputChannels', c.inputChannels, 1, 4096),
    numClasses: intIn('numClasses', c.numClasses, 2, 4096),
    seed: intIn('seed', c.seed, -0x80000000, 0xffffffff),
  });
}

/** Width (channels) of level `level`. */
export function levelWidth(config: UNetConfig, level: number): number {
  return config.baseWidth * 2 ** level;
}
