/**
 * Appearance-agnostic augmentation (stage A of DESIGN.md §4, v2): transforms that
 * change what tissues look like while keeping where they are, so that a model
 * trained on one modality has to rely on shape and context.
 *
 * - {@link randomConvAppearance} — GIN (Ouyang et al., IEEE TMI 2022): a shallow
 *   network of 1×1/3×3 convolutions with fresh N(0, 1) weights and biases per
 *   sample and leaky ReLUs, blended with the input by a random α and mapped back
 *   onto the input's intensity range.
 * - {@link classwiseRemap} — class-wise location-scale remapping (SLAug, Su et
 *   al., AAAI 2023): each labelled structure and the background get their own
 *   random Bézier intensity curve (monotone or not) and location-scale shift, so
 *   the contrast of an organ against its surroundings changes independently of
 *   the global window; the per-class results are blended across boundaries by
 *   Gaussian-smoothed class masks.
 * - {@link smoothRandomMask} + {@link blendImages} — the IPA-style spatially
 *   varying blend of two differently augmented copies of one image.
 *
 * Images are 2D `[y, x]` or 3D `[z, y, x]` float32 in [0, 1], C-ordered (x
 * fastest); 3D arrays are processed slice by slice with one draw for the whole
 * volume. Label maps are integer class indices of the same shape. Every random
 * choice comes from the {@link Rng} passed in.
 */
import { AugmentError, gaussianBlur, type ImageArray } from './augment';
import type { Rng } from './rng';
import type { VoxelArray } from './volume';

function sliceShape(shape: readonly number[], what: string): { nz: number; ny: number; nx: number } {
  if ((shape.length !== 2 && shape.length !== 3) || shape.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new AugmentError(`${what} shape must be [y, x] or [z, y, x] with positive sizes, got [${shape.join(', ')}]`);
  }
  return { nz: shape.length === 3 ? shape[0]! : 1, ny: shape[shape.length - 2]!, nx: shape[shape.length - 1]! };
}

function checkLength(img: ImageArray<VoxelArray>, what: string): { nz: number; ny: number; nx: number } {
  const s = sliceShape(img.shape, what);
  if (img.data.length !== s.nz * s.ny * s.nx) throw new AugmentError(`${what} has ${img.data.length} values but shape [${img.shape.join(', ')}] needs ${s.nz * s.ny * s.nx}`);
  return s;
}

function range(data: ArrayLike<number>): { min: number; max: number } {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < data.length; i++) {
    const v = data[i] as number;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return { min, max };
}

const clamp01 = (v: number): number => (v < 0 ? 0 : v > 1 ? 1 : v);

// ---------------------------------------------------------------------------------------------
// GIN: random shallow convolution networks

/** One layer of a random convolution network: `kernel` `[out, in, k, k]`, `bias` `[out]`, zero ('same') padding. */
export interface RandomConvLayer {
  readonly inChannels: number;
  readonly outChannels: number;
  /** Odd kernel size k. */
  readonly kernelSize: number;
  readonly kernel: Float32Array;
  readonly bias: Float32Array;
  /** Leaky ReLU after the layer (all but the last). */
  readonly activation: boolean;
}

/** A drawn network and its blend factor. */
export interface RandomConvNet {
  readonly layers: readonly RandomConvLayer[];
  /** Output = α·net(x) + (1 − α)·x before the range mapping. */
  readonly alpha: number;
  /** Slope of the leaky ReLUs for negative inputs. */
  readonly negativeSlope: number;
}

export interface RandomConvOptions {
  /** Convolution layers (default 4, at least 1). */
  readonly layers?: number;
  /** Channels between layers (default 2). */
  readonly channels?: number;
  /** Kernel sizes drawn from per layer (default [1, 3]; odd sizes). */
  readonly kernelSizes?: readonly number[];
  /** Leaky ReLU slope (default 0.01, PyTorch's). */
  readonly negativeSlope?: number;
  /** Range of the blend factor α (default [0, 1]). */
  readonly alphaRange?: readonly [number, number];
}

/** Draws a network: per layer a kernel size from `kernelSizes`, weights and biases N(0, 1), and α uniform in `alphaRange`. */
export function sampleRandomConvNet(rng: Rng, options: RandomConvOptions = {}): RandomConvNet {
  const n = options.layers ?? 4;
  const channels = options.channels ?? 2;
  const sizes = options.kernelSizes ?? [1, 3];
  if (!Number.isInteger(n) || n < 1) throw new AugmentError(`random conv layers must be an integer ≥ 1, got ${n}`);
  if (!Number.isInteger(channels) || channels < 1) throw new AugmentError(`random conv channels must be an integer ≥ 1, got ${channels}`);
  if (sizes.length === 0 || sizes.some((k) => !Number.isInteger(k) || k < 1 || k % 2 === 0)) throw new AugmentError(`random conv kernel sizes must be odd positive integers, got [${sizes.join(', ')}]`);
  const layers: RandomConvLayer[] = [];
  for (let l = 0; l < n; l++) {
    const inChannels = l === 0 ? 1 : channels;
    const outChannels = l === n - 1 ? 1 : channels;
    const k = sizes[rng.int(0, sizes.length)]!;
    const kernel = Float32Array.from({ length: outChannels * inChannels * k * k }, () => rng.normal());
    const bias = Float32Array.from({ length: outChannels }, () => rng.normal());
    layers.push({ inChannels, outChannels, kernelSize: k, kernel, bias, activation: l < n - 1 });
  }
  const [a0, a1] = options.alphaRange ?? [0, 1];
  return { layers, alpha: rng.uniform(a0, a1), negativeSlope: options.negativeSlope ?? 0.01 };
}

/** One layer on one slice: `input` `[in, ny, nx]` → `[out, ny, nx]`. */
function convLayer(layer: RandomConvLayer, input: Float32Array, ny: number, nx: number, negativeSlope: number): Float32Array {
  const { inChannels: ci, outChannels: co, kernelSize: k, kernel, bias } = layer;
  const r = (k - 1) / 2;
  const plane = ny * nx;
  const out = new Float32Array(co * plane);
  for (let o = 0; o < co; o++) {
    const dst = o * plane;
    out.fill(bias[o]!, dst, dst + plane);
    for (let i = 0; i < ci; i++) {
      const src = i * plane;
      for (let dy = -r; dy <= r; dy++) {
        for (let dx = -r; dx <= r; dx++) {
          const w = kernel[((o * ci + i) * k + (dy + r)) * k + (dx + r)]!;
          if (w === 0) continue;
          const y0 = Math.max(0, -dy);
          const y1 = Math.min(ny, ny - dy);
          const x0 = Math.max(0, -dx);
          const x1 = Math.min(nx, nx - dx);
          for (let y = y0; y < y1; y++) {
            const row = dst + y * nx;
            const srow = src + (y + dy) * nx + dx;
            for (let x = x0; x < x1; x++) out[row + x] = out[row + x]! + w * input[srow + x]!;
          }
        }
      }
    }
  }
  if (layer.activation) for (let j = 0; j < out.length; j++) if (out[j]! < 0) out[j] = out[j]! * negativeSlope;
  return out;
}

/**
 * Applies a drawn network to every axial slice: y = α·net(x) + (1 − α)·x, then
 * y is mapped linearly onto the input slice's own intensity range [min, max]
 * (a constant y maps to min). With all weights and biases 0 this is the
 * identity; the output stays in [0, 1] when the input is.
 */
export function applyRandomConvNet(img: ImageArray, net: RandomConvNet): ImageArray {
  const { nz, ny, nx } = checkLength(img, 'image');
  for (const [l, layer] of net.layers.entries()) {
    const want = layer.outChannels * layer.inChannels * layer.kernelSize * layer.kernelSize;
    if (layer.kernel.length !== want || layer.bias.length !== layer.outChannels) throw new AugmentError(`random conv layer ${l}: kernel needs ${want} values and bias ${layer.outChannels}, got ${layer.kernel.length} and ${layer.bias.length}`);
    const expectIn = l === 0 ? 1 : net.layers[l - 1]!.outChannels;
    if (layer.inChannels !== expectIn) throw new AugmentError(`random conv layer ${l} takes ${layer.inChannels} channels but receives ${expectIn}`);
  }
  if (net.layers.length > 0 && net.layers[net.layers.length - 1]!.outChannels !== 1) throw new AugmentError('the last random conv layer must have one output channel');
  const plane = ny * nx;
  const out = new Float32Array(img.data.length);
  for (let z = 0; z < nz; z++) {
    const x = img.data.subarray(z * plane, (z + 1) * plane);
    let h: Float32Array = x;
    for (const layer of net.layers) h = convLayer(layer, h, ny, nx, net.negativeSlope);
    const mixed = new Float32Array(plane);
    for (let j = 0; j < plane; j++) mixed[j] = net.alpha * h[j]! + (1 - net.alpha) * x[j]!;
    const src = range(x);
    const got = range(mixed);
    const scale = got.max > got.min ? (src.max - src.min) / (got.max - got.min) : 0;
    for (let j = 0; j < plane; j++) out[z * plane + j] = src.min + (mixed[j]! - got.min) * scale;
  }
  return { data: out, shape: [...img.shape] };
}

/** GIN: draws a network ({@link sampleRandomConvNet}) and applies it ({@link applyRandomConvNet}). */
export function randomConvAppearance(img: ImageArray, rng: Rng, options: RandomConvOptions = {}): ImageArray {
  return applyRandomConvNet(img, sampleRandomConvNet(rng, options));
}

// ---------------------------------------------------------------------------------------------
// Class-wise location-scale remapping

/** A piecewise-linear intensity map through increasing `xs` (clamped outside). */
export interface TabulatedCurve {
  readonly xs: Float64Array;
  readonly ys: Float64Array;
}

/** Evaluates a tabulated curve at v (linear interpolation, constant beyond the ends). */
export function evalCurve(curve: TabulatedCurve, v: number): number {
  const { xs, ys } = curve;
  const n = xs.length;
  if (v <= xs[0]!) return ys[0]!;
  if (v >= xs[n - 1]!) return ys[n - 1]!;
  let lo = 0;
  let hi = n - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (xs[mid]! <= v) lo = mid;
    else hi = mid;
  }
  const span = xs[hi]! - xs[lo]!;
  const f = span > 0 ? (v - xs[lo]!) / span : 0;
  return ys[lo]! + f * (ys[hi]! - ys[lo]!);
}

export interface BezierCurveOptions {
  /** Control points including the two ends (default 4). */
  readonly points?: number;
  /** Probability that the y control points are left unsorted, so the curve may fall or turn (default 0.5). */
  readonly pNonMonotonic?: number;
  /** Samples of the tabulated curve (default 256). */
  readonly samples?: number;
}

/**
 * A random Bézier intensity curve over [lo, hi]: the end control points are
 * (lo, lo) and (hi, hi), the inner ones uniform in [lo, hi]²; the sampled x
 * values are sorted, and so are the y values unless the draw (probability
 * `pNonMonotonic`) keeps them in curve order — then the map can fall, rise and
 * fall, or invert. Values stay within [lo, hi].
 */
export function randomBezierCurve(rng: Rng, lo: number, hi: number, options: BezierCurveOptions = {}): TabulatedCurve {
  const p = options.points ?? 4;
  const m = options.samples ?? 256;
  if (!Number.isInteger(p) || p < 2) throw new AugmentError(`Bézier control points must be an integer ≥ 2, got ${p}`);
  const px = [lo, ...Array.from({ length: p - 2 }, () => rng.uniform(lo, hi)), hi];
  const py = [lo, ...Array.from({ length: p - 2 }, () => rng.uniform(lo, hi)), hi];
  const nonMonotonic = rng.bool(options.pNonMonotonic ?? 0.5);
  const binom = (n: number, k: number): number => {
    let r = 1;
    for (let i = 1; i <= k; i++) r = (r * (n - k + i)) / i;
    return r;
  };
  const xs = new Float64Array(m);
  const ys = new Float64Array(m);
  for (let s = 0; s < m; s++) {
    const t = s / (m - 1);
    let x = 0;
    let y = 0;
    for (let i = 0; i < p; i++) {
      const b = binom(p - 1, i) * t ** i * (1 - t) ** (p - 1 - i);
      x += b * px[i]!;
      y += b * py[i]!;
    }
    xs[s] = x;
    ys[s] = y;
  }
  xs.sort();
  if (!nonMonotonic) ys.sort();
  else if (rng.bool(0.5)) ys.reverse(); // half of the unsorted draws also run from bright to dark: inversions
  return { xs, ys };
}

export interface ClasswiseRemapOptions {
  /** Number of classes K (label values 0..K−1; 0 = background). Default: max label + 1. */
  readonly numClasses?: number;
  /** σ in pixels of the Gaussian that softens the class masks at boundaries (default 1; 0 = hard masks). */
  readonly boundarySigma?: number;
  /** Probability of a non-monotone curve for a labelled structure (default 0.5). */
  readonly pNonMonotonic?: number;
  /** The same for the background (default 1, as SLAug). */
  readonly pNonMonotonicBackground?: number;
  /** Range the location-scale multiplier is clipped to (default [0.9, 1.1], drawn N(1, 0.1)). */
  readonly scaleRange?: readonly [number, number];
  /** Standard deviation of the additive location (default 0.5), clipped so the class's 20th–80th percentile stays in [0, 1]. */
  readonly locationSd?: number;
  /** Pixels at or below this input value keep it (air and padding; default 0.01; negative = none). */
  readonly backgroundThreshold?: number;
}

/** The drawn map of one class: Bézier curve, then v·scale + location, clamped to [0, 1]. */
export interface ClassMap {
  readonly curve: TabulatedCurve;
  readonly scale: number;
  readonly location: number;
}

/** Evaluates a class map at v. */
export function evalClassMap(map: ClassMap, v: number): number {
  return clamp01(evalCurve(map.curve, v) * map.scale + map.location);
}

function percentileOf(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  const pos = (p / 100) * (sorted.length - 1);
  const i = Math.floor(pos);
  const f = pos - i;
  return sorted[i]! + (i + 1 < sorted.length ? f * (sorted[i + 1]! - sorted[i]!) : 0);
}

/**
 * Draws one {@link ClassMap} per class present in `label` (in class order; a
 * class absent from the image draws nothing), each from that class's own
 * intensity range and percentiles in `img`.
 */
export function sampleClassMaps(img: ImageArray, label: ImageArray<VoxelArray>, rng: Rng, options: ClasswiseRemapOptions = {}): Map<number, ClassMap> {
  checkLength(img, 'image');
  checkLength(label, 'label');
  if (label.data.length !== img.data.length) throw new AugmentError(`label has ${label.data.length} values, the image ${img.data.length}`);
  const threshold = options.backgroundThreshold ?? 0.01;
  const values = new Map<number, number[]>();
  for (let i = 0; i < img.data.length; i++) {
    const c = label.data[i] as number;
    const v = img.data[i] as number;
    if (c === 0 && v <= threshold) continue; // air/padding keeps its value and does not shape the background curve
    let list = values.get(c);
    if (list === undefined) values.set(c, (list = []));
    list.push(v);
  }
  const [s0, s1] = options.scaleRange ?? [0.9, 1.1];
  const locationSd = options.locationSd ?? 0.5;
  const maps = new Map<number, ClassMap>();
  for (const c of [...values.keys()].sort((a, b) => a - b)) {
    const sorted = Float64Array.from(values.get(c)!).sort();
    const lo = sorted[0]!;
    const hi = sorted[sorted.length - 1]!;
    const pNon = c === 0 ? (options.pNonMonotonicBackground ?? 1) : (options.pNonMonotonic ?? 0.5);
    const curve = randomBezierCurve(rng, lo, hi, { pNonMonotonic: pNon });
    const scale = Math.min(Math.max(rng.normal(1, 0.1), s0), s1);
    // Clip the shift so the middle 60 % of the remapped class stays inside [0, 1].
    const mapped = Float64Array.from(sorted, (v) => evalCurve(curve, v) * scale).sort();
    const location = Math.min(Math.max(rng.normal(0, locationSd), -percentileOf(mapped, 20)), 1 - percentileOf(mapped, 80));
    maps.set(c, { curve, scale, location });
  }
  return maps;
}

/**
 * Applies class maps: every pixel's value v becomes Σ_c m_c·f_c(v), where f_c is
 * class c's map and m_c its mask softened by a Gaussian of `boundarySigma`
 * pixels in-plane (masks renormalised to sum 1; a pixel whose neighbourhood is
 * all one class follows that class's map exactly). Pixels at or below
 * `backgroundThreshold` keep their value. A class without a map (absent) uses
 * the identity.
 */
export function applyClassMaps(img: ImageArray, label: ImageArray<VoxelArray>, maps: ReadonlyMap<number, ClassMap>, options: ClasswiseRemapOptions = {}): ImageArray {
  checkLength(img, 'image');
  checkLength(label, 'label');
  const sigma = options.boundarySigma ?? 1;
  const threshold = options.backgroundThreshold ?? 0.01;
  if (!(sigma >= 0)) throw new AugmentError(`boundarySigma must be ≥ 0, got ${sigma}`);
  const n = img.data.length;
  const classes = [...new Set(Array.from(label.data as ArrayLike<number>))].sort((a, b) => a - b);
  const out = new Float32Array(n);
  const weightSum = new Float32Array(n);
  for (const c of classes) {
    const mask = new Float32Array(n);
    for (let i = 0; i < n; i++) mask[i] = (label.data[i] as number) === c ? 1 : 0;
    const soft = sigma > 0 ? gaussianBlur({ data: mask, shape: img.shape }, sigma).data : mask;
    const map = maps.get(c);
    for (let i = 0; i < n; i++) {
      const m = soft[i]!;
      if (m <= 0) continue;
      const v = img.data[i]!;
      out[i] = out[i]! + m * (map === undefined ? v : evalClassMap(map, v));
      weightSum[i] = weightSum[i]! + m;
    }
  }
  for (let i = 0; i < n; i++) {
    const v = img.data[i]!;
    if (v <= threshold) out[i] = v;
    else out[i] = clamp01(weightSum[i]! > 0 ? out[i]! / weightSum[i]! : v);
  }
  return { data: out, shape: [...img.shape] };
}

/** Class-wise remapping in one call: {@link sampleClassMaps} then {@link applyClassMaps}. */
export function classwiseRemap(img: ImageArray, label: ImageArray<VoxelArray>, rng: Rng, options: ClasswiseRemapOptions = {}): ImageArray {
  return applyClassMaps(img, label, sampleClassMaps(img, label, rng, options), options);
}

// ---------------------------------------------------------------------------------------------
// IPA-style spatially varying blend

export interface SmoothMaskOptions {
  /** Range of control points per axis, drawn per mask (default [2, 5]). */
  readonly gridRange?: readonly [number, number];
}

/**
 * A smooth random field in [0, 1] over one slice `[ny, nx]`: a g×g grid of
 * uniform control values (g drawn from `gridRange`) interpolated bicubically
 * (Catmull–Rom, clamped). Used as the blend map of two augmented copies.
 */
export function smoothRandomMask(ny: number, nx: number, rng: Rng, options: SmoothMaskOptions = {}): Float32Array {
  sliceShape([ny, nx], 'mask');
  const [g0, g1] = options.gridRange ?? [2, 5];
  if (!Number.isInteger(g0) || !Number.isInteger(g1) || g0 < 2 || g1 < g0) throw new AugmentError(`mask gridRange must be integers 2 ≤ a ≤ b, got [${g0}, ${g1}]`);
  const g = rng.int(g0, g1 + 1);
  const ctrl = Float64Array.from({ length: g * g }, () => rng.next());
  const at = (i: number, j: number): number => ctrl[Math.min(Math.max(i, 0), g - 1) * g + Math.min(Math.max(j, 0), g - 1)]!;
  const cr = (p0: number, p1: number, p2: number, p3: number, t: number): number =>
    0.5 * (2 * p1 + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t * t + (-p0 + 3 * p1 - 3 * p2 + p3) * t * t * t);
  const out = new Float32Array(ny * nx);
  for (let y = 0; y < ny; y++) {
    const u = ny > 1 ? (y / (ny - 1)) * (g - 1) : 0;
    const i = Math.min(Math.floor(u), g - 2);
    const ty = u - i;
    for (let x = 0; x < nx; x++) {
      const v = nx > 1 ? (x / (nx - 1)) * (g - 1) : 0;
      const j = Math.min(Math.floor(v), g - 2);
      const tx = v - j;
      const rows = [-1, 0, 1, 2].map((di) => cr(at(i + di, j - 1), at(i + di, j), at(i + di, j + 1), at(i + di, j + 2), tx));
      out[y * nx + x] = clamp01(cr(rows[0]!, rows[1]!, rows[2]!, rows[3]!, ty));
    }
  }
  return out;
}

/** m·a + (1 − m)·b per pixel; `mask` has one value per pixel of a slice and is reused for every slice of a volume. */
export function blendImages(a: ImageArray, b: ImageArray, mask: Float32Array): ImageArray {
  const { ny, nx } = checkLength(a, 'image a');
  checkLength(b, 'image b');
  if (a.data.length !== b.data.length) throw new AugmentError(`blend: images have ${a.data.length} and ${b.data.length} values`);
  const plane = ny * nx;
  if (mask.length !== plane) throw new AugmentError(`blend: mask has ${mask.length} values, a slice ${plane}`);
  const out = new Float32Array(a.data.length);
  for (let i = 0; i < out.length; i++) {
    const m = mask[i % plane]!;
    out[i] = m * a.data[i]! + (1 - m) * b.data[i]!;
  }
  return { data: out, shape: [...a.shape] };
}
