import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import type { RoundSnapshot } from '@purify/proto';
import { ROUND_FIGURE_PANELS, writeRoundFigure } from '../src/commands/adapt';

/** A 2×3 snapshot: image ramp, pseudo-label and prediction 1 on the right column, reliability and weights 1 on the left column. */
function snapshot(over: Partial<RoundSnapshot> = {}): RoundSnapshot {
  const f32 = (v: number[]): Buffer => Buffer.from(Float32Array.from(v).buffer);
  return {
    caseId: 'mr_001',
    slice: 4,
    height: 2,
    width: 3,
    image: f32([0, 0.2, 0.4, 0.6, 0.8, 1]),
    pseudoLabel: Buffer.from([0, 0, 1, 0, 0, 1]),
    reliability: f32([1, 0.5, 0, 1, 0.5, 0]),
    weights: f32([1, 0.5, 0, 1, 0.5, 0]),
    prediction: Buffer.from([0, 0, 1, 0, 0, 1]),
    ...over,
  };
}

describe('writeRoundFigure', () => {
  const dir = mkdtempSync(join(tmpdir(), 'round-figure-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes image | pseudo-label | reliability | weights | prediction, enlarged to ~192 px', () => {
    expect(ROUND_FIGURE_PANELS).toEqual(['image', 'pseudo-label', 'reliability', 'weights', 'prediction']);
    const file = writeRoundFigure(dir, 2, snapshot());
    expect(file).toBe('round-2.png');
    const png = PNG.sync.read(readFileSync(join(dir, file)));
    // 3 pixels wide × 64 = 192 per panel, 5 panels and 4 gaps of 4: 976 × 128.
    expect([png.width, png.height]).toEqual([976, 128]);
    const rgb = (x: number, y: number): number[] => Array.from(png.data.subarray(4 * (y * png.width + x), 4 * (y * png.width + x) + 3));
    const panel = (p: number, col: number): number => p * (192 + 4) + col * 64 + 32;
    // Weights panel: weight 1 (left column) is blended toward red, weight 0 (right column) toward blue.
    const [w1, w0] = [rgb(panel(3, 0), 32), rgb(panel(3, 2), 32)];
    expect(w1[0]!).toBeGreaterThan(w1[2]!);
    expect(w0[2]!).toBeGreaterThan(w0[0]!);
    // Pseudo-label and prediction panels: the labelled right column differs from the plain image; the unlabelled left one does not.
    for (const p of [1, 4]) {
      expect(rgb(panel(p, 2), 32)).not.toEqual(rgb(panel(0, 2), 32));
      expect(rgb(panel(p, 0), 32)).toEqual(rgb(panel(0, 0), 32));
    }
  });

  it.each([
    ['an image', { image: Buffer.alloc(20) }, 'round 1 snapshot: the image has 20 bytes, expected 24 for 2×3 float32'],
    ['a weights', { weights: Buffer.alloc(4) }, 'round 1 snapshot: the weight map has 4 bytes, expected 24 for 2×3 float32'],
    ['a prediction', { prediction: Buffer.alloc(5) }, 'round 1 snapshot: the prediction has 5 bytes, expected 6 for 2×3 uint8'],
  ])('refuses %s plane of the wrong size', (_name, over, message) => {
    expect(() => writeRoundFigure(dir, 1, snapshot(over))).toThrow(message);
  });
});
