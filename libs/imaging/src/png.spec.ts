import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { LABEL_COLORS, PngError, enlargeImage, grayscaleImage, heatColor, overlayImage, tileHorizontally, writePng } from './png';

const dir = mkdtempSync(join(tmpdir(), 'png-'));

describe('png', () => {
  it('renders grayscale with clamping', () => {
    // [0, 0.5, 1, 2] with range [0, 1] → gray 0, 128 (round 127.5), 255, 255
    const img = grayscaleImage({ data: [0, 0.5, 1, 2], shape: [2, 2] });
    expect([0, 1, 2, 3].map((i) => img.data[4 * i])).toEqual([0, 128, 255, 255]);
  });

  it('overlays labels, heat and grid', () => {
    // 1×3 image of 0.5 (gray 128); label 1 at x 0 with alpha 0.5: red (230, 25, 75) → (179, 77, 102)
    // (round(128·0.5 + 230·0.5) = 179, ...); heat 1 (red) at x 1, alpha 1 → (255, 0, 0);
    // grid step 2 paints x 2 white.
    const img = overlayImage({ data: [0.5, 0.5, 0.5], shape: [1, 3] }, { labels: [1, 0, 0], labelAlpha: 0.5, heat: [NaN, 1, NaN], heatAlpha: 1, gridStep: 2 });
    expect(Array.from(img.data.subarray(0, 3))).toEqual([179, 77, 102]);
    expect(Array.from(img.data.subarray(4, 7))).toEqual([255, 0, 0]);
    expect(Array.from(img.data.subarray(8, 11))).toEqual([255, 255, 255]);
    expect(LABEL_COLORS[1]).toEqual([230, 25, 75]);
    expect(heatColor(0)).toEqual([0, 0, 255]);
    expect(heatColor(0.5)).toEqual([0, 255, 0]);
  });

  it('tiles panels and writes a PNG that decodes back', () => {
    const a = grayscaleImage({ data: [1, 1], shape: [1, 2] });
    const b = grayscaleImage({ data: [0, 0, 0, 0], shape: [2, 2] });
    const t = tileHorizontally([a, b], { gap: 1, background: [9, 9, 9] });
    expect([t.width, t.height]).toEqual([5, 2]);
    const path = join(dir, 'tile.png');
    writePng(path, t);
    const png = PNG.sync.read(readFileSync(path));
    expect([png.width, png.height]).toEqual([5, 2]);
    // row 0: white, white, gap (9), black, black; row 1: background under panel a
    expect(Array.from({ length: 5 }, (_, x) => png.data[4 * x])).toEqual([255, 255, 9, 0, 0]);
    expect(Array.from({ length: 5 }, (_, x) => png.data[4 * (5 + x)])).toEqual([9, 9, 9, 0, 0]);
  });

  it('enlarges by an integer factor, nearest neighbour', () => {
    // 1×2 image [white, black] × 3 → 3×6: every row white, white, white, black, black, black
    const e = enlargeImage(grayscaleImage({ data: [1, 0], shape: [1, 2] }), 3);
    expect([e.width, e.height]).toEqual([6, 3]);
    for (let y = 0; y < 3; y++) expect(Array.from({ length: 6 }, (_, x) => e.data[4 * (y * 6 + x)])).toEqual([255, 255, 255, 0, 0, 0]);
    const one = grayscaleImage({ data: [0.5], shape: [1, 1] });
    expect(enlargeImage(one, 1)).toBe(one);
  });

  it.each([0, 1.5, -2])('refuses the enlargement factor %p', (k) => {
    expect(() => enlargeImage(grayscaleImage({ data: [0], shape: [1, 1] }), k)).toThrow(new PngError(`enlargement factor must be an integer ≥ 1, got ${k}`));
  });

  it('rejects a label map of the wrong size', () => {
    expect(() => overlayImage({ data: [0, 0], shape: [1, 2] }, { labels: [1] })).toThrow(new PngError('label map: shape [y, x] = [1, 2] does not fit 1 values'));
  });
});
