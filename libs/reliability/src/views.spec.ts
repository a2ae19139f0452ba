import { ReliabilityError } from './errors';
import { normalizeIntensities } from './normalize';
import { lcg, runPythonJson } from './python.test-util';
import { appearancePerturbation, flipX, perturbAppearance } from './views';

describe('views', () => {
  it('flipX mirrors every row and is an involution', () => {
    // [K=2, 1, 2, 3]: rows (1 2 3) (4 5 6) (7 8 9) (10 11 12)
    const p = Float32Array.from({ length: 12 }, (_, i) => i + 1);
    expect(Array.from(flipX(p, 3))).toEqual([3, 2, 1, 6, 5, 4, 9, 8, 7, 12, 11, 10]);
    expect(Array.from(flipX(flipX(p, 3), 3))).toEqual(Array.from(p));
    expect(() => flipX(p, 5)).toThrow('flipX needs a row length ≥ 1 dividing 12 values, got 5');
  });

  it('appearance perturbation: seeded, in range, monotone, constant images unchanged', () => {
    const a = appearancePerturbation(1);
    expect(appearancePerturbation(1)).toEqual(a);
    expect(appearancePerturbation(2)).not.toEqual(a);
    for (let s = 0; s < 50; s++) {
      const { gamma, contrast } = appearancePerturbation(s);
      expect(gamma >= 0.7 && gamma <= 1.5 && contrast >= 0.75 && contrast <= 1.25).toBe(true);
    }
    // Raw HU-like values: the perturbation keeps the intensity order (gamma > 0, contrast > 0).
    const r = lcg(4);
    const raw = Float32Array.from({ length: 500 }, () => -200 + 600 * r());
    const out = perturbAppearance(raw, { gamma: 1.4, contrast: 0.8 });
    const order = (v: Float32Array) => Array.from(v.keys()).sort((i, j) => v[i]! - v[j]! || i - j);
    expect(order(out)).toEqual(order(raw));
    expect(out).not.toEqual(raw);
    // gamma 1, contrast 1 is the identity (up to float32 rounding)
    perturbAppearance(raw, { gamma: 1, contrast: 1 }).forEach((v, i) => expect(v).toBeCloseTo(raw[i]!, 2));
    expect(Array.from(perturbAppearance(new Float32Array(4).fill(7), a))).toEqual([7, 7, 7, 7]);
  });
});

describe('intensity normalisation (as the segmenter applies it)', () => {
  it('CT window: clamp to [low, high] then scale to [0, 1]', () => {
    // window [-160, 240]: −1000 → 0, −160 → 0, 40 → 0.5, 240 → 1, 3000 → 1
    expect(Array.from(normalizeIntensities([-1000, -160, 40, 240, 3000], { kind: 'ct-window', lowHu: -160, highHu: 240 }))).toEqual([0, 0, 0.5, 1, 1]);
  });

  it('percentile and z-score match numpy', () => {
    const r = lcg(8);
    const raw = Array.from({ length: 1000 }, () => Math.round(1000 * r() ** 2));
    const [pct, z] = runPythonJson<[number[], number[]]>(
      [
        'import json,sys; import numpy as np; v=np.array(json.load(sys.stdin),dtype=np.float64)',
        'lo,hi=np.percentile(v,[0.5,99.5]); p=(np.clip(v,lo,hi)-lo)/(hi-lo); z=(v-v.mean())/v.std()',
        'print(json.dumps([p.tolist(), z.tolist()]))',
      ].join('\n'),
      raw,
    );
    normalizeIntensities(raw, { kind: 'percentile', low: 0.5, high: 99.5 }).forEach((v, i) => expect(v).toBeCloseTo(pct[i]!, 6));
    normalizeIntensities(raw, { kind: 'zscore' }).forEach((v, i) => expect(v).toBeCloseTo(z[i]!, 5));
  });

  it('constant input → 0; bad specs are refused naming the field', () => {
    expect(Array.from(normalizeIntensities([5, 5], { kind: 'percentile', low: 1, high: 99 }))).toEqual([0, 0]);
    expect(Array.from(normalizeIntensities([5, 5], { kind: 'zscore' }))).toEqual([0, 0]);
    const bad = () => normalizeIntensities([1], { kind: 'ct-window', lowHu: 10, highHu: 10 });
    expect(bad).toThrow(ReliabilityError);
    expect(bad).toThrow('a CT window needs highHu > lowHu, got [10, 10]');
    expect(() => normalizeIntensities([], { kind: 'zscore' })).toThrow('`image` has no voxels');
  });
});
