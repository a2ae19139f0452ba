import { Rng } from '@purify/imaging';
import { AUGMENT_PRESETS, augmentPresetId, augmentSample, parseAugmentLevel, resolveAugment, type AugmentConfig } from './augmentation';
import { TrainingConfigError } from './errors';

const SHAPE: [number, number] = [24, 24];
const N = SHAPE[0] * SHAPE[1];

/** Vertical stripes 4 px wide with labels 0, 1, …, 5 (neighbours differ by one class); image = label / 5; weight = image. */
function stripes(): { image: Float32Array; label: Int32Array; weight: Float32Array } {
  const label = Int32Array.from({ length: N }, (_, i) => Math.floor((i % SHAPE[1]) / 4));
  const image = Float32Array.from(label, (l) => l / 5);
  return { image, label, weight: Float32Array.from(image) };
}

const spatialOnly: AugmentConfig = { ...AUGMENT_PRESETS.strong.config, pSpatial: 1, pAppearance: 0 };
const appearanceOnly: AugmentConfig = { ...AUGMENT_PRESETS.strong.config, pSpatial: 0, pAppearance: 1 };

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
    const out = augmentSample(input, SHAPE, AUGMENT_PRESETS.none.config, new Rng(1));
    expect(out).toEqual(input);
    expect(out.image).not.toBe(input.image);
  });

  it('the same seed gives the same sample', () => {
    const a = augmentSample(stripes(), SHAPE, AUGMENT_PRESETS.strong.config, new Rng(11));
    const b = augmentSample(stripes(), SHAPE, AUGMENT_PRESETS.strong.config, new Rng(11));
    expect(a).toEqual(b);
  });
});

describe('appearance-agnostic presets', () => {
  const presets = ['gin', 'classwise', 'gin-classwise'] as const;

  it.each(presets)('%s: shape and range kept, deterministic per seed, labels and weights untouched by the appearance part', (level) => {
    const config: AugmentConfig = { ...AUGMENT_PRESETS[level].config, pSpatial: 0, pAppearance: 1 };
    const input = stripes();
    const outs = Array.from({ length: 12 }, (_, seed) => augmentSample(input, SHAPE, config, new Rng(seed)));
    for (const out of outs) {
      expect(out.image.length).toBe(N);
      expect(out.image.every((v) => v >= 0 && v <= 1)).toBe(true);
      expect(out.label).toEqual(input.label);
      expect(out.weight).toEqual(input.weight);
    }
    expect(augmentSample(input, SHAPE, config, new Rng(5))).toEqual(outs[5]);
    // Different seeds give different appearances.
    expect(new Set(outs.map((o) => Array.from(o.image).join(','))).size).toBe(12);
  });

  it.each(presets)('%s: the spatial part moves image, label and weight together', (level) => {
    // Appearance off, so image and weight (both label / 5) must stay equal and track the label.
    const config: AugmentConfig = { ...AUGMENT_PRESETS[level].config, pSpatial: 1, pAppearance: 0 };
    const input = stripes();
    const out = augmentSample(input, SHAPE, config, new Rng(2));
    expect(Array.from(out.weight)).toEqual(Array.from(out.image));
    for (let i = 0; i < N; i++) expect(Math.abs(5 * out.image[i]! - out.label[i]!)).toBeLessThanOrEqual(1 + 1e-5);
    expect(out.label).not.toEqual(input.label);
  });

  it('class-wise views remap each stripe (one label) by one curve: equal inputs within a stripe stay equal', () => {
    // Only class-wise views, hard masks, no post chain, no IPA: each stripe is constant in the input,
    // so it must be constant in the output too (one curve per label), while stripes change relative order.
    const config: AugmentConfig = { pSpatial: 0, spatial: {}, pAppearance: 1, appearance: {}, classwise: { p: 1, options: { boundarySigma: 0 } } };
    const input = stripes();
    const orders = new Set<string>();
    for (let seed = 0; seed < 10; seed++) {
      const out = augmentSample(input, SHAPE, config, new Rng(seed));
      const perLabel = new Map<number, Set<number>>();
      for (let i = 0; i < N; i++) perLabel.set(input.label[i]!, (perLabel.get(input.label[i]!) ?? new Set()).add(out.image[i]!));
      for (const [label, vals] of perLabel) if (label > 0) expect(vals.size).toBe(1);
      const means = [1, 2, 3, 4, 5].map((l) => [...perLabel.get(l)!][0]!);
      orders.add(means.map((m) => means.filter((o) => o < m).length).join(''));
    }
    expect(orders.size).toBeGreaterThan(1);
  });

  it('presets are versioned: name and name@version resolve, an unknown version or name is refused', () => {
    expect(augmentPresetId('gin-classwise')).toBe(`gin-classwise@${AUGMENT_PRESETS['gin-classwise'].version}`);
    expect(parseAugmentLevel('strong')).toBe('strong');
    expect(parseAugmentLevel(`strong@${AUGMENT_PRESETS.strong.version}`)).toBe('strong');
    expect(() => parseAugmentLevel('strong@99')).toThrow(new TrainingConfigError(`augment "strong@99": preset strong is at version ${AUGMENT_PRESETS.strong.version} in this release; use strong@${AUGMENT_PRESETS.strong.version} (or strong)`));
    expect(() => parseAugmentLevel('heavy')).toThrow(/^augment must be one of none@1, light@1, strong@1, gin@1, classwise@1, gin-classwise@1 \(the version may be left out\) or a config object, got "heavy"$/);
    expect(() => resolveAugment({ ...AUGMENT_PRESETS.none.config, gin: { p: 0.7 }, classwise: { p: 0.6 } })).toThrow(new TrainingConfigError('augment.gin.p + augment.classwise.p must be ≤ 1 (they share the views), got 0.7 + 0.6'));
  });
});
