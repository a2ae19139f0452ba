/**
 * PNG figures: a grayscale slice, an overlay (image + label colours + optional heat
 * map + optional grid lines), and panels side by side. Slices are C-ordered `[y, x]`:
 * row y of the PNG is image row y (top = y 0), column x = x. For an LPS identity
 * direction this is the radiological axial view (patient's right on the viewer's left,
 * anterior at the top).
 */
import { PNG } from 'pngjs';
import { writeFileAtomic } from '@purify/artifacts';

export class PngError extends Error {
  override readonly name = 'PngError';
}

/** An 8-bit RGBA raster, row-major, 4 bytes per pixel. */
export interface RgbaImage {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
}

export interface SliceInput {
  /** `[y, x]`, x fastest. */
  readonly data: ArrayLike<number>;
  /** [y, x]. */
  readonly shape: readonly [number, number];
}

/**
 * Fixed class colours (RGB) indexed by label value; label 0 (background) is never
 * painted. Labels beyond the table wrap around (skipping 0).
 * 1 liver, 2 spleen, 3 right kidney, 4 left kidney in the built-in benchmark.
 */
export const LABEL_COLORS: readonly (readonly [number, number, number])[] = Object.freeze([
  [0, 0, 0],
  [230, 25, 75], // 1 red
  [60, 180, 75], // 2 green
  [0, 130, 200], // 3 blue
  [255, 225, 25], // 4 yellow
  [245, 130, 48], // 5 orange
  [145, 30, 180], // 6 purple
  [70, 240, 240], // 7 cyan
  [240, 50, 230], // 8 magenta
  [210, 245, 60], // 9 lime
  [0, 128, 128], // 10 teal
]);

export function labelColor(label: number): readonly [number, number, number] {
  const n = LABEL_COLORS.length - 1;
  return LABEL_COLORS[((Math.round(label) - 1) % n) + 1] ?? [255, 255, 255];
}

/** Heat colour of t ∈ [0, 1]: blue (0) → green (0.5) → red (1). */
export function heatColor(t: number): [number, number, number] {
  const v = Math.min(Math.max(t, 0), 1);
  if (v < 0.5) return [0, Math.round(510 * v), Math.round(255 * (1 - 2 * v))];
  return [Math.round(255 * (2 * v - 1)), Math.round(255 * (2 - 2 * v)), 0];
}

function checkSlice(s: SliceInput, what: string): void {
  const [h, w] = s.shape;
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 1 || w < 1 || s.data.length !== h * w) {
    throw new PngError(`${what}: shape [y, x] = [${s.shape.join(', ')}] does not fit ${s.data.length} values`);
  }
}

export interface GrayscaleOptions {
  /** Intensity shown black (default 0). */
  min?: number;
  /** Intensity shown white (default 1). */
  max?: number;
}

/** A grayscale rendering: v → 255·(v − min)/(max − min), clamped; NaN is black. */
export function grayscaleImage(slice: SliceInput, options: GrayscaleOptions = {}): RgbaImage {
  checkSlice(slice, 'slice');
  const min = options.min ?? 0;
  const max = options.max ?? 1;
  if (!(max > min)) throw new PngError(`grayscale range needs max > min, got [${min}, ${max}]`);
  const [h, w] = slice.shape;
  const data = new Uint8Array(h * w * 4);
  for (let i = 0; i < h * w; i++) {
    const v = slice.data[i] as number;
    const g = Number.isNaN(v) ? 0 : Math.round(255 * Math.min(Math.max((v - min) / (max - min), 0), 1));
    data[4 * i] = g;
    data[4 * i + 1] = g;
    data[4 * i + 2] = g;
    data[4 * i + 3] = 255;
  }
  return { width: w, height: h, data };
}

export interface OverlayOptions extends GrayscaleOptions {
  /** Label map `[y, x]` (same shape); non-zero labels are painted in {@link LABEL_COLORS}. */
  labels?: ArrayLike<number>;
  /** Opacity of label colours (default 0.45). */
  labelAlpha?: number;
  /** Heat map `[y, x]` in [0, 1] (e.g. reliability), painted with {@link heatColor}; NaN is not painted. */
  heat?: ArrayLike<number>;
  /** Opacity of the heat map (default 0.5). */
  heatAlpha?: number;
  /** Draw grid lines every `step` pixels ([y, x] or one number), e.g. anchor-patch regions. */
  gridStep?: number | readonly [number, number];
  /** Grid line colour (default white). */
  gridColor?: readonly [number, number, number];
}

/** Image + label colours (+ heat map, + grid lines), alpha-blended in that order. */
export function overlayImage(slice: SliceInput, options: OverlayOptions = {}): RgbaImage {
  const base = grayscaleImage(slice, options);
  const [h, w] = slice.shape;
  const data = base.data;
  const blend = (i: number, rgb: readonly number[], a: number): void => {
    for (let c = 0; c < 3; c++) data[4 * i + c] = Math.round((data[4 * i + c] as number) * (1 - a) + (rgb[c] as number) * a);
  };
  if (options.heat !== undefined) {
    checkSlice({ data: options.heat, shape: slice.shape }, 'heat map');
    const a = options.heatAlpha ?? 0.5;
    for (let i = 0; i < h * w; i++) {
      const t = options.heat[i] as number;
      if (!Number.isNaN(t)) blend(i, heatColor(t), a);
    }
  }
  if (options.labels !== undefined) {
    checkSlice({ data: options.labels, shape: slice.shape }, 'label map');
    const a = options.labelAlpha ?? 0.45;
    for (let i = 0; i < h * w; i++) {
      const l = options.labels[i] as number;
      if (l !== 0 && !Number.isNaN(l)) blend(i, labelColor(l), a);
    }
  }
  if (options.gridStep !== undefined) {
    const [sy, sx] = typeof options.gridStep === 'number' ? [options.gridStep, options.gridStep] : options.gridStep;
    if (!(sy >= 1 && sx >= 1)) throw new PngError(`gridStep must be >= 1 pixel, got [${sy}, ${sx}]`);
    const color = options.gridColor ?? [255, 255, 255];
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) if ((y > 0 && y % sy === 0) || (x > 0 && x % sx === 0)) blend(y * w + x, color, 1);
  }
  return base;
}

/** Panels side by side (top-aligned) with `gap` pixels of `background` between them. */
export function tileHorizontally(panels: readonly RgbaImage[], options: { gap?: number; background?: readonly [number, number, number] } = {}): RgbaImage {
  if (panels.length === 0) throw new PngError('tileHorizontally needs at least one panel');
  const gap = options.gap ?? 4;
  const bg = options.background ?? [0, 0, 0];
  const width = panels.reduce((a, p) => a + p.width, 0) + gap * (panels.length - 1);
  const height = Math.max(...panels.map((p) => p.height));
  const data = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) data.set([bg[0], bg[1], bg[2], 255], 4 * i);
  let x0 = 0;
  for (const p of panels) {
    for (let y = 0; y < p.height; y++) data.set(p.data.subarray(y * p.width * 4, (y + 1) * p.width * 4), (y * width + x0) * 4);
    x0 += p.width + gap;
  }
  return { width, height, data };
}

/** Rows stacked top to bottom (left-aligned) with `gap` pixels of `background` between them. */
export function tileVertically(rows: readonly RgbaImage[], options: { gap?: number; background?: readonly [number, number, number] } = {}): RgbaImage {
  if (rows.length === 0) throw new PngError('tileVertically needs at least one row');
  const gap = options.gap ?? 4;
  const bg = options.background ?? [0, 0, 0];
  const width = Math.max(...rows.map((r) => r.width));
  const height = rows.reduce((a, r) => a + r.height, 0) + gap * (rows.length - 1);
  const data = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) data.set([bg[0], bg[1], bg[2], 255], 4 * i);
  let y0 = 0;
  for (const r of rows) {
    for (let y = 0; y < r.height; y++) data.set(r.data.subarray(y * r.width * 4, (y + 1) * r.width * 4), ((y0 + y) * width) * 4);
    y0 += r.height + gap;
  }
  return { width, height, data };
}

/** Nearest-neighbour enlargement by an integer factor ≥ 1 (small slices stay readable). */
export function enlargeImage(image: RgbaImage, k: number): RgbaImage {
  if (!(Number.isInteger(k) && k >= 1)) throw new PngError(`enlargement factor must be an integer ≥ 1, got ${k}`);
  if (k === 1) return image;
  const width = image.width * k;
  const height = image.height * k;
  const data = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const from = (Math.floor(y / k) * image.width + Math.floor(x / k)) * 4;
      data.set(image.data.subarray(from, from + 4), (y * width + x) * 4);
    }
  }
  return { width, height, data };
}

/** PNG bytes of an RGBA raster. */
export function encodePng(image: RgbaImage): Uint8Array {
  if (image.data.length !== image.width * image.height * 4) throw new PngError(`RGBA data has ${image.data.length} bytes, ${image.width}×${image.height} needs ${image.width * image.height * 4}`);
  const png = new PNG({ width: image.width, height: image.height });
  png.data = Buffer.from(image.data.buffer, image.data.byteOffset, image.data.byteLength);
  return PNG.sync.write(png);
}

/** Writes an RGBA raster as a PNG file, atomically. */
export function writePng(path: string, image: RgbaImage): void {
  writeFileAtomic(path, encodePng(image));
}
