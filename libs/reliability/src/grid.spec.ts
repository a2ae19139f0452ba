import { BorderMode, resolveOptions, type ReliabilityOptions } from './config';
import { ReliabilityError } from './errors';
import { anchorCentres, anchorsPerSlice, buildGrid, buildRegions, cellEdges } from './grid';

const grid = (shape: [number, number, number], o: ReliabilityOptions) => buildGrid(shape, resolveOptions(o, shape));

describe('anchor grid', () => {
  it.each([
    // [case, H, P, s, mode, expected top-lefts] — cells [0,16) [16,32) … centred patches clamped (shift) or kept (pad)
    ['128, P32 s16 shift: centred anchors −8…104 clamped to [0, 96]', 128, 32, 16, BorderMode.Shift, [0, 8, 24, 40, 56, 72, 88, 96]],
    ['128, P32 s16 pad: centred anchors kept', 128, 32, 16, BorderMode.Pad, [-8, 8, 24, 40, 56, 72, 88, 104]],
    ['64, P32 s32 shift: one anchor per cell, no overlap', 64, 32, 32, BorderMode.Shift, [0, 32]],
    ['20, P8 s6: cells [0,6) [6,12) [12,18) [18,20); centres ⌊(c0+c1−8)/2⌋ = −1, 5, 11, 15 → shift clamps to [0, 12]', 20, 8, 6, BorderMode.Shift, [0, 5, 11, 12]],
    ['20, P8 s6 pad', 20, 8, 6, BorderMode.Pad, [-1, 5, 11, 15]],
    ['P = H: every anchor clamps to 0, duplicates removed', 16, 16, 4, BorderMode.Shift, [0]],
  ])('%s', (_name, h, p, s, mode, expected) => {
    const g = grid([1, h, h], { patchSize: p, stride: s, borderMode: mode });
    expect(g.anchorY).toEqual(expected);
    expect(g.anchorX).toEqual(expected);
  });

  it('cell edges cover the axis with a short last cell', () => {
    // 20 pixels, stride 6 → [0,6) [6,12) [12,18) [18,20)
    expect(cellEdges(20, 6)).toEqual([0, 6, 12, 18, 20]);
    expect(cellEdges(16, 16)).toEqual([0, 16]);
  });

  it('anchor centres are top-left + P/2, clamped into the slice, (y, x) pairs', () => {
    // 1×40×24, P 16, s 16, shift: y anchors 0, 16, 24 → centres 8, 24, 32; x anchors 0, 8 → centres 8, 16
    const g = grid([1, 40, 24], { patchSize: 16, stride: 16 });
    expect(g.anchorY).toEqual([0, 16, 24]);
    expect(g.anchorX).toEqual([0, 8]);
    expect(anchorCentres(g)).toEqual([8, 8, 8, 16, 24, 8, 24, 16, 32, 8, 32, 16]);
    expect(anchorsPerSlice(g)).toBe(6);
  });

  // Shapes, patch sizes, strides and both border modes: every pixel lies in exactly
  // one region and under at least one patch.
  const coverageCases: [string, [number, number, number], number, number, BorderMode][] = [
    ['2×128×128 P32 s16 shift', [2, 128, 128], 32, 16, BorderMode.Shift],
    ['2×128×128 P32 s16 pad', [2, 128, 128], 32, 16, BorderMode.Pad],
    ['1×37×53 P12 s5 shift (ragged cells)', [1, 37, 53], 12, 5, BorderMode.Shift],
    ['1×37×53 P12 s5 pad', [1, 37, 53], 12, 5, BorderMode.Pad],
    ['1×30×17 P17 s17 shift (P = W = s)', [1, 30, 17], 17, 17, BorderMode.Shift],
    ['1×9×9 P3 s1 pad', [1, 9, 9], 3, 1, BorderMode.Pad],
    ['1×31×31 P9 s9 pad', [1, 31, 31], 9, 9, BorderMode.Pad],
  ];
  it.each(coverageCases)('%s: regions partition the image, patches cover it', (_name, shape, p, s, mode) => {
    const g = grid(shape, { patchSize: p, stride: s, borderMode: mode });
    const [z, h, w] = shape;
    const { regions, regionOf } = buildRegions(g, new Uint8Array(z * h * w), false);
    // Count region membership from the bounds (independently of regionOf).
    const member = new Uint16Array(z * h * w);
    for (const r of regions) {
      for (let y = r.y0; y < r.y1; y++) for (let x = r.x0; x < r.x1; x++) member[r.slice * h * w + y * w + x] = member[r.slice * h * w + y * w + x]! + 1;
      expect(r.pixelCount).toBe((r.y1 - r.y0) * (r.x1 - r.x0));
      expect(r.y1 - r.y0).toBeLessThanOrEqual(s);
    }
    expect(member.every((m) => m === 1)).toBe(true);
    regions.forEach((r) => expect(regionOf[r.slice * h * w + r.y0 * w + r.x0]).toBe(r.index));
    // Patch coverage of one slice.
    const cover = new Uint16Array(h * w);
    for (const ty of g.anchorY) {
      for (const tx of g.anchorX) {
        if (mode === BorderMode.Shift) {
          expect(ty).toBeGreaterThanOrEqual(0);
          expect(ty + p).toBeLessThanOrEqual(h);
          expect(tx + p).toBeLessThanOrEqual(w);
        }
        for (let y = Math.max(0, ty); y < Math.min(h, ty + p); y++) for (let x = Math.max(0, tx); x < Math.min(w, tx + p); x++) cover[y * w + x] = cover[y * w + x]! + 1;
      }
    }
    expect(cover.every((c) => c >= 1)).toBe(true);
  });

  it('splits cells by predicted class, classes ascending, every pixel in one region', () => {
    // 1×4×4, stride 2 → 4 cells; labels:
    //  0 0 | 1 1
    //  0 2 | 1 1
    //  ----+----
    //  3 3 | 0 0
    //  3 3 | 0 1
    const labels = Uint8Array.from([0, 0, 1, 1, 0, 2, 1, 1, 3, 3, 0, 0, 3, 3, 0, 1]);
    const g = grid([1, 4, 4], { patchSize: 2, stride: 2 });
    const { regions, regionOf } = buildRegions(g, labels, true);
    expect(regions.map((r) => [r.y0, r.x0, r.classIndex, r.pixelCount])).toEqual([
      [0, 0, 0, 3],
      [0, 0, 2, 1],
      [0, 2, 1, 4],
      [2, 0, 3, 4],
      [2, 2, 0, 3],
      [2, 2, 1, 1],
    ]);
    expect(Array.from(regionOf)).toEqual([0, 0, 2, 2, 0, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 5]);
  });

  it.each([
    // [case, shape, options, exact message]
    ['stride 0', [1, 64, 64], { patchSize: 32, stride: 0 }, '`config.stride` must be an integer > 0, got 0'],
    ['negative stride', [1, 64, 64], { patchSize: 32, stride: -4 }, '`config.stride` must be an integer > 0, got -4'],
    ['patch larger than the image', [1, 64, 48], { patchSize: 56, stride: 16 }, '`config.patch_size` must not exceed the image (64 × 48 pixels, [y, x]), got 56'],
    ['stride above the patch', [1, 64, 64], { patchSize: 16, stride: 24 }, '`config.stride` must not exceed config.patch_size (16), or pixels between patches are never predicted, got 24'],
    ['patch 0', [1, 64, 64], { patchSize: 0, stride: 4 }, '`config.patch_size` must be an integer > 0, got 0'],
    ['empty image', [0, 64, 64], { patchSize: 16, stride: 8 }, '`image.shape_zyx` must have 3 positive dims [z, y, x], got [0, 64, 64]'],
    ['unknown border mode', [1, 64, 64], { patchSize: 16, stride: 8, borderMode: 'wrap' as never }, '`config.border_mode` must be "shift" or "pad", got "wrap"'],
  ])('refuses %s', (_name, shape, options, message) => {
    const call = () => resolveOptions(options, shape);
    expect(call).toThrow(ReliabilityError);
    expect(call).toThrow(message);
  });
});
