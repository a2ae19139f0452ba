import { resolveOptions } from './config';
import type { Composition } from './decompose';
import { computeFeatures } from './features';
import { buildGrid } from './grid';
import { lcg, randomProbabilities } from './python.test-util';
import { CLASS_FRACTION_COLUMNS, FEATURE_INDEX, FEATURE_SCHEMA, NUM_FEATURES, normalizeFeatures } from './schema';
import { scoreReliability } from './score';

const col = (name: string): number => FEATURE_INDEX[name] as number;

function composition(probabilities: Float32Array, variance: Float32Array, k: number): Composition {
  return { numClasses: k, probabilities, variance, coverage: new Uint16Array(variance.length).fill(1), patchCount: 0, calls: 0 };
}

/** [K=2, 1, 2, 4] from class-1 probabilities (class 0 = 1 − p). */
function twoClass(p1: number[]): Float32Array {
  return Float32Array.from([...p1.map((p) => 1 - p), ...p1]);
}

describe('region features', () => {
  it('schema v2: 24 named columns with ranges and normalisation', () => {
    expect(FEATURE_SCHEMA.version).toBe('v2');
    expect(NUM_FEATURES).toBe(24);
    expect(new Set(FEATURE_SCHEMA.features.map((f) => f.name)).size).toBe(24);
    for (const f of FEATURE_SCHEMA.features) {
      expect(f.description.length).toBeGreaterThan(10);
      expect(f.max).toBeGreaterThan(f.min);
      expect(f.normalization.length).toBeGreaterThan(0);
    }
  });

  it('hand example: 1×2×4, stride 2, K 2, two cells', () => {
    // whole p1:    .9 .9 | .2 .2      pseudo-label: 1 1 | 0 0
    //              .9 .9 | .2 .6                    1 1 | 0 1
    // composed p1: .9 .9 | .2 .2      composed:     1 1 | 0 0
    //              .9 .9 | .6 .6                    1 1 | 1 1
    // patch variance 0.1 at (1, 2), else 0; round 3.
    const grid = buildGrid([1, 2, 4], resolveOptions({ patchSize: 2, stride: 2 }, [1, 2, 4]));
    const whole = twoClass([0.9, 0.9, 0.2, 0.2, 0.9, 0.9, 0.2, 0.6]);
    const comp = twoClass([0.9, 0.9, 0.2, 0.2, 0.9, 0.9, 0.6, 0.6]);
    const variance = Float32Array.from([0, 0, 0, 0, 0, 0, 0.1, 0]);
    const r = computeFeatures({ grid, whole, composition: composition(comp, variance, 2), round: 3 });
    expect(r.regions.map((g) => [g.x0, g.x1, g.classIndex, g.pixelCount])).toEqual([
      [0, 2, -1, 4],
      [2, 4, -1, 4],
    ]);
    const row = (i: number, name: string): number => r.features[i * NUM_FEATURES + col(name)] as number;
    // H(0.9)/ln 2 = 0.468996; H(0.8)/ln 2 = 0.721928; H(0.6)/ln 2 = 0.970951.
    // JS((.8,.2), (.4,.6)) = ½[.8 log2(.8/.6) + .2 log2(.2/.4)] + ½[.4 log2(.4/.6) + .6 log2(.6/.4)] = 0.124511 bits.
    const expected: [string, number, number][] = [
      // [feature, cell 0, cell 1]
      ['js_divergence', 0, 0.124511 / 4],
      ['argmax_agreement', 1, 3 / 4],
      // cell 1: class 0 whole 3, composed 2, both 2 → 0.8; class 1: 1, 2, 1 → 2/3; mean 0.733333
      ['dice_mean', 1, (0.8 + 2 / 3) / 2],
      ['patch_variance', 0, 0.025],
      ['max_probability', 0.9, 0.75],
      ['entropy', 0.468996, (3 * 0.721928 + 0.970951) / 4],
      ['class_fraction_0', 0, 0.75],
      ['class_fraction_1', 1, 0.25],
      ['class_fraction_2', 0, 0],
      ['foreground_fraction', 1, 0.25],
      // cell 0: (0,1) and (1,1) touch label 0 at x = 2; cell 1: every pixel touches another label
      ['boundary_density', 0.5, 1],
      ['flip_view', 0, 0],
      ['flip_js', 0, 0],
      ['appearance_view', 0, 0],
      ['region_fraction', 1, 1],
      ['round', 3, 3],
      // r = (1 − Hn)(1 − JS)(1 − 4 var): cell 0 all 0.531004; cell 1: 0.278072, 0.278072, 0.278072·0.875489·0.6 = 0.146070, 0.029049
      ['reliability', 0.531004, (2 * 0.278072 + 0.14607 + 0.029049) / 4],
      ['slice_reliability', (0.531004 + 0.182816) / 2, (0.531004 + 0.182816) / 2],
    ];
    for (const [name, a, b] of expected) {
      expect([name, row(0, name)]).toEqual([name, expect.closeTo(a, 5)]);
      expect([name, row(1, name)]).toEqual([name, expect.closeTo(b, 5)]);
    }
    expect(r.scores[0]).toBeCloseTo(0.531004, 5);
    expect(r.scores[1]).toBeCloseTo(0.182816, 5);
    expect(r.sliceScores[0]).toBeCloseTo(0.35691, 5);
    expect(Array.from(r.maps.pseudoLabel)).toEqual([1, 1, 0, 0, 1, 1, 0, 1]);
    expect(Array.from(r.maps.composedLabel)).toEqual([1, 1, 0, 0, 1, 1, 1, 1]);
    expect(Array.from(r.maps.regionIndex)).toEqual([0, 0, 1, 1, 0, 0, 1, 1]);
    expect(r.maps.jsDivergence[6]).toBeCloseTo(0.124511, 5);
    // max over classes of the whole prediction, pixel by pixel (p_1 given above, p_0 = 1 − p_1)
    Array.from(r.maps.maxProbability).forEach((v, i) => expect([i, v]).toEqual([i, expect.closeTo([0.9, 0.9, 0.8, 0.8, 0.9, 0.9, 0.8, 0.6][i]!, 6)]));
  });

  it('views: a flip view equal to the whole prediction agrees perfectly; a disjoint one gives 1 bit', () => {
    // 1×2×2, one cell, K 2: whole one-hot class 1 everywhere; appearance view one-hot class 0 everywhere.
    const grid = buildGrid([1, 2, 2], resolveOptions({ patchSize: 2, stride: 2 }, [1, 2, 2]));
    const whole = twoClass([1, 1, 1, 1]);
    const r = computeFeatures({ grid, whole, composition: composition(whole, new Float32Array(4), 2), flip: whole, appearance: twoClass([0, 0, 0, 0]) });
    const f = (name: string): number => r.features[col(name)] as number;
    expect([f('flip_view'), f('flip_js'), f('appearance_view'), f('appearance_js')]).toEqual([1, 0, 1, 1]);
    // (1 − H)(1 − JS)(1 − 4var)(1 − flip)(1 − appearance) = 1·1·1·1·0
    expect(r.scores[0]).toBe(0);
  });

  it.each([
    // [case, shape, K, split by class, views]
    ['4×24×24, K 5, cells', [4, 24, 24], 5, false, true],
    ['2×24×40, K 3, split by class', [2, 24, 40], 3, true, false],
    ['1×30×30, K 11 (classes ≥ 7 pooled), split', [1, 30, 30], 11, true, true],
  ] as [string, [number, number, number], number, boolean, boolean][])('random inputs, %s: every feature within its schema range', (_name, shape, k, split, views) => {
    const rand = lcg(42);
    const [z, h, w] = shape;
    const n = z * h * w;
    const grid = buildGrid(shape, resolveOptions({ patchSize: 12, stride: 6 }, shape));
    const variance = Float32Array.from({ length: n }, () => 0.25 * rand());
    const r = computeFeatures({
      grid,
      whole: randomProbabilities(k, n, rand),
      composition: composition(randomProbabilities(k, n, rand), variance, k),
      flip: views ? randomProbabilities(k, n, rand) : undefined,
      appearance: views ? randomProbabilities(k, n, rand) : undefined,
      round: 7,
      splitByClass: split,
    });
    expect(r.features.length).toBe(r.regions.length * NUM_FEATURES);
    expect(r.regions.reduce((a, g) => a + g.pixelCount, 0)).toBe(n);
    r.features.forEach((v, i) => {
      const spec = FEATURE_SCHEMA.features[i % NUM_FEATURES]!;
      expect([spec.name, Number.isFinite(v) && v >= spec.min - 1e-6 && v <= spec.max + 1e-6]).toEqual([spec.name, true]);
    });
    normalizeFeatures(r.features).forEach((v) => expect(v >= -1e-6 && v <= 1 + 1e-6).toBe(true));
    for (let i = 0; i < r.regions.length; i++) {
      let sum = 0;
      for (let c = 0; c < CLASS_FRACTION_COLUMNS; c++) sum += r.features[i * NUM_FEATURES + col('class_fraction_0') + c] as number;
      expect(sum).toBeCloseTo(1, 5);
      expect(r.features[i * NUM_FEATURES + col('foreground_fraction')]).toBeCloseTo(1 - (r.features[i * NUM_FEATURES + col('class_fraction_0')] as number), 5);
      if (split) expect(r.features[i * NUM_FEATURES + col(`class_fraction_${Math.min(r.regions[i]!.classIndex, 7)}${r.regions[i]!.classIndex >= 7 ? 'plus' : ''}`)]).toBe(1);
    }
    // Slice score = mean of the per-pixel map over the slice (independent sum here).
    for (let s = 0; s < z; s++) {
      let sum = 0;
      for (let i = s * h * w; i < (s + 1) * h * w; i++) sum += r.maps.reliability[i] as number;
      expect(r.sliceScores[s]).toBeCloseTo(sum / (h * w), 5);
    }
    r.scores.forEach((v) => expect(v >= 0 && v <= 1).toBe(true));
  });

  it('normalises the round by min(x, 20)/20 and the confidence as is', () => {
    const row = new Float32Array(NUM_FEATURES);
    row[col('round')] = 50;
    row[col('max_probability')] = 0.93;
    const out = normalizeFeatures(row);
    expect(out[col('round')]).toBe(1);
    expect(out[col('max_probability')]).toBeCloseTo(0.93, 6);
    expect(() => normalizeFeatures(new Float32Array(5))).toThrow('a feature matrix of schema v2 needs a multiple of 24 values, got 5');
  });

  // Log scale from the floor 1e-4 to the column max: (log10 x + 4) / (log10 max + 4), clipped.
  it.each([
    ['js_divergence', 0, 0],
    ['js_divergence', 1e-5, 0],
    ['js_divergence', 1e-4, 0],
    ['js_divergence', 1e-3, 0.25],
    ['js_divergence', 0.01, 0.5],
    ['js_divergence', 1, 1],
    ['flip_js', 0.05, (Math.log10(0.05) + 4) / 4],
    ['appearance_js', 2, 1],
    ['patch_variance', 0.0025, (Math.log10(0.0025) + 4) / (Math.log10(0.25) + 4)],
    ['patch_variance', 0.25, 1],
  ])('log-scales %s: %f → %f', (name, raw, expected) => {
    const row = new Float32Array(NUM_FEATURES);
    row[col(name)] = raw;
    expect(normalizeFeatures(row)[col(name)]).toBeCloseTo(expected, 5);
  });

  it('end to end with a context-free model: whole and composed agree everywhere', async () => {
    // Pointwise model (pixel's own intensity only): every patch predicts what the whole image does.
    const shape: [number, number, number] = [2, 32, 32];
    const rand = lcg(3);
    const image = Float32Array.from({ length: 2048 }, () => rand());
    const probs = (v: Float32Array): Float32Array => {
      const out = new Float32Array(2 * v.length);
      v.forEach((x, i) => {
        out[i] = 1 - x;
        out[v.length + i] = x;
      });
      return out;
    };
    const r = await scoreReliability({
      image,
      shapeZyx: shape,
      whole: probs(image),
      predict: async (patches, [n, , p]) => {
        const out = new Float32Array(n * 2 * p * p);
        for (let b = 0; b < n; b++) out.set(probs(patches.subarray(b * p * p, (b + 1) * p * p)), b * 2 * p * p);
        return out;
      },
      options: { patchSize: 16, stride: 8 },
    });
    expect(r.regions.length).toBe(2 * 16);
    for (let i = 0; i < r.regions.length; i++) {
      expect(r.features[i * NUM_FEATURES + col('js_divergence')]).toBe(0);
      expect(r.features[i * NUM_FEATURES + col('argmax_agreement')]).toBe(1);
      expect(r.features[i * NUM_FEATURES + col('dice_mean')]).toBe(1);
      expect(r.features[i * NUM_FEATURES + col('patch_variance')]).toBe(0);
    }
  });

  it('refuses views of the wrong size, naming them', () => {
    const grid = buildGrid([1, 2, 2], resolveOptions({ patchSize: 2, stride: 2 }, [1, 2, 2]));
    const whole = twoClass([1, 1, 1, 1]);
    expect(() => computeFeatures({ grid, whole, composition: composition(whole, new Float32Array(4), 2), flip: new Float32Array(3) })).toThrow(
      '`flip` must hold [K, z, y, x] = [2, 1, 2, 2] = 8 values, got 3',
    );
    expect(() => computeFeatures({ grid, whole, composition: composition(whole, new Float32Array(4), 2), round: -1 })).toThrow('`round` must be an integer ≥ 0, got -1');
  });
});
