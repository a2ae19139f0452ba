import { Rng } from '@purify/imaging';
import { AUGMENT_PRESETS, augmentSample, type AugmentConfig } from './augmentation';

const SHAPE: [number, number] = [24, 24];
const N = SHAPE[0] * SHAPE[1];

/** Vertical stripes 4 px wide with labels 0, 1, …, 5 (neighbours differ by one class); image = label / 5; weight = image. */
function stripes(): { image: Float32Array; label: Int32Array; weight: Float32Array } {
  const label = Int32Array.from({ length: N }, (_, i) => Math.floor((i % SHAPE[1]) / 4));
  const image = Float32Array.from(label, (l) => l / 5);
  return { image, label, weight: Float32Array.from(image) };
}

const spatialOnly: AugmentConfig = { ...AUGMENT_PRESETS.strong, pSpatial: 1, pAppearance: 0 };
const appearanceOnly: AugmentConfig = { ...AUGMENT_PRESETS.strong, pSpatial: 0, pAppearance: 1 };

describe('augmentSample', () => {
  it.each(Array.from({ length: 8 }, (_, seed) => ({ seed })))('spatial, seed $seed: image, label and weight stay aligned', ({ seed }) => {
    const input = stripes();
    const out = augmentSample(input, SHAPE, spatialOnly, new Rng(seed));
    // Image and weight start equal and are warped the same way (linear, 0 outside): still equal.
    expect(Array.from(out.weight)).toEqual(Array.from(out.image));
    // Label (nearest) and image (linear between neighbouring stripes, which differ by one class) agree within
    // one class step everywhere (outside the source both are 0); the transform must have moved something.
    let moved = 0;
    for (let i = 0; i < N; i++) {
      expect(Math.abs(5 * out.image[i]! - out.label[i]!)).toBeLessThanOrEqual(1 + 1e-5);
      if (out.label[i] !== input.label[i]) moved++;
    }
    expect(moved).toBeGreaterThan(0);
    // The input is never modified.
    expect(input).toEqual(stripes());
  });

  it('appearance changes the image only', () => {
    const input = stripes();
    const out = augmentSample(input, SHAPE, appearanceOnly, new Rng(3));
    expect(out.label).toEqual(input.label);
    expect(out.weight).toEqual(input.weight);
    expect(out.image).not.toEqual(input.image);
    expect(out.image.every((v) => v >= 0 && v <= 1)).toBe(true);
    expect(out.label).not.toBe(input.label); // copies, never the caller's arrays
  });

  it("'none' returns equal copies", () => {
    const input = stripes();
    const out = augmentSample(input, SHAPE, AUGMENT_PRESETS.none, new Rng(1));
    expect(out).toEqual(input);
    expect(out.image).not.toBe(input.image);
  });

  it('the same seed gives the same sample', () => {
    const a = augmentSample(stripes(), SHAPE, AUGMENT_PRESETS.strong, new Rng(11));
    const b = augmentSample(stripes(), SHAPE, AUGMENT_PRESETS.strong, new Rng(11));
    expect(a).toEqual(b);
  });
});
