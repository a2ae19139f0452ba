import { makeVolume } from '@purify/imaging';
import { CT_NORMALIZATION, defaultNormalization, normalizeVolume, PERCENTILE_NORMALIZATION, resolveNormalization } from './normalization';
import { TrainingConfigError } from './errors';

describe('normalizeVolume', () => {
  it.each([
    // [1, 1, 5] HU values, window [-160, 240] (width 400): (clamp(v) + 160) / 400.
    { name: 'ct window', spec: CT_NORMALIZATION, input: [-1000, -160, 40, 240, 1000], want: [0, 0, 0.5, 1, 1] },
    // Window [0, 100]: 25 → 0.25, -5 → 0, 150 → 1.
    { name: 'custom window', spec: { kind: 'ct-window', lowHu: 0, highHu: 100 } as const, input: [-5, 0, 25, 100, 150], want: [0, 0, 0.25, 1, 1] },
    // Percentiles 25/75 of [0, 10, 20, 30, 40] (type 7): h = 1 → 10 and h = 3 → 30; (clamp(v, 10, 30) − 10) / 20.
    { name: 'percentile 25–75', spec: { kind: 'percentile', low: 25, high: 75 } as const, input: [0, 10, 20, 30, 40], want: [0, 0, 0.5, 1, 1] },
    // Percentiles 0/100 = min/max 2 and 6: (v − 2) / 4.
    { name: 'percentile 0–100', spec: { kind: 'percentile', low: 0, high: 100 } as const, input: [2, 3, 4, 5, 6], want: [0, 0.25, 0.5, 0.75, 1] },
  ])('$name: [1, 1, 5] → hand values', ({ spec, input, want }) => {
    const out = normalizeVolume(makeVolume(Float32Array.from(input), [1, 1, 5], { spacingXyzMm: [2, 3, 4] }), spec);
    expect(Array.from(out.data)).toEqual(want.map((w) => expect.closeTo(w, 6) as unknown as number));
    expect(out.spacingXyzMm).toEqual([2, 3, 4]); // geometry kept
  });
});

describe('defaultNormalization', () => {
  it.each([
    { channel: 'CT', want: CT_NORMALIZATION },
    { channel: 'ct', want: CT_NORMALIZATION },
    { channel: 'CT contrast', want: CT_NORMALIZATION },
    { channel: 'CBCT', want: CT_NORMALIZATION },
    { channel: 'cbct', want: CT_NORMALIZATION },
    { channel: 'MR', want: PERCENTILE_NORMALIZATION },
    { channel: 'T2', want: PERCENTILE_NORMALIZATION },
  ])('$channel', ({ channel, want }) => expect(defaultNormalization(channel)).toEqual(want));
});

describe('resolveNormalization bad input', () => {
  it.each([
    { spec: { kind: 'ct-window', lowHu: 100, highHu: 100 }, message: 'normalization.highHu must be a finite number of HU above lowHu (100), got 100' },
    { spec: { kind: 'percentile', low: 50, high: 40 }, message: 'normalization.high must be a percentile in (low = 50, 100], got 40' },
    { spec: { kind: 'percentile', low: -1, high: 40 }, message: 'normalization.low must be a percentile in [0, 100), got -1' },
    { spec: { kind: 'zscore' }, message: "normalization.kind 'zscore' is not supported for training (intensities must map to [0, 1]); use 'ct-window' or 'percentile'" },
    { spec: { kind: 'minmax' }, message: `normalization.kind must be 'ct-window' or 'percentile', got "minmax"` },
  ])('$message', ({ spec, message }) => {
    expect(() => resolveNormalization(spec as never)).toThrow(new TrainingConfigError(message));
    expect(() => resolveNormalization(spec as never)).toThrow(TrainingConfigError);
  });
});
