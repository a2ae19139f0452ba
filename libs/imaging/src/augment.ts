/**
 * Seeded augmentation for normalised images (intensities in [0, 1]) and their label
 * and weight maps. Arrays are C-ordered, last axis fastest: 2D slices `[y, x]` or 3D
 * volumes `[z, y, x]`. Every random choice comes from the {@link Rng} passed in, so the
 * same seed gives the same output.
 *
 * Appearance transforms return a new Float32Array clamped to [0, 1].
 * Spatial transforms are sampled once ({@link sampleSpatialTransform}) as a map from
 * each output voxel to a source position, then applied to the image (linear), the
 * label map (nearest) and weight maps (linear) so that all stay aligned.
 * Distances are in voxels; rotations and elastic displacement act in-plane (y, x),
 * since through-plane spacing is usually coarser.
 */
import type { Rng } from './rng';
import type { VoxelArray } from './volume';

export class AugmentError extends Error {
  override readonly name = 'AugmentError';
}

export interface ImageArray<T extends VoxelArray = Float32Array> {
  /** C-ordered, last axis fastest. */
  readonly data: T;
  /** [y, x] or [z, y, x]. */
  readonly shape: readonly number[];
}

function checkShape(img: ImageArray<VoxelArray>, what = 'image'): void {
  if ((img.shape.length !== 2 && img.shape.length !== 3) || img.shape.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new AugmentError(`${what} shape must be [y, x] or [z, y, x] with positive sizes, got [${img.shape.join(', ')}]`);
  }
  const n = img.shape.reduce((a, b) => a * b, 1);
  if (img.data.length !== n) throw new AugmentError(`${what} has ${img.data.length} values but shape [${img.shape.join(', ')}] needs ${n}`);
}

const clamp01 = (v: number): number => (v < 0 ? 0 : v > 1 ? 1 : v);

function mapValues(img: ImageArray, f: (v: number) => number): ImageArray {
  checkShape(img);
  const out = new Float32Array(img.data.length);
  for (let i = 0; i < out.length; i++) out[i] = clamp01(f(img.data[i] as number));
  return { data: out, shape: [...img.shape] };
}

/** v' = clamp(v, 0, 1)^gamma. */
export function gammaTransform(img: ImageArray, gamma: number): ImageArray {
  if (!(gamma > 0)) throw new AugmentError(`gamma must be > 0, got ${gamma}`);
  return mapValues(img, (v) => Math.pow(clamp01(v), gamma));
}

/** v' = (v − mean)·factor + mean, mean over the whole array. */
export function adjustContrast(img: ImageArray, factor: number): ImageArray {
  let mean = 0;
  for (let i = 0; i < img.data.length; i++) mean += img.data[i] as number;
  mean /= Math.max(1, img.data.length);
  return mapValues(img, (v) => (v - mean) * factor + mean);
}

/** An intensity remapping [0, 1] → [0, 1]. */
export type IntensityCurve = (v: number) => number;

/** Applies a curve to clamp(v, 0, 1) through a 1025-entry lookup table with linear interpolation. */
export function applyCurve(img: ImageArray, curve: IntensityCurve): ImageArray {
  const n = 1024;
  const lut = new Float64Array(n + 1);
  for (let i = 0; i <= n; i++) lut[i] = curve(i / n);
  return mapValues(img, (v) => {
    const t = clamp01(v) * n;
    const i = Math.min(Math.floor(t), n - 1);
    const f = t - i;
    return (lut[i] as number) * (1 - f) + (lut[i + 1] as number) * f;
  });
}

/**
 * Monotone cubic (Fritsch–Carlson) interpolant through knots (xs increasing); it is
 * monotone wherever the knot values are.
 */
export function monotoneCubic(xs: readonly number[], ys: readonly number[]): IntensityCurve {
  const n = xs.length;
  const d: number[] = [];
  for (let i = 0; i < n - 1; i++) d.push((ys[i + 1]! - ys[i]!) / (xs[i + 1]! - xs[i]!));
  const m: number[] = [d[0]!];
  for (let i = 1; i < n - 1; i++) m.push(d[i - 1]! * d[i]! <= 0 ? 0 : (d[i - 1]! + d[i]!) / 2);
  m.push(d[n - 2]!);
  for (let i = 0; i < n - 1; i++) {
    if (d[i] === 0) {
      m[i] = 0;
      m[i + 1] = 0;
      continue;
    }
    const a = m[i]! / d[i]!;
    const b = m[i + 1]! / d[i]!;
    const s = a * a + b * b;
    if (s > 9) {
      const t = 3 / Math.sqrt(s);
      m[i] = t * a * d[i]!;
      m[i + 1] = t * b * d[i]!;
    }
  }
  return hermite(xs, ys, m);
}

function hermite(xs: readonly number[], ys: readonly number[], m: readonly number[]): IntensityCurve {
  return (x: number): number => {
    let i = 0;
    while (i < xs.length - 2 && x > xs[i + 1]!) i++;
    const h = xs[i + 1]! - xs[i]!;
    const t = Math.min(Math.max((x - xs[i]!) / h, 0), 1);
    const t2 = t * t;
    const t3 = t2 * t;
    return (2 * t3 - 3 * t2 + 1) * ys[i]! + (t3 - 2 * t2 + t) * h * m[i]! + (-2 * t3 + 3 * t2) * ys[i + 1]! + (t3 - t2) * h * m[i + 1]!;
  };
}

export interface CurveOptions {
  /** Number of knots, evenly spaced on [0, 1] (default 6, at least 2). */
  knots?: number;
}

/**
 * A random smooth monotonic curve from 0 to 1 (or, with probability `pDecreasing`,
 * from 1 to 0 — an intensity inversion): knot values are normalised cumulative sums
 * of random positive steps, joined by a monotone cubic.
 */
export function randomMonotonicCurve(rng: Rng, options: CurveOptions & { pDecreasing?: number } = {}): IntensityCurve {
  const k = Math.max(2, options.knots ?? 6);
  const xs = Array.from({ length: k }, (_, i) => i / (k - 1));
  const steps = Array.from({ length: k - 1 }, () => rng.uniform(0.1, 1));
  const total = steps.reduce((a, b) => a + b, 0);
  const ys = [0];
  for (const s of steps) ys.push(ys[ys.length - 1]! + s / total);
  ys[k - 1] = 1;
  const decreasing = rng.bool(options.pDecreasing ?? 0.5);
  return monotoneCubic(xs, decreasing ? ys.map((y) => 1 - y) : ys);
}

/**
 * A random smooth non-monotonic curve: independent uniform knot values in [0, 1]
 * joined by a Catmull–Rom spline (clamped to [0, 1] when applied).
 */
export function randomNonMonotonicCurve(rng: Rng, options: CurveOptions = {}): IntensityCurve {
  const k = Math.max(2, options.knots ?? 6);
  const xs = Array.from({ length: k }, (_, i) => i / (k - 1));
  const ys = Array.from({ length: k }, () => rng.uniform(0, 1));
  const m = ys.map((_, i) => (ys[Math.min(i + 1, k - 1)]! - ys[Math.max(i - 1, 0)]!) / (xs[Math.min(i + 1, k - 1)]! - xs[Math.max(i - 1, 0)]!));
  return hermite(xs, ys, m);
}

/** Adds N(0, sigma²) noise to every voxel. */
export function addGaussianNoise(img: ImageArray, sigma: number, rng: Rng): ImageArray {
  return mapValues(img, (v) => v + rng.normal(0, sigma));
}

/**
 * Separable Gaussian blur; `sigmaVoxels` is one value for the in-plane axes (y, x)
 * or one per axis of the shape. Kernel radius ⌈3σ⌉, borders replicate the edge.
 */
export function gaussianBlur(img: ImageArray, sigmaVoxels: number | readonly number[]): ImageArray {
  checkShape(img);
  const dims = img.shape.length;
  const sigmas = typeof sigmaVoxels === 'number' ? img.shape.map((_, a) => (a >= dims - 2 ? sigmaVoxels : 0)) : [...sigmaVoxels];
  if (sigmas.length !== dims || sigmas.some((s) => !(s >= 0))) throw new AugmentError(`blur sigma must be >= 0 for each of the ${dims} axes, got [${sigmas.join(', ')}]`);
  let cur = Float32Array.from(img.data);
  for (let axis = 0; axis < dims; axis++) {
    const sigma = sigmas[axis]!;
    if (sigma === 0) continue;
    const r = Math.ceil(3 * sigma);
    const kernel = Array.from({ length: 2 * r + 1 }, (_, i) => Math.exp(-((i - r) ** 2) / (2 * sigma * sigma)));
    const sum = kernel.reduce((a, b) => a + b, 0);
    const k = kernel.map((v) => v / sum);
    const n = img.shape[axis]!;
    const stride = img.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
    const outer = cur.length / (n * stride);
    const next = new Float32Array(cur.length);
    for (let o = 0; o < outer; o++) {
      for (let s = 0; s < stride; s++) {
        const base = o * n * stride + s;
        for (let i = 0; i < n; i++) {
          let acc = 0;
          for (let t = -r; t <= r; t++) {
            const j = Math.min(Math.max(i + t, 0), n - 1);
            acc += k[t + r]! * cur[base + j * stride]!;
          }
          next[base + i * stride] = acc;
        }
      }
    }
    cur = next;
  }
  return mapValues({ data: cur, shape: img.shape }, (v) => v);
}

/**
 * Multiplies by a smooth random bias field exp(p(x, y[, z])), p a polynomial of
 * degree ≤ 3 in coordinates normalised to [−1, 1] whose coefficients are
 * N(0, (strength/terms)²) — so strength ≈ the typical log-amplitude.
 */
export function biasField(img: ImageArray, rng: Rng, strength = 0.3): ImageArray {
  checkShape(img);
  const dims = img.shape.length;
  const terms: { powers: number[]; c: number }[] = [];
  const powersList: number[][] = [];
  for (let a = 0; a <= 3; a++) for (let b = 0; b <= 3 - a; b++) for (let c = 0; c <= (dims === 3 ? 3 - a - b : 0); c++) if (a + b + c > 0) powersList.push(dims === 3 ? [c, b, a] : [b, a]);
  for (const powers of powersList) terms.push({ powers, c: rng.normal(0, strength / Math.sqrt(powersList.length)) });
  const out = new Float32Array(img.data.length);
  const idx = new Array<number>(dims).fill(0);
  for (let n = 0; n < out.length; n++) {
    let p = 0;
    for (const t of terms) {
      let v = t.c;
      for (let a = 0; a < dims; a++) {
        const size = img.shape[a]!;
        const u = size > 1 ? (2 * idx[a]!) / (size - 1) - 1 : 0;
        v *= u ** t.powers[a]!;
      }
      p += v;
    }
    out[n] = clamp01((img.data[n] as number) * Math.exp(p));
    for (let a = dims - 1; a >= 0; a--) {
      idx[a]!++;
      if (idx[a]! < img.shape[a]!) break;
      idx[a] = 0;
    }
  }
  return { data: out, shape: [...img.shape] };
}

export interface AppearanceOptions {
  /** Probability of each transform (default 0.3 each, monotonic/non-monotonic curve 0.5 together). */
  pGamma?: number;
  gammaRange?: readonly [number, number];
  pCurve?: number;
  /** Share of curve draws that are non-monotonic (default 0.5). */
  pNonMonotonic?: number;
  pNoise?: number;
  noiseSigmaRange?: readonly [number, number];
  pBlur?: number;
  blurSigmaRange?: readonly [number, number];
  pBias?: number;
  biasStrength?: number;
  pContrast?: number;
  contrastRange?: readonly [number, number];
}

/** Draws and applies a random chain: curve, gamma, contrast, bias field, blur, noise (each with its probability). */
export function randomAppearance(img: ImageArray, rng: Rng, options: AppearanceOptions = {}): ImageArray {
  let out: ImageArray = { data: Float32Array.from(img.data, clamp01), shape: [...img.shape] };
  const range = (r: readonly [number, number] | undefined, d: readonly [number, number]): number => rng.uniform(...(r ?? d));
  if (rng.bool(options.pCurve ?? 0.5)) {
    out = applyCurve(out, rng.bool(options.pNonMonotonic ?? 0.5) ? randomNonMonotonicCurve(rng) : randomMonotonicCurve(rng));
  }
  if (rng.bool(options.pGamma ?? 0.3)) out = gammaTransform(out, Math.exp(range(options.gammaRange?.map(Math.log) as [number, number] | undefined, [Math.log(0.7), Math.log(1.5)])));
  if (rng.bool(options.pContrast ?? 0.3)) out = adjustContrast(out, range(options.contrastRange, [0.75, 1.25]));
  if (rng.bool(options.pBias ?? 0.3)) out = biasField(out, rng, options.biasStrength ?? 0.3);
  if (rng.bool(options.pBlur ?? 0.3)) out = gaussianBlur(out, range(options.blurSigmaRange, [0.5, 1.0]));
  if (rng.bool(options.pNoise ?? 0.3)) out = addGaussianNoise(out, range(options.noiseSigmaRange, [0, 0.05]), rng);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Spatial

export interface SpatialOptions {
  /** Axes of the shape that may be flipped, each with probability 0.5 (default: none). */
  flipAxes?: readonly number[];
  /** Largest in-plane rotation in degrees (default 10). */
  maxRotationDeg?: number;
  /** Isotropic in-plane scale range (default [0.9, 1.1]). */
  scaleRange?: readonly [number, number];
  /** Largest in-plane translation in voxels (default 0). */
  maxTranslationVoxels?: number;
  /** Typical elastic displacement in voxels (default 2; 0 disables). */
  elasticVoxels?: number;
  /** Number of random smooth waves per displaced axis (default 3); frequencies ≤ 1.5 cycles per image. */
  elasticWaves?: number;
}

/** A sampled spatial transform: for each output voxel, its source position. */
export interface SpatialTransform {
  /** [y, x] or [z, y, x]. */
  readonly shape: readonly number[];
  /** One array per axis of `shape` (same order), each with one source coordinate (voxels) per output voxel. */
  readonly sourceCoords: readonly Float32Array[];
}

/**
 * Samples flips, an in-plane rotation/scale/translation about the centre and a smooth
 * in-plane elastic displacement for arrays of `shape`: output voxel p reads the source
 * at flip(c + R(θ)·(p − c)/s + t + e(p)).
 */
export function sampleSpatialTransform(rng: Rng, shape: readonly number[], options: SpatialOptions = {}): SpatialTransform {
  checkShape({ data: new Float32Array(shape.reduce((a, b) => a * b, 1)), shape }, 'transform');
  const dims = shape.length;
  const flips = shape.map((_, a) => (options.flipAxes ?? []).includes(a) && rng.bool(0.5));
  const theta = (rng.uniform(-1, 1) * (options.maxRotationDeg ?? 10) * Math.PI) / 180;
  const scale = rng.uniform(...(options.scaleRange ?? [0.9, 1.1]));
  const maxT = options.maxTranslationVoxels ?? 0;
  const ty = rng.uniform(-maxT, maxT);
  const tx = rng.uniform(-maxT, maxT);
  const amp = options.elasticVoxels ?? 2;
  const nWaves = options.elasticWaves ?? 3;
  const waves = [0, 1].map(() =>
    Array.from({ length: nWaves }, () => ({ a: rng.normal(0, amp / Math.sqrt(nWaves)), fy: rng.uniform(-1.5, 1.5), fx: rng.uniform(-1.5, 1.5), fz: dims === 3 ? rng.uniform(-0.5, 0.5) : 0, phase: rng.uniform(0, 2 * Math.PI) })),
  );
  const ny = shape[dims - 2]!;
  const nx = shape[dims - 1]!;
  const nz = dims === 3 ? shape[0]! : 1;
  const cy = (ny - 1) / 2;
  const cx = (nx - 1) / 2;
  const cos = Math.cos(theta) / scale;
  const sin = Math.sin(theta) / scale;
  const total = nz * ny * nx;
  const sy = new Float32Array(total);
  const sx = new Float32Array(total);
  const sz = dims === 3 ? new Float32Array(total) : undefined;
  let n = 0;
  for (let z = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++, n++) {
        const dy = y - cy;
        const dx = x - cx;
        let yy = cy + cos * dy - sin * dx + ty;
        let xx = cx + sin * dy + cos * dx + tx;
        for (const w of waves[0]!) yy += w.a * Math.sin(2 * Math.PI * (w.fy * y / ny + w.fx * x / nx + w.fz * z / nz) + w.phase);
        for (const w of waves[1]!) xx += w.a * Math.sin(2 * Math.PI * (w.fy * y / ny + w.fx * x / nx + w.fz * z / nz) + w.phase);
        let zz = z;
        if (flips[dims - 2]) yy = ny - 1 - yy;
        if (flips[dims - 1]) xx = nx - 1 - xx;
        if (dims === 3 && flips[0]) zz = nz - 1 - z;
        sy[n] = yy;
        sx[n] = xx;
        if (sz !== undefined) sz[n] = zz;
      }
    }
  }
  return { shape: [...shape], sourceCoords: sz === undefined ? [sy, sx] : [sz, sy, sx] };
}

/**
 * Applies a sampled transform to an array of its shape. Linear: bilinear/trilinear,
 * returns Float32Array. Nearest: keeps the array type (labels). Source positions
 * outside the array by more than half a voxel read `fill` (default 0).
 */
export function warp(transform: SpatialTransform, img: ImageArray<VoxelArray>, interpolation: 'linear' | 'nearest', fill = 0): ImageArray<VoxelArray> {
  checkShape(img);
  if (img.shape.length !== transform.shape.length || img.shape.some((d, i) => d !== transform.shape[i])) {
    throw new AugmentError(`array shape [${img.shape.join(', ')}] does not match the transform shape [${transform.shape.join(', ')}]`);
  }
  const dims = img.shape.length;
  const nz = dims === 3 ? img.shape[0]! : 1;
  const ny = img.shape[dims - 2]!;
  const nx = img.shape[dims - 1]!;
  const [cz, cy, cx] = dims === 3 ? transform.sourceCoords : [undefined, ...transform.sourceCoords];
  const src = img.data;
  const nearest = interpolation === 'nearest';
  const out: VoxelArray = nearest ? new (src.constructor as new (n: number) => VoxelArray)(src.length) : new Float32Array(src.length);
  const inside = (u: number, n: number): boolean => u >= -0.5 && u <= n - 0.5;
  for (let n = 0; n < out.length; n++) {
    const w = cz === undefined ? 0 : cz[n]!;
    const v = cy![n]!;
    const u = cx![n]!;
    if (!inside(u, nx) || !inside(v, ny) || !inside(w, nz)) {
      out[n] = fill;
      continue;
    }
    if (nearest) {
      const x0 = Math.min(Math.max(Math.round(u), 0), nx - 1);
      const y0 = Math.min(Math.max(Math.round(v), 0), ny - 1);
      const z0 = Math.min(Math.max(Math.round(w), 0), nz - 1);
      out[n] = src[(z0 * ny + y0) * nx + x0]!;
      continue;
    }
    const uc = Math.min(Math.max(u, 0), nx - 1);
    const vc = Math.min(Math.max(v, 0), ny - 1);
    const wc = Math.min(Math.max(w, 0), nz - 1);
    const x0 = Math.floor(uc);
    const y0 = Math.floor(vc);
    const z0 = Math.floor(wc);
    const x1 = Math.min(x0 + 1, nx - 1);
    const y1 = Math.min(y0 + 1, ny - 1);
    const z1 = Math.min(z0 + 1, nz - 1);
    const fx = uc - x0;
    const fy = vc - y0;
    const fz = wc - z0;
    const at = (z: number, y: number, x: number): number => src[(z * ny + y) * nx + x]!;
    const c0 = (at(z0, y0, x0) * (1 - fx) + at(z0, y0, x1) * fx) * (1 - fy) + (at(z0, y1, x0) * (1 - fx) + at(z0, y1, x1) * fx) * fy;
    const c1 = (at(z1, y0, x0) * (1 - fx) + at(z1, y0, x1) * fx) * (1 - fy) + (at(z1, y1, x0) * (1 - fx) + at(z1, y1, x1) * fx) * fy;
    out[n] = c0 * (1 - fz) + c1 * fz;
  }
  return { data: out, shape: [...img.shape] };
}

export interface TrainingSample {
  /** Normalised image. */
  readonly image: ImageArray;
  /** Label map (integer classes). */
  readonly label?: ImageArray<VoxelArray>;
  /** Per-voxel weights. */
  readonly weight?: ImageArray;
}

/** Applies one transform to image (linear), label (nearest) and weight (linear, fill 0). */
export function warpSample(transform: SpatialTransform, sample: TrainingSample): TrainingSample {
  const image = warp(transform, sample.image, 'linear') as ImageArray;
  return {
    image,
    ...(sample.label === undefined ? {} : { label: warp(transform, sample.label, 'nearest') }),
    ...(sample.weight === undefined ? {} : { weight: warp(transform, sample.weight, 'linear') as ImageArray }),
  };
}
