import { lcg, runPythonJson } from './python.test-util';
import { auroc, averageRanks, fitLogistic, logisticPredict, spearman } from './stats';

describe('AUROC', () => {
  it.each([
    // [case, scores, positives, AUROC by hand]
    ['perfect separation', [0.1, 0.2, 0.8, 0.9], [false, false, true, true], 1],
    ['inverted', [0.9, 0.8, 0.2, 0.1], [false, false, true, true], 0],
    // pairs (pos, neg): (0.5, 0.5) tie ½, (0.5, 0.1) 1, (0.3, 0.5) 0, (0.3, 0.1) 1 → 2.5/4
    ['ties count ½', [0.5, 0.3, 0.5, 0.1], [true, true, false, false], 0.625],
    ['one class only → NaN', [0.1, 0.2], [true, true], Number.NaN],
  ])('%s', (_name, scores, positives, expected) => {
    expect(auroc(scores, positives)).toBe(expected);
  });

  it('matches scipy (Mann–Whitney U / n₊n₋) on 300 tied scores', () => {
    const r = lcg(11);
    const scores = Array.from({ length: 300 }, () => Math.round(r() * 20) / 20);
    const labels = scores.map((s) => r() < 0.2 + 0.6 * s);
    const expected = runPythonJson<number>(
      'import json,sys; from scipy.stats import mannwhitneyu; d=json.load(sys.stdin); s=d["s"]; y=d["y"]\n' +
        'pos=[a for a,b in zip(s,y) if b]; neg=[a for a,b in zip(s,y) if not b]\n' +
        'print(json.dumps(mannwhitneyu(pos,neg).statistic/(len(pos)*len(neg))))',
      { s: scores, y: labels },
    );
    expect(auroc(scores, labels)).toBeCloseTo(expected, 12);
  });
});

describe('Spearman', () => {
  it('average ranks of ties (scipy rankdata "average")', () => {
    // 10, 20, 20, 5 → ranks 2, 3.5, 3.5, 1
    expect(Array.from(averageRanks([10, 20, 20, 5]))).toEqual([2, 3.5, 3.5, 1]);
  });

  it.each([
    // [case, a, b, ρ by hand]
    ['monotone', [1, 2, 3, 4], [10, 100, 1000, 10000], 1],
    ['reversed', [1, 2, 3], [3, 2, 1], -1],
    ['constant → NaN', [1, 1, 1], [1, 2, 3], Number.NaN],
  ])('%s', (_name, a, b, expected) => {
    expect(spearman(a, b)).toBe(expected);
  });

  it('matches scipy.stats.spearmanr with ties', () => {
    const r = lcg(5);
    const a = Array.from({ length: 200 }, () => Math.round(r() * 10));
    const b = a.map((x) => x + Math.round(r() * 8));
    const expected = runPythonJson<number>('import json,sys; from scipy.stats import spearmanr; d=json.load(sys.stdin); print(json.dumps(float(spearmanr(d["a"], d["b"]).statistic)))', { a, b });
    expect(spearman(a, b)).toBeCloseTo(expected, 12);
  });
});

describe('logistic regression', () => {
  it('matches scipy.optimize on the same L2-penalised objective', () => {
    // 400 rows × 3 features; y drawn from σ(2x₀ − 3x₁ + 0.5) with x₂ pure noise
    const r = lcg(9);
    const n = 400;
    const d = 3;
    const x = Array.from({ length: n * d }, () => r() * 2 - 1);
    const y = Array.from({ length: n }, (_, i) => r() < 1 / (1 + Math.exp(-(2 * x[i * d]! - 3 * x[i * d + 1]! + 0.5))));
    const model = fitLogistic(x, y, d, { l2: 0.5 });
    const expected = runPythonJson<number[]>(
      [
        'import json,sys; import numpy as np; from scipy.optimize import minimize',
        'd=json.load(sys.stdin); X=np.array(d["x"]).reshape(-1,3); y=np.array(d["y"],dtype=float)',
        'def f(t):',
        '  z=X@t[:3]+t[3]; return np.sum(np.logaddexp(0,z)-y*z)+0.25*np.sum(t[:3]**2)',
        'def g(t):',
        '  p=1/(1+np.exp(-(X@t[:3]+t[3]))); e=p-y; return np.concatenate([X.T@e+0.5*t[:3],[e.sum()]])',
        'res=minimize(f,np.zeros(4),jac=g,method="BFGS",options={"gtol":1e-10}); print(json.dumps(res.x.tolist()))',
      ].join('\n'),
      { x, y },
    );
    [...model.weights, model.bias].forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 5));
    // The signs recover the generating model.
    expect(model.weights[0]).toBeGreaterThan(1);
    expect(model.weights[1]).toBeLessThan(-1);
    const p = logisticPredict(model, [0, 0, 0]);
    expect(p[0]).toBeCloseTo(1 / (1 + Math.exp(-model.bias)), 12);
  });

  it('stays finite on separable data and constant columns (L2 keeps the Hessian definite)', () => {
    // x₀ separates perfectly; x₁ is constant 1 (like an always-on view flag)
    const x = [0, 1, 0.1, 1, 0.9, 1, 1, 1];
    const model = fitLogistic(x, [false, false, true, true], 2, { l2: 0.1 });
    expect([...model.weights, model.bias].every(Number.isFinite)).toBe(true);
    const p = logisticPredict(model, x);
    expect(p[0]! < 0.5 && p[3]! > 0.5).toBe(true);
    expect(() => fitLogistic([1, 2, 3], [true], 2)).toThrow('fitLogistic needs x of [n, d] = [1, 2] values, got 3');
  });
});
